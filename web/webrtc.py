"""WebRTC signalling through our own origin: a narrow proxy of the Janus HTTP API.

The page never talks to Janus directly: it posts Janus API requests to `/webrtc/janus...`
here, behind the same auth, TLS and CORS rules as the MJPEG streams, and we forward
them to the gateway with its API secret added. Only what a viewer needs passes (create
a session, attach the streaming plugin, watch our mountpoint, start/pause/stop, trickle,
keepalive, long-poll for events, detach, destroy), so nothing else of Janus is reachable
from outside. The upstream connections use gevent sockets: a long poll held open for
30 s costs one greenlet, not the process.
"""

from __future__ import annotations

import http.client
import json
import logging
import time
from typing import Any
from urllib.parse import urlencode, urlsplit

import gevent.socket
from flask import Blueprint, Response, abort, jsonify, request
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from encoder.options import H264Options
from pipeline.control import Control
from webrtc.options import WebRTCOptions

log = logging.getLogger("web.webrtc")

UPSTREAM_TIMEOUT_S = 10.0
LONG_POLL_TIMEOUT_S = 40.0  # Janus answers an idle long poll after 30 s
SESSION_VERBS = {"attach", "keepalive", "destroy"}
HANDLE_VERBS = {"message", "trickle", "keepalive", "detach", "hangup"}
VIEWER_REQUESTS = {"watch", "start", "pause", "stop", "configure", "switch"}


class _GeventHTTPConnection(http.client.HTTPConnection):
    """http.client over a gevent socket: blocking code that yields to other greenlets."""

    def connect(self) -> None:
        self.sock = gevent.socket.create_connection((self.host, self.port), self.timeout)


class _GeventHTTPSConnection(http.client.HTTPSConnection):
    """The same over TLS, for an external Janus behind HTTPS."""

    def connect(self) -> None:
        import gevent.ssl  # noqa: PLC0415

        sock = gevent.socket.create_connection((self.host, self.port), self.timeout)
        ctx = gevent.ssl.create_default_context()
        self.sock = ctx.wrap_socket(sock, server_hostname=self.host)


class JanusProxy:
    """Forwards one viewer's Janus API calls, adding the secret, checking what passes."""

    def __init__(self, opts: WebRTCOptions) -> None:
        self.opts = opts
        parts = urlsplit(opts.api_url)
        self.https = parts.scheme == "https"
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or (443 if self.https else 80)
        self.path = parts.path.rstrip("/")

    def _conn(self, timeout: float) -> http.client.HTTPConnection:
        cls = _GeventHTTPSConnection if self.https else _GeventHTTPConnection
        return cls(self.host, self.port, timeout=timeout)

    def forward(self, method: str, sub: str, body: dict[str, Any] | None,
                timeout: float = UPSTREAM_TIMEOUT_S, query: dict[str, str] | None = None
                ) -> tuple[int, bytes]:
        """(status, body) of one upstream request; 503 when Janus cannot be reached."""
        query = dict(query or {})
        data = None
        if body is not None:
            if self.opts.api_secret:
                body = {**body, "apisecret": self.opts.api_secret}
            data = json.dumps(body).encode()
        elif self.opts.api_secret:
            query["apisecret"] = self.opts.api_secret
        url = self.path + sub + (f"?{urlencode(query)}" if query else "")
        conn = self._conn(timeout)
        try:
            conn.request(method, url, body=data,
                         headers={"Content-Type": "application/json"} if data else {})
            resp = conn.getresponse()
            return resp.status, resp.read(1 << 20)
        except (OSError, http.client.HTTPException) as exc:
            log.debug("Janus %s %s: %s", method, sub, exc)
            return 503, json.dumps({"janus": "error", "error": {
                "code": 503, "reason": "the WebRTC gateway is not reachable"}}).encode()
        finally:
            conn.close()


def _body() -> dict[str, Any]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("janus"), str):
        abort(400, description='expected a Janus API request: JSON {"janus": ..., ...}')
    body.pop("apisecret", None)
    body.pop("admin_secret", None)
    return body


def _check_message(body: dict[str, Any], mountpoint: int) -> None:
    inner = body.get("body")
    if not isinstance(inner, dict) or inner.get("request") not in VIEWER_REQUESTS:
        abort(403, description=f"only {', '.join(sorted(VIEWER_REQUESTS))} requests pass")
    if inner["request"] in ("watch", "switch") and inner.get("id") != mountpoint:
        abort(403, description=f"only mountpoint {mountpoint} can be watched")


