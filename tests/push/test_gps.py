"""GPS readers and poster against real gpsd (gpsfake), a pty serial port and an HTTP receiver."""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import signal
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import trustme

from push.gps.fix import GpsFix
from push.gps.gpsd import GpsdReader, tpv_to_fix
from push.gps.nmea import NmeaSerialReader
from push.gps.poster import GpsPoster, redact_url
from push.gps.reader import FixedReader, GpsReader
from push.gps.spec import parse_gps_spec
from tests.conftest import require
from tests.helpers import free_port
from tests.route import (
    CYCLE,
    ROUTE,
    assert_matches_route,
    load_route,
    nmea_checksum_ok,
)

LOGGER = "push.gps"
Policy = Callable[[dict[str, Any], int], int]


# ---------------------------------------------------------------------------- helpers


def wait_for(cond: Callable[[], bool], timeout: float, step: float = 0.02) -> bool:
    """Poll `cond` until true or `timeout` seconds pass; return its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(step)
    return cond()


class Receiver:
    """HTTP(S) server on 127.0.0.1 recording POSTed JSON; `policy` picks each status."""

    def __init__(self, port: int = 0, policy: Policy | None = None,
                 tls: ssl.SSLContext | None = None) -> None:
        self.policy: Policy = policy or (lambda payload, n: 200)
        self.accepted: list[dict[str, Any]] = []
        self.statuses: list[int] = []
        self.auth: list[str | None] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                payload = json.loads(body)
                with receiver.lock:
                    n = len(receiver.statuses)
                status = receiver.policy(payload, n)
                with receiver.lock:
                    receiver.statuses.append(status)
                    receiver.auth.append(self.headers.get("Authorization"))
                    if 200 <= status < 300:
                        receiver.accepted.append(payload)
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def url(self, scheme: str = "http") -> str:
        """URL of the receiver's /gps endpoint."""
        return f"{scheme}://127.0.0.1:{self.port}/gps"

    def close(self) -> None:
        """Stop serving and free the port."""
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(2.0)


@pytest.fixture
def receivers() -> Iterator[Callable[..., Receiver]]:
    """Factory of Receivers, all closed at teardown."""
    made: list[Receiver] = []

    def make(**kw: Any) -> Receiver:
        r = Receiver(**kw)
        made.append(r)
        return r

    yield make
    for r in made:
        r.close()


@contextlib.contextmanager
def running(*things: Any) -> Iterator[None]:
    """Start readers/posters in order; stop them in reverse order, whatever happens."""
    started: list[Any] = []
    try:
        for t in things:
            t.start()
            started.append(t)
        yield
    finally:
        for t in reversed(started):
            t.stop()


