"""The plan each entry point builds, and what every child receives from it.

A child gets the pipeline settings, its handles and its own options; a credential goes
only to the child that uses it. Checked on the real parsers and the real assembly.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import trustme

import app_https_client
import app_mp
from encoder.options import DEFAULT_H264_BITRATE, RtpTarget
from pipeline.supervisor import Resources
from wiring.launch import child_specs

SECRETS = ("hunter2pass", "t0kenXYZ", "janusS3cret")
NO_SECRETS = ("capture", "encoder", "h264", "depthvideo", "tap", "display", "foxglove", "mcap")


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """A certificate chain and key on disk (the key's path counts as a secret)."""
    d = tmp_path_factory.mktemp("tls")
    cert = trustme.CA().issue_cert("localhost")
    cert_path, key_path = d / "cert.pem", d / "keyS3cretPath.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_path))
    cert.private_key_pem.write_to_path(str(key_path))
    return str(cert_path), str(key_path)


def _specs(plan: object) -> dict[str, bytes]:
    """Each child's name and everything it is handed but its pipes, pickled."""
    res = Resources(1 << 20, h264=plan.h264 is not None,  # type: ignore[attr-defined]
                    depth_video=plan.depth_video is not None,  # type: ignore[attr-defined]
                    readers=plan.readers)  # type: ignore[attr-defined]
    try:
        return {s.name: pickle.dumps((s.cfg, s.args))
                for s in child_specs(plan, res.handles, "turbojpeg")}  # type: ignore[arg-type]
    finally:
        res.close()


def test_no_secret_reaches_a_child_that_does_not_use_it(tls: tuple[str, str],
                                                        tmp_path: Path) -> None:
    cert, key = tls
    plan = app_mp.parse_args([
        "--source", "synthetic", "--auth", "user:hunter2pass", "--token", "t0kenXYZ",
        "--cert", cert, "--key", key, "--webrtc", "--janus", "http://127.0.0.1:9/janus",
        "--janus-rtp", "127.0.0.1:5004:5005", "--janus-secret", "janusS3cret",
        "--record", str(tmp_path / "a.mkv"), "--foxglove", "127.0.0.1:0",
        "--record-mcap", str(tmp_path / "a.mcap")])
    specs = _specs(plan)
    assert set(specs) == {"capture", "encoder", "web", "tap", "h264", "depthvideo", "janus",
                          "foxglove", "mcap"}
    for name in NO_SECRETS:
        if name in specs:
            for secret in (*SECRETS, "keyS3cretPath"):
                assert secret.encode() not in specs[name], (name, secret)
    # The web child checks credentials and proxies signalling; Janus needs its secret.
    assert b"t0kenXYZ" in specs["web"] and b"keyS3cretPath" in specs["web"]
    assert b"janusS3cret" in specs["janus"]


def test_the_push_keeps_its_url_credentials_to_itself() -> None:
    plan = app_https_client.parse_args([
        "-v", "https://cam:hunter2pass@127.0.0.1:9/in", "-g",
        "https://127.0.0.1:9/gps?token=t0kenXYZ", "--gps", "fixed:1,2", "--format", "h264",
        "--source", "synthetic"])
    specs = _specs(plan)
    assert set(specs) == {"capture", "encoder", "push", "gps", "h264"}
    for name in ("capture", "encoder", "h264"):
        for secret in SECRETS:
            assert secret.encode() not in specs[name], (name, secret)
    assert b"hunter2pass" in specs["push"] and b"t0kenXYZ" in specs["gps"]


def test_h264_bitrate_has_one_default_for_both_entry_points() -> None:
    served = app_mp.parse_args(["--source", "synthetic", "--webrtc"])
    pushed = app_https_client.parse_args(["-v", "tcp://127.0.0.1:9", "--format", "h264",
                                          "--source", "synthetic", "--no-adapt"])
    assert served.h264 is not None and pushed.push is not None
    assert served.h264.bitrate == pushed.push.h264.bitrate == DEFAULT_H264_BITRATE
    both = [app_mp.parse_args(["--source", "synthetic", "--webrtc", "--h264-bitrate", "800k"]),
            app_https_client.parse_args(["-v", "tcp://127.0.0.1:9", "--format", "h264",
                                         "--source", "synthetic", "--h264-bitrate", "800k"])]
    assert both[0].h264.bitrate == both[1].push.h264.bitrate == 800_000


def test_the_h264_child_gets_the_rtp_target_and_not_the_gateway() -> None:
    plan = app_mp.parse_args(["--source", "synthetic", "--webrtc", "--janus",
                              "http://127.0.0.1:9/janus", "--janus-rtp", "127.0.0.1:5004:5005",
                              "--janus-secret", "janusS3cret"])
    res = Resources(1 << 20, h264=True)
    try:
        spec = next(s for s in child_specs(plan, res.handles, "turbojpeg") if s.name == "h264")
    finally:
        res.close()
    assert spec.args[1] == RtpTarget("127.0.0.1", 5004, 5005)
    assert spec.heartbeat_key == "hb_h264"