def webrtc_blueprint(opts: WebRTCOptions) -> Blueprint:
    """Routes under /webrtc: the page's settings and the Janus API proxy."""
    bp = Blueprint("webrtc", __name__, url_prefix="/webrtc")
    proxy = JanusProxy(opts)

    def reply(status: int, data: bytes) -> Response:
        resp = Response(data, status=status, mimetype="application/json")
        resp.headers["Cache-Control"] = "no-store"
        return resp

    @bp.get("/config")
    def config() -> Response:
        return jsonify(page_config(opts))

    @bp.post("/janus")
    def create() -> Response:
        body = _body()
        if body["janus"] != "create":
            abort(403, description="only create passes at the root")
        body.pop("id", None)
        return reply(*proxy.forward("POST", "", body))

    @bp.post("/janus/<int:session>")
    def session_request(session: int) -> Response:
        body = _body()
        if body["janus"] not in SESSION_VERBS:
            abort(403, description=f"only {', '.join(sorted(SESSION_VERBS))} pass here")
        if body["janus"] == "attach" and body.get("plugin") != "janus.plugin.streaming":
            abort(403, description="only the streaming plugin can be attached")
        return reply(*proxy.forward("POST", f"/{session}", body))

    @bp.get("/janus/<int:session>")
    def long_poll(session: int) -> Response:
        maxev = request.args.get("maxev", "1")
        if not maxev.isdigit() or not 1 <= int(maxev) <= 10:
            abort(400, description="maxev must be 1-10")
        return reply(*proxy.forward("GET", f"/{session}", None, timeout=LONG_POLL_TIMEOUT_S,
                                    query={"maxev": maxev, "rid": str(int(time.time() * 1000))}))

    @bp.post("/janus/<int:session>/<int:handle>")
    def handle_request(session: int, handle: int) -> Response:
        body = _body()
        if body["janus"] not in HANDLE_VERBS:
            abort(403, description=f"only {', '.join(sorted(HANDLE_VERBS))} pass here")
        if body["janus"] == "message":
            _check_message(body, opts.mountpoint)
        return reply(*proxy.forward("POST", f"/{session}/{handle}", body))

    @bp.errorhandler(403)
    def forbidden(err: Any) -> tuple[Response, int]:
        return jsonify(error="Forbidden", detail=getattr(err, "description", "")), 403

    return bp


def ice_servers(urls: tuple[str, ...]) -> list[dict[str, str]]:
    """--ice-server URLs as RTCPeerConnection iceServers (credentials split out of TURN)."""
    out = []
    for url in urls:
        scheme, _, rest = url.partition(":")
        if "@" in rest:
            cred, _, hostport = rest.rpartition("@")
            user, _, pwd = cred.partition(":")
            out.append({"urls": f"{scheme}:{hostport}", "username": user, "credential": pwd})
        else:
            out.append({"urls": url})
    return out


def page_config(opts: WebRTCOptions | None) -> dict[str, Any]:
    """What the page's WebRTC player needs: where to signal, the mountpoint, ICE servers."""
    if opts is None:
        return {"enabled": False}
    return {"enabled": True, "api": "webrtc/janus", "mountpoint": opts.mountpoint,
            "iceServers": ice_servers(opts.ice_servers)}


def webrtc_status(control: Control, opts: WebRTCOptions | None,
                  h264: H264Options | None) -> dict[str, Any]:
    """The /status sections of the H.264 stage and the gateway (None where none runs)."""
    if h264 is None:
        return {"h264": None, "janus": None}
    snap = control.snapshot()
    now = time.time()
    return {
        "h264": {
            "consumers": int(snap["webrtc_viewers"] + sum(
                v for k, v in snap.items() if k.startswith("sink_h264"))),
            "fps": round(snap["h264_fps"], 2),
            "bitrate_bps": round(snap["h264_bps"]),
            "target_bitrate_bps": int(snap["h264_bitrate"]) or h264.bitrate,  # as applied
            "gop": h264.gop,
            "frames": int(snap["h264_frames"]),
            "keyframes": int(snap["h264_keyframes"]),
            "bytes": int(snap["h264_bytes"]),
            "encode_ms": round(snap["h264_encode_ms"], 2),
            "pid": int(snap["pid_h264"]),
            "restarts": int(snap["restarts_h264"]),
            "heartbeat_age_s": round(now - snap["hb_h264"], 3) if snap["hb_h264"] else None,
        },
        "janus": None if opts is None else {
            "up": bool(snap["janus_up"]),
            "private": opts.private,
            "viewers": int(snap["webrtc_viewers"]),
            "mountpoint": opts.mountpoint,
            "pid": int(snap["janus_pid"]) if opts.private else None,
            "starts": int(snap["janus_starts"]),
            "restarts": int(snap["restarts_janus"]),
        },
    }


class WebRTCCollector:
    """/metrics families of the H.264 stage and the gateway."""

    def __init__(self, control: Control) -> None:
        self.control = control

    def collect(self) -> Any:
        snap = self.control.snapshot()
        for name, doc, value in (
                ("camera_h264_frames", "H.264 access units encoded", snap["h264_frames"]),
                ("camera_h264_keyframes", "H.264 IDR access units", snap["h264_keyframes"]),
                ("camera_h264_bytes", "H.264 bytes encoded", snap["h264_bytes"]),
                ("camera_janus_starts", "Janus process starts", snap["janus_starts"])):
            c = CounterMetricFamily(name, doc)
            c.add_metric([], value)
            yield c
        for name, doc, value in (
                ("camera_h264_fps", "H.264 frames per second", snap["h264_fps"]),
                ("camera_h264_bitrate_bps", "H.264 bit rate", snap["h264_bps"]),
                ("camera_h264_encode_seconds", "Last H.264 encode time",
                 snap["h264_encode_ms"] / 1000.0),
                ("camera_janus_up", "1 while the Janus API answers", snap["janus_up"]),
                ("camera_webrtc_viewers", "Viewers of the WebRTC mountpoint",
                 snap["webrtc_viewers"])):
            g = GaugeMetricFamily(name, doc)
            g.add_metric([], value)
            yield g
