"""Janus as a supervised child: generated configuration, start, watch, restart, viewer count.

A private Janus gets a configuration written into this run's working directory: the
streaming plugin and the HTTP transport only (linked into private plugin and transport
folders, so none of the package's other plugins or sample mountpoints load), the HTTP
API on loopback behind a random API secret that only our web process knows, and one RTP
mountpoint for color H.264 with an RTCP port (Janus asks us for keyframes there) and
the last keyframe buffered for new viewers. The Janus process dies with this child
(parent-death signal), and this child restarts it when it dies. With `--janus URL` no
process is started; the child only watches that Janus.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from media.h264 import profile_level_id
from pipeline.child import Child
from pipeline.control import Control
from pipeline.procs import stop_process
from webrtc.options import Mount, WebRTCOptions

log = logging.getLogger("janus")

LIB_DIR = Path("/usr/lib/x86_64-linux-gnu/janus")
PLUGINS = ("libjanus_streaming.so",)
TRANSPORTS = ("libjanus_http.so",)
POLL_S = 0.5
BACKOFF_FIRST_S = 0.2
BACKOFF_MAX_S = 10.0
STOP_WAIT_S = 2.0
_PR_SET_PDEATHSIG = 1


def _lib_dir() -> Path:
    """Where the janus package put its plugins (multiarch path, found once)."""
    for cand in (LIB_DIR, *Path("/usr/lib").glob("*/janus"), Path("/usr/lib/janus"),
                 Path("/opt/janus/lib/janus")):
        if (cand / "plugins" / PLUGINS[0]).exists():
            return cand
    return LIB_DIR


def _quote(value: str) -> str:
    return json.dumps(value)


def write_config(opts: WebRTCOptions, width: int, height: int) -> Path:
    """Write janus.jcfg and the plugin/transport configs into opts.workdir; return it."""
    root = Path(opts.workdir)
    conf, plugins, transports = root / "conf", root / "plugins", root / "transports"
    for d in (conf, plugins, transports):
        d.mkdir(parents=True, exist_ok=True)
    lib = _lib_dir()
    for folder, names, sub in ((plugins, PLUGINS, "plugins"),
                               (transports, TRANSPORTS, "transports")):
        for name in names:
            link = folder / name
            if not link.exists():
                link.symlink_to(lib / sub / name)
    nat = ['\tice_ignore_list = "vmnet"', "\tnice_debug = false"]
    stun = next((u for u in opts.ice_servers if u.startswith("stun:")), None)
    if stun:
        host, _, port = stun[len("stun:"):].partition(":")
        nat += [f"\tstun_server = {_quote(host)}", f"\tstun_port = {int(port or 3478)}"]
    turn = next((u for u in opts.ice_servers if u.startswith("turn")), None)
    if turn:
        cred, _, hostport = turn.split(":", 1)[1].rpartition("@")
        user, _, pwd = cred.partition(":")
        host, _, port = hostport.partition(":")
        nat += [f"\tturn_server = {_quote(host)}", f"\tturn_port = {int(port or 3478)}",
                '\tturn_type = "udp"', f"\tturn_user = {_quote(user)}",
                f"\tturn_pwd = {_quote(pwd)}"]
    if opts.nat_1_1:
        nat.append(f"\tnat_1_1_mapping = {_quote(opts.nat_1_1)}")
    nl = "\n"
    # No secret (a gateway for --janus tests): no line, since Janus would demand "".
    secret = f"\tapi_secret = {_quote(opts.api_secret)}" if opts.api_secret else ""
    (conf / "janus.jcfg").write_text(f"""general: {{
\tconfigs_folder = {_quote(str(conf))}
\tplugins_folder = {_quote(str(plugins))}
\ttransports_folder = {_quote(str(transports))}
\tevents_folder = {_quote(str(root / "none"))}
\tloggers_folder = {_quote(str(root / "none"))}
\tdebug_level = 3
{secret}
\tsession_timeout = 30
\tserver_name = "depthcam"
}}
media: {{
\trtp_port_range = "20000-40000"
}}
nat: {{
{nl.join(nat)}
}}
plugins: {{
}}
transports: {{
}}
events: {{
\tbroadcast = false
}}
""")
    (conf / "janus.transport.http.jcfg").write_text(f"""general: {{
\tjson = "compact"
\tbase_path = "/janus"
\thttp = true
\tport = {opts.http_port}
\tip = "127.0.0.1"
\thttps = false
}}
admin: {{
\tadmin_http = false
\tadmin_https = false
}}
""")
    first = Mount("", opts.mountpoint, opts.video_port, opts.rtcp_port, width, height)
    sections = "".join(_mount(m) for m in (first, *opts.mounts))
    (conf / "janus.plugin.streaming.jcfg").write_text(f"""general: {{
\tevents = false
\tstring_ids = false
}}
{sections}""")
    return conf


def _mount(m: Mount) -> str:
    """One RTP mountpoint of the streaming plugin: H.264 color of one camera."""
    name = f"color-{m.camera}" if m.camera else "color"
    width, height = m.width, m.height
    return f"""depthcam-{name}: {{
\ttype = "rtp"
\tid = {m.mountpoint}
\tdescription = "{name} ({width}x{height} H.264)"
\taudio = false
\tvideo = true
\tvideoport = {m.video_port}
\tvideortcpport = {m.rtcp_port}
\tvideoiface = "127.0.0.1"
\tvideopt = 96
\tvideocodec = "h264"
\tvideofmtp = "profile-level-id={profile_level_id(width, height)};packetization-mode=1"
\tvideobufferkf = true
\tplayoutdelay_ext = true
}}
"""


class JanusApi:
    """A minimal blocking client of the Janus HTTP API (for the viewer count)."""

    def __init__(self, base: str, secret: str = "", timeout: float = 2.0) -> None:
        self.base, self.secret, self.timeout = base.rstrip("/"), secret, timeout
        self.session: int | None = None
        self.handle: int | None = None

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        body = {**body, "transaction": os.urandom(6).hex()}
        if self.secret:
            body["apisecret"] = self.secret
        req = urllib.request.Request(self.base + path, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=self.timeout) as r:  # noqa: S310
            doc = json.load(r)
        if doc.get("janus") == "error":
            raise OSError(doc.get("error", {}).get("reason", "Janus error"))
        return doc

    def viewers(self, mountpoint: int) -> int:
        """Viewers of a mountpoint (opens a session and streaming handle when needed)."""
        if self.session is None:
            self.session = self._post("", {"janus": "create"})["data"]["id"]
            self.handle = None
        if self.handle is None:
            self.handle = self._post(f"/{self.session}", {
                "janus": "attach", "plugin": "janus.plugin.streaming"})["data"]["id"]
        doc = self._post(f"/{self.session}/{self.handle}", {
            "janus": "message", "body": {"request": "info", "id": mountpoint}})
        data = doc.get("plugindata", {}).get("data", {})
        if "info" not in data:
            raise OSError(data.get("error", "no mountpoint info"))
        return int(data["info"].get("viewers", 0))

    def reset(self) -> None:
        self.session = self.handle = None


def _die_with_us() -> None:
    """In the forked Janus: SIGKILL when this child dies, so no Janus is ever orphaned."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