@contextlib.contextmanager
def gpsfake(port: int, tmp: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Run gpsfake (and the gpsd it spawns) replaying the route once; kill the group after."""
    err = (tmp / "gpsfake.err").open("wb")
    proc = subprocess.Popen(
        [require("gpsfake"), "-P", str(port), "-1", "-q", "-c", str(CYCLE), str(ROUTE)],
        stdout=subprocess.DEVNULL, stderr=err, start_new_session=True,
    )
    try:
        yield proc
    finally:

        def group_gone() -> bool:
            proc.poll()  # reap gpsfake so its group can empty
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                return True
            return False

        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        if not wait_for(group_gone, 3.0):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5.0)
        err.close()
        assert wait_for(group_gone, 3.0), "gpsfake/gpsd left running"
        Path(f"/tmp/gpsfake-{proc.pid}.sock").unlink(missing_ok=True)


def messages(caplog: pytest.LogCaptureFixture, level: int, text: str) -> list[str]:
    """Messages from push.gps at exactly `level` containing `text`."""
    return [r.getMessage() for r in caplog.records
            if r.name == LOGGER and r.levelno == level and text in r.getMessage()]


class ManualReader:
    """A fix source the test controls: latest() returns whatever was set last."""

    def __init__(self) -> None:
        self.fix: GpsFix | None = None

    def latest(self) -> GpsFix | None:
        return self.fix


def make_fix(i: int) -> GpsFix:
    return GpsFix(time=f"2024-01-01T00:{i // 60:02d}:{i % 60:02d}.000Z", lat=48.0 + i * 1e-4,
                  lon=11.0 - i * 1e-4, alt=500.0 + i, speed=1.0, track=90.0, mode=3)


def feed(poster: GpsPoster, reader: ManualReader, fixes: list[GpsFix]) -> None:
    """Hand each fix to the poster and wait until it was taken (one per sample)."""
    for fix in fixes:
        before = poster.taken
        reader.fix = fix
        assert wait_for(lambda b=before: poster.taken == b + 1, 2.0), f"{fix} not taken"


# ---------------------------------------------------------------------------- the route file


def test_route_file_is_a_plausible_1hz_3d_drive() -> None:
    lines = ROUTE.read_text().splitlines()
    assert all(nmea_checksum_ok(x) for x in lines), "bad checksum in route.nmea"
    route = load_route()
    assert 30 <= len(route) <= 60
    stamps = [datetime.fromisoformat(e["time"].replace("Z", "+00:00")) for e in route]
    assert all((b - a).total_seconds() == 1.0 for a, b in zip(stamps[:-1], stamps[1:], strict=True))
    assert all(e["quality"] >= 1 and e["status"] == "A" for e in route)
    assert all(e["lat"] == e["rlat"] and e["lon"] == e["rlon"] for e in route)
    assert len({(e["lat"], e["lon"]) for e in route}) == len(route), "not moving"
    gsa = [x.split(",") for x in lines if x[3:6] == "GSA"]
    assert len(gsa) == len(route) and all(f[2] == "3" for f in gsa)


# ---------------------------------------------------------------------------- gpsd (gpsfake)


def test_gpsd_fixes_reach_receiver_in_order(tmp_path: Path, receivers: Callable[..., Receiver],
                                            caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    route = load_route()
    port = free_port()
    recv = receivers()
    reader = GpsdReader("127.0.0.1", port)
    poster = GpsPoster(recv.url(), reader, interval=CYCLE)
    with running(reader, poster):
        # gpsd is not up yet: the reader retries quietly (one warning for the outage).
        assert wait_for(lambda: len(messages(caplog, logging.DEBUG, "attempt failed")) >= 3,
                        5.0)
        with gpsfake(port, tmp_path):
            assert wait_for(lambda: reader.connected, 10.0), "never connected to gpsd"
            last = route[-1]["time"]
            assert wait_for(lambda: any(p["time"] == last for p in recv.accepted), 30.0), \
                (tmp_path / "gpsfake.err").read_text()
            queued = []
            while (fix := reader.get(timeout=0.0)) is not None:
                queued.append(fix.to_json())
    assert_matches_route(recv.accepted, route, min_len=20, partial_first=True)
    assert_matches_route(queued, route, min_len=20, partial_first=True)
    assert poster.posted == len(recv.accepted) and poster.dropped == 0 == poster.backlog
    # One warning for the outage before gpsd came up, however many attempts it took; the
    # replay's end (gpsd closing) may start a second outage, which gets its own line.
    outage = [r.getMessage() for r in caplog.records if r.name == LOGGER and (
        r.levelno == logging.WARNING or "available again" in r.getMessage())]
    assert "unavailable" in outage[0] and "Connection refused" in outage[0]
    assert "available again" in outage[1], outage
    assert all("connection lost" in m for m in outage[2:3]) and len(outage) <= 3, outage


def test_gpsd_route_outage_loses_and_duplicates_nothing(
        tmp_path: Path, receivers: Callable[..., Receiver],
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    route = load_route()
    state = {"ok": 0, "down_until": 0.0}

    def policy(payload: dict[str, Any], n: int) -> int:
        """Accept 3 fixes, then answer 503 for 1.5 s (several fixes), then accept again."""
        now = time.monotonic()
        if state["ok"] == 3 and state["down_until"] == 0.0:
            state["down_until"] = now + 1.5
        if now < state["down_until"]:
            return 503
        state["ok"] += 1
        return 200

    recv = receivers(policy=policy)
    port = free_port()
    reader = GpsdReader("127.0.0.1", port)
    poster = GpsPoster(recv.url(), reader, interval=CYCLE, retry_max=0.3)
    with gpsfake(port, tmp_path), running(reader, poster):
        last = route[-1]["time"]
        assert wait_for(lambda: any(p["time"] == last for p in recv.accepted), 30.0), \
            (tmp_path / "gpsfake.err").read_text()
    assert recv.statuses.count(503) >= 3, recv.statuses
    assert_matches_route(recv.accepted, route, min_len=20, partial_first=True)
    assert poster.posted == len(recv.accepted) and poster.dropped == 0 == poster.backlog
    down = messages(caplog, logging.WARNING, "down")
    back = messages(caplog, logging.INFO, "back after")
    assert len(down) == 1 and "HTTP 503" in down[0]
    assert len(back) == 1 and "backlog" in back[0]
    backlog_at_return = int(back[0].split("backlog ")[1].split(",")[0])
    assert backlog_at_return >= 5, back[0]  # 1.5 s of 0.2 s fixes piled up meanwhile


def test_tpv_without_position_or_time_is_not_a_fix() -> None:
    base = {"class": "TPV", "mode": 3, "time": "2024-05-14T10:15:00.000Z", "lat": 48.0,
            "lon": 11.0, "altHAE": 560.0, "altMSL": 512.5, "speed": 2.0, "track": 10.0}
    assert tpv_to_fix(base) == GpsFix("2024-05-14T10:15:00.000Z", 48.0, 11.0, 512.5, 2.0,
                                      10.0, 3)
    assert tpv_to_fix({**base, "altMSL": None}).alt == 560.0
    assert tpv_to_fix({**base, "mode": 2}).alt is None
    assert tpv_to_fix({k: v for k, v in base.items() if k != "time"}) is None
    assert tpv_to_fix({**base, "mode": 1}) is None
    assert tpv_to_fix({k: v for k, v in base.items() if k != "lat"}) is None
    assert tpv_to_fix({**base, "class": "SKY"}) is None


# ---------------------------------------------------------------------------- poster


def test_poster_never_sends_the_same_fix_twice(receivers: Callable[..., Receiver]) -> None:
    recv = receivers()
    reader = ManualReader()
    poster = GpsPoster(recv.url(), reader, interval=0.02)
    with running(poster):
        reader.fix = make_fix(1)
        assert wait_for(lambda: poster.posted == 1, 3.0)
        time.sleep(0.3)  # ~15 more samples of the same fix
        reader.fix = GpsFix(**{**make_fix(1).to_json(), "alt": 999.0})  # same epoch, refined
        time.sleep(0.3)
        reader.fix = make_fix(2)
        assert wait_for(lambda: poster.posted == 2, 3.0)
        time.sleep(0.2)
    assert [p["time"] for p in recv.accepted] == [make_fix(1).time, make_fix(2).time]
    assert poster.taken == 2 and len(recv.statuses) == 2


def test_backlog_bound_drops_oldest_then_sends_rest_in_order(
        receivers: Callable[..., Receiver], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    port = free_port()  # nothing listens yet: connection refused
    reader = ManualReader()
    poster = GpsPoster(f"http://127.0.0.1:{port}/gps", reader, interval=0.02, max_backlog=5,
                       retry_max=0.2)
    fixes = [make_fix(i) for i in range(12)]
    with running(poster):
        feed(poster, reader, fixes)
        assert poster.backlog == 5 and poster.dropped == 7 and poster.posted == 0
        time.sleep(0.5)  # several more failed attempts while down
        recv = receivers(port=port)
        assert wait_for(lambda: poster.posted == 5, 5.0)
        time.sleep(0.2)
    assert recv.accepted == [f.to_json() for f in fixes[7:]]
    assert poster.dropped == 7 and poster.backlog == 0 and poster.rejected == 0
    assert len(messages(caplog, logging.DEBUG, "failed again")) >= 2
    down = messages(caplog, logging.WARNING, "down")
    assert len(down) == 1 and "Connection refused" in down[0]
    assert len(messages(caplog, logging.WARNING, "backlog full")) == 1
    back = messages(caplog, logging.INFO, "back after")
    assert len(back) == 1 and "backlog 5, dropped 7" in back[0]


def test_client_errors_drop_the_fix_but_408_429_retry(
        receivers: Callable[..., Receiver], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    fixes = [make_fix(i) for i in range(6)]
    seen: dict[str, int] = {}

    def policy(payload: dict[str, Any], n: int) -> int:
        seen[payload["time"]] = seen.get(payload["time"], 0) + 1
        first = seen[payload["time"]] == 1
        if payload["time"] == fixes[2].time:
            return 400
        if payload["time"] == fixes[3].time and first:
            return 429
        if payload["time"] == fixes[4].time and first:
            return 408
        return 201

    recv = receivers(policy=policy)
    reader = ManualReader()
    poster = GpsPoster(recv.url(), reader, interval=0.02, retry_max=0.1)
    with running(poster):
        feed(poster, reader, fixes)
        assert wait_for(lambda: poster.posted + poster.rejected == 6, 5.0)
        time.sleep(0.2)
    assert recv.accepted == [f.to_json() for i, f in enumerate(fixes) if i != 2]
    assert seen[fixes[2].time] == 1, "a 400 must not be retried"
    assert poster.posted == 5 and poster.rejected == 1 and poster.dropped == 0
    errors = messages(caplog, logging.ERROR, "HTTP 400")
    assert len(errors) == 1


def test_stop_is_prompt_even_with_a_post_hanging(receivers: Callable[..., Receiver]) -> None:
    release = threading.Event()

    def hang(payload: dict[str, Any], n: int) -> int:
        release.wait(5.0)
        return 503

    recv = receivers(policy=hang)
    reader = ManualReader()
    reader.fix = make_fix(0)
    poster = GpsPoster(recv.url(), reader, interval=10.0, timeout=5.0)
    try:
        poster.start()
        assert wait_for(lambda: poster.taken == 1, 2.0)
        time.sleep(0.3)  # the post is now waiting on the receiver
        t0 = time.monotonic()
        poster.stop()
        assert time.monotonic() - t0 < 1.0
        assert not recv.statuses, "the hanging post should still be in flight"
    finally:
        release.set()
    idle = GpsPoster(recv.url(), ManualReader(), interval=10.0)
    idle.start()
    time.sleep(0.1)
    t0 = time.monotonic()
    idle.stop()
    assert time.monotonic() - t0 < 1.0

    def poster_threads() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t.name in ("gps-sample", "gps-post")]

    assert wait_for(lambda: not poster_threads(), 3.0), poster_threads()


def test_credentials_are_sent_but_never_logged(receivers: Callable[..., Receiver],
                                               caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    recv = receivers(policy=lambda payload, n: 503 if n < 2 else 200)
    url = f"http://robot:s3cr3tpw@127.0.0.1:{recv.port}/gps?token=t0k3n"
    reader = ManualReader()
    poster = GpsPoster(url, reader, interval=0.02, retry_max=0.05)
    with running(poster):
        feed(poster, reader, [make_fix(0)])
        assert wait_for(lambda: poster.posted == 1, 3.0)
    assert recv.auth[-1] == "Basic " + base64.b64encode(b"robot:s3cr3tpw").decode()
    assert messages(caplog, logging.WARNING, f"127.0.0.1:{recv.port}/gps")
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name == LOGGER)
    assert "back after" in ours
    assert "s3cr3tpw" not in ours and "t0k3n" not in ours and "robot" not in ours
    assert redact_url("https://u:p@[::1]:8443/x/y?k=v#f") == "https://[::1]:8443/x/y"
    assert redact_url("https://host/gps") == "https://host/gps"


def test_https_with_ca_file(tmp_path: Path, receivers: Callable[..., Receiver],
                            caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    ca = trustme.CA()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1").configure_cert(ctx)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    recv = receivers(tls=ctx)
    reader = ManualReader()
    good = GpsPoster(recv.url("https"), reader, interval=0.02, verify=str(ca_file))
    with running(good):
        feed(good, reader, [make_fix(0)])
        assert wait_for(lambda: good.posted == 1, 5.0)
    assert recv.accepted == [make_fix(0).to_json()]
    fresh = ManualReader()
    fresh.fix = make_fix(1)
    untrusted = GpsPoster(recv.url("https"), fresh, interval=0.02, verify=True)
    with running(untrusted):
        assert wait_for(lambda: not untrusted.route_up, 5.0)
    assert untrusted.posted == 0 and untrusted.backlog == 1
    assert len(recv.accepted) == 1
    assert "certificate verify failed" in messages(caplog, logging.WARNING, "down")[0]


# ---------------------------------------------------------------------------- serial NMEA


def test_nmea_over_a_pty_matches_the_route() -> None:
    route = load_route()
    master, slave = os.openpty()
    reader = NmeaSerialReader(os.ttyname(slave), 9600)
    lines = ROUTE.read_text().splitlines()
    junk = ["garbage \x7f\x01 line", lines[0][:-2] + "00", "$GPGGA,1015", "$GPZZZ,1,2,3*00"]
    stream: list[str] = []
    for i, line in enumerate(lines):
        stream.append(line)
        if i % 40 == 5:
            stream.append(junk[(i // 40) % len(junk)])
    assert sum(x in junk for x in stream) == 5
    got: list[dict[str, Any]] = []
    try:
        with running(reader):
            assert wait_for(lambda: reader.connected, 5.0)
            for line in stream:
                os.write(master, (line + "\r\n").encode("latin-1"))
                time.sleep(0.005)
            deadline = time.monotonic() + 10.0
            while len(got) < len(route) and time.monotonic() < deadline:
                fix = reader.get(timeout=0.5)
                if fix is not None:
                    got.append(fix.to_json())
            assert reader.get(timeout=0.3) is None, "more fixes than epochs"
            assert reader.latest() is not None and reader.latest().to_json() == got[-1]
    finally:
        os.close(master)
        os.close(slave)
    assert [g["time"] for g in got] == [e["time"] for e in route]
    assert_matches_route(got, route, min_len=len(route))
    assert all(g["mode"] == 3 for g in got)
    assert reader.bad_lines == 5


def test_nmea_missing_device_warns_once_and_stops_promptly(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    reader = NmeaSerialReader("/dev/does-not-exist-gps", 4800)
    reader.start()
    try:
        assert wait_for(lambda: len(messages(caplog, logging.DEBUG, "attempt failed")) >= 3,
                        5.0)
    finally:
        t0 = time.monotonic()
        reader.stop()
        assert time.monotonic() - t0 < 1.0
    assert len(messages(caplog, logging.WARNING, "unavailable")) == 1
    assert reader.latest() is None and not reader.connected


# ---------------------------------------------------------------------------- fixed + specs


def test_fixed_reader_emits_the_position_with_current_time() -> None:
    reader = parse_gps_spec("fixed:48.1372,11.5756,519.5")
    assert isinstance(reader, FixedReader)
    reader.interval = 0.05
    with running(reader):
        first = reader.get(timeout=2.0)
        second = reader.get(timeout=2.0)
    assert first is not None and second is not None
    assert (first.lat, first.lon, first.alt, first.mode) == (48.1372, 11.5756, 519.5, 3)
    stamp = datetime.fromisoformat(first.time.replace("Z", "+00:00"))
    assert abs((datetime.now(timezone.utc) - stamp).total_seconds()) < 5.0
    assert first.time.endswith("Z") and second.time > first.time
    flat = parse_gps_spec("fixed:-33.5,-70.25")
    assert isinstance(flat, FixedReader)
    fix = flat.make_fix()
    assert (fix.lat, fix.lon, fix.alt, fix.mode) == (-33.5, -70.25, None, 2)
    assert set(fix.to_json()) == {"time", "lat", "lon", "alt", "speed", "track", "mode"}


@pytest.mark.parametrize(("spec", "kind", "where"), [
    ("gpsd://127.0.0.1:2947", GpsdReader, ("127.0.0.1", 2947)),
    ("gpsd://", GpsdReader, ("127.0.0.1", 2947)),
    ("gpsd", GpsdReader, ("127.0.0.1", 2947)),
    ("gpsd://gps.local", GpsdReader, ("gps.local", 2947)),
    ("GPSD://10.0.0.5:3000", GpsdReader, ("10.0.0.5", 3000)),
    ("gpsd://[::1]:2948", GpsdReader, ("::1", 2948)),
    ("nmea:/dev/ttyUSB0", NmeaSerialReader, ("/dev/ttyUSB0", 4800)),
    ("nmea:/dev/ttyACM0:9600", NmeaSerialReader, ("/dev/ttyACM0", 9600)),
    ("nmea:/dev/serial/by-path/pci-0000:00:14.0-usb-0:2:1.0-port0", NmeaSerialReader,
     ("/dev/serial/by-path/pci-0000:00:14.0-usb-0:2:1.0-port0", 4800)),
])
def test_parse_gps_spec_valid(spec: str, kind: type, where: tuple[Any, Any]) -> None:
    reader = parse_gps_spec(spec)
    assert type(reader) is kind
    if isinstance(reader, GpsdReader):
        assert (reader.host, reader.port) == where
    else:
        assert isinstance(reader, NmeaSerialReader)
        assert (reader.device, reader.baud) == where


def test_parse_gps_spec_none() -> None:
    assert parse_gps_spec("none") is None
    assert parse_gps_spec("NONE") is None


@pytest.mark.parametrize(("spec", "fragment"), [
    ("", "unknown GPS spec"),
    ("gps://127.0.0.1", "unknown GPS spec"),
    ("/dev/ttyUSB0", "unknown GPS spec"),
    ("gpsd://host:99999", "port"),
    ("gpsd://host:abc", "port"),
    ("gpsd://host:", "bad gpsd address"),
    ("gpsd://:2947", "bad gpsd address"),
    ("gpsd://user@host:2947", "gpsd://HOST:PORT"),
    ("gpsd://host:2947/x", "gpsd://HOST:PORT"),
    ("nmea:", "missing serial device"),
    ("nmea::9600", "missing serial device"),
    ("nmea:/dev/ttyUSB0:1234", "baud 1234"),
    ("fixed:", "fixed:LAT,LON[,ALT]"),
    ("fixed:48.1", "fixed:LAT,LON[,ALT]"),
    ("fixed:1,2,3,4", "fixed:LAT,LON[,ALT]"),
    ("fixed:abc,11", "latitude 'abc' is not a number"),
    ("fixed:91,11", "latitude '91' is out of range"),
    ("fixed:48,-181", "longitude '-181' is out of range"),
    ("fixed:nan,11", "latitude 'nan' is out of range"),
    ("fixed:48,11,high", "altitude 'high' is not a number"),
])
def test_parse_gps_spec_invalid(spec: str, fragment: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_gps_spec(spec)
    message = str(info.value)
    assert fragment in message and "\n" not in message
    assert repr(spec) in message


class BurstReader(GpsReader):
    """A reader whose fixes the test publishes directly, several at once."""

    def _run(self) -> None:
        self._stop.wait()

    def publish(self, fix: GpsFix) -> None:
        self._publish(fix)


def route_fix(tenths: int) -> GpsFix:
    """A fix at 10:00:00 plus `tenths` tenths of a second."""
    return GpsFix(time=f"2024-01-01T10:00:{tenths // 10:02d}.{tenths % 10}00Z", lat=48.0,
                  lon=11.0)


def test_a_burst_of_late_fixes_is_taken_whole_when_slower_than_the_interval() -> None:
    reader = BurstReader()
    poster = GpsPoster("http://127.0.0.1:9/gps", reader, interval=0.2)
    for i in range(0, 12, 2):  # a 5 Hz receiver whose fixes arrive in one go
        reader.publish(route_fix(i))
    assert poster.sample() and poster.taken == 6
    assert not poster.sample()  # nothing new: nothing taken twice
    reader.publish(route_fix(12))
    assert poster.sample() and poster.taken == 7 and poster.backlog == 7


def test_a_burst_faster_than_the_interval_is_thinned_by_fix_time() -> None:
    reader = BurstReader()
    poster = GpsPoster("http://127.0.0.1:9/gps", reader, interval=1.0)
    for i in range(0, 32, 2):  # 5 Hz for 3 s, against one post per second
        reader.publish(route_fix(i))
    assert poster.sample() and poster.taken == 4  # 0.0, 1.0, 2.0 and 3.0 s