class JanusProcess:
    """One private Janus process, started from the generated configuration."""

    def __init__(self, opts: WebRTCOptions, conf: Path) -> None:
        self.opts, self.conf = opts, conf
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = Path(opts.workdir) / "janus.log"
        self.started = 0.0

    def start(self) -> None:
        cmd = [self.opts.janus_bin, "-C", str(self.conf / "janus.jcfg"), "-F", str(self.conf),
               "-o", "-N", "-L", str(self.log_path)]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, preexec_fn=_die_with_us)  # noqa: PLW1509
        self.started = time.monotonic()

    def exited(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def why(self) -> str:
        """The most telling line Janus left behind (stderr or its log)."""
        text = ""
        if self.proc is not None and self.proc.stderr is not None:
            with contextlib.suppress(OSError, ValueError):
                text = self.proc.stderr.read(8192).decode(errors="replace")
        with contextlib.suppress(OSError):
            text += self.log_path.read_text(errors="replace")[-8192:]
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        bad = [ln for ln in lines if any(w in ln.lower() for w in ("error", "fatal", "couldn't",
                                                                    "failed", "can't"))]
        return (bad or lines or ["no output"])[-1][:300]

    def stop(self) -> None:
        if self.proc is None:
            return
        stop_process(self.proc, STOP_WAIT_S)
        if self.proc.stderr is not None:
            self.proc.stderr.close()
        self.proc = None


def janus_main(child: Child, opts: WebRTCOptions, controls: tuple[str, ...] = ()) -> None:
    """The Janus child: run (or watch) Janus, publish its state and viewers; `controls`:
    the control blocks of the further cameras of `opts.mounts`, in order, whose viewers
    go to their own block (what makes their H.264 stages encode)."""
    api = JanusApi(opts.api_url, opts.api_secret)
    proc: JanusProcess | None = None
    if opts.private:
        proc = JanusProcess(opts, write_config(opts, child.cfg.width, child.cfg.height))
    blocks = [Control.attach(name) for name in controls]
    try:
        _watch(opts, child, api, proc, list(zip(opts.mounts, blocks, strict=True)))
    finally:
        if proc is not None:
            proc.stop()
        for control in (child.control, *blocks):
            control["janus_up"] = 0
            control["webrtc_viewers"] = 0
        for control in blocks:
            control.close()


def _watch(opts: WebRTCOptions, child: Child, api: JanusApi, proc: JanusProcess | None,
           more: list[tuple[Mount, Control]]) -> None:
    control, stop = child.control, child.stop
    backoff = BACKOFF_FIRST_S
    restart_at = time.monotonic()
    failures = 0
    was_up = False  # the API answered at the last poll
    ever_up = False  # the API answered since this Janus process started
    while not stop.is_set():
        child.beat()
        now = time.monotonic()
        if proc is not None:
            code = proc.exited()
            if proc.proc is not None and code is not None:
                # Killed by a signal: its last log line says nothing about why.
                reason = proc.why() if code >= 0 else "killed"
                failures += 1
                how = f"signal {signal.Signals(-code).name}" if code < 0 else f"code {code}"
                if ever_up:
                    log.error("Janus exited (%s): %s; restarting in %.1f s", how, reason,
                              backoff)
                elif failures == 1:
                    log.error("Janus did not start (%s): %s; WebRTC is off until it does "
                              "(retrying with backoff), MJPEG is unaffected", how, reason)
                proc.stop()
                api.reset()
                control["janus_up"] = 0
                control["webrtc_viewers"] = 0
                was_up = ever_up = False
                restart_at = now + backoff
                backoff = min(backoff * 2, BACKOFF_MAX_S)
            if proc.proc is None and now >= restart_at:
                proc.start()
                control.add("janus_starts")
                control["janus_pid"] = proc.proc.pid if proc.proc else 0
        try:
            viewers = api.viewers(opts.mountpoint)
            others = [api.viewers(mount.mountpoint) for mount, _ in more]
        except (OSError, ValueError, KeyError, urllib.error.URLError) as exc:
            api.reset()
            if was_up:
                log.warning("Janus API at %s not answering: %s", opts.api_url, exc)
            was_up = False
            for block in (control, *(b for _, b in more)):
                block["janus_up"] = 0
                block["webrtc_viewers"] = 0
        else:
            for (_, block), n in zip(more, others, strict=True):
                block["janus_up"] = 1
                block["webrtc_viewers"] = n
            if not was_up:
                log.info("Janus up at %s (mountpoint %d)", opts.api_url, opts.mountpoint)
                if proc is not None and proc.started and now - proc.started > 30:
                    backoff = BACKOFF_FIRST_S
                failures = 0
            was_up = ever_up = True
            control["janus_up"] = 1
            control["webrtc_viewers"] = viewers
            if proc is not None and now - proc.started > 30:
                backoff = BACKOFF_FIRST_S
        stop.wait(POLL_S)
