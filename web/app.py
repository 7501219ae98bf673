"""The Flask application factory: page, MJPEG streams, snapshots, status.

Routes hold no per-frame logic: streams and snapshots come from the FrameHub, and
/status reads the control block the other processes fill in.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from flask import Flask, Response, abort, jsonify, render_template, request

from encoder.options import H264Options
from media.filters import filter_catalog, parse_filter_list
from pipeline.config import Config
from pipeline.control import STREAMS, Control
from pipeline.shm import FrameRing
from web.channel import BOUNDARY
from web.depth_api import PAGE_VIEWS, depth_api
from web.depth_video import DepthVideoFeed, coding, coding_headers
from web.hub import FrameHub
from web.imu import ImuReadout
from web.metrics import metrics_response
from web.options import WebOptions
from web.webrtc import WebRTCCollector, webrtc_blueprint, webrtc_status
from web.webrtc import page_config as webrtc_page_config
from webrtc.options import WebRTCOptions

SNAPSHOT_TIMEOUT_S = 5.0
FANOUT_KEY = "depthcam.fanout"  # environ: (hub, stream, advance) a server may serve from
HEALTHY_HEARTBEAT_S = 5.0


def _query_float(name: str, lo: float, hi: float) -> float | None:
    """A float query parameter in [lo, hi], None when absent; 400 on nonsense."""
    raw = request.args.get(name)
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        abort(400, description=f"{name} must be a number")
    if not lo <= value <= hi:  # also rejects NaN
        abort(400, description=f"{name} must be between {lo:g} and {hi:g}")
    return value


def _advance_headers() -> bool:
    """Send the next part's headers right after each JPEG? ?advance_headers=1/0 decides;
    by default only for a Chromium-based browser's <img> (Blink shows a part once the
    next part's headers arrive), since those parts cannot carry Content-Length; a script
    reading the stream with fetch() gets the usual parts."""
    raw = request.args.get("advance_headers")
    if raw is None:
        return ("Chrome/" in request.headers.get("User-Agent", "")
                and request.headers.get("Sec-Fetch-Dest") == "image")
    if raw not in ("0", "1"):
        abort(400, description="advance_headers must be 0 or 1")
    return raw == "1"


def _check_query(allowed: set[str]) -> None:
    unknown = set(request.args) - allowed
    if unknown:
        abort(400, description=f"unknown query parameter(s): {', '.join(sorted(unknown))}")


def create_app(cfg: Config, hub: FrameHub, control: Control, backend: str,
               opts: WebOptions | None = None, *, raw: FrameRing | None = None,
               imu: FrameRing | None = None,
               connections: Callable[[], dict[str, int]] | None = None,
               depth_video: DepthVideoFeed | None = None, camera: str = "",
               clients: Callable[[], int] | None = None,
               cameras: Callable[[], list[dict[str, Any]]] | None = None,
               cameras_status: Callable[[], dict[str, Any]] | None = None,
               metric_sources: Callable[[], list[tuple[str, FrameHub, Control]]] | None = None,
               grid: Callable[[], bool] | None = None) -> Flask:
    """Build the app around an existing hub and control block (and the raw and IMU rings,
    if given).

    `connections`: the web server's connection table, for /status; `depth_video`: the
    depth-video feed, where its stage runs (/depth-video); `camera`: this camera's name;
    `clients`: stream clients of the whole server (for --max-clients), else this app's;
    `cameras`, `cameras_status`, `metric_sources`: every camera's entry, status and
    counters, given to the first camera's app (/cameras.json, /status's `cameras` and
    `sync`, /metrics labelled by camera); `grid()`: whether / is the grid of every
    camera, and this camera's page is /cam/NAME/ only.
    """
    opts = opts or WebOptions()
    webrtc = opts.webrtc
    auth = opts.auth
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024
    readout = ImuReadout(imu)

    @app.before_request
    def _authenticate() -> Response | None:
        if not auth.enabled or request.path == "/healthz" or request.path.startswith(
                "/static/"):
            return None
        token = request.args.get("token")
        header = request.headers.get("Authorization", "")
        if header.lower().startswith("bearer "):
            token = header[7:].strip()
        if token is not None and auth.check_token(token):
            return None
        basic = request.authorization
        if (basic is not None and basic.type == "basic" and auth.basic
                and auth.check_basic(basic.username or "", basic.password or "")):
            return None
        resp = jsonify(error="Unauthorized", detail="credentials required")
        resp.status_code = 401
        if auth.basic:
            resp.headers["WWW-Authenticate"] = 'Basic realm="camera", charset="UTF-8"'
        elif auth.token:
            resp.headers["WWW-Authenticate"] = 'Bearer realm="camera"'
        return resp

    @app.after_request
    def _cors(resp: Response) -> Response:
        if opts.allow_origin:
            resp.headers["Access-Control-Allow-Origin"] = opts.allow_origin
            resp.headers["Vary"] = "Origin"
        return resp

    @app.errorhandler(400)
    @app.errorhandler(404)
    @app.errorhandler(405)
    @app.errorhandler(409)
    @app.errorhandler(413)
    @app.errorhandler(503)
    def _error(err: Any) -> tuple[Response, int]:
        code = getattr(err, "code", 500) or 500
        resp = jsonify(error=getattr(err, "name", "error"), detail=getattr(err, "description", ""))
        return resp, code

    @app.get("/")
    def index() -> str:
        several = grid is not None and grid()
        if several and cameras is not None and request.script_root == "":
            _check_query({"token"})
            token = request.args.get("token")
            query = f"?token={quote(token)}" if token else ""
            return render_template("grid.html", cameras=cameras(), query=query,
                                   page_config={"query": query})
        view = request.args.get("view", "2d")
        if request.args.get("depth", "video") not in ("video", "metric"):
            abort(400, description="depth must be video or metric")
        if view not in PAGE_VIEWS:
            abort(404, description=f"unknown view {view!r}; choose from {', '.join(PAGE_VIEWS)}")
        token = request.args.get("token")
        query = f"?token={quote(token)}" if token else ""
        page_config = {"query": query, "camera": camera, "depth_mode": cfg.depth_mode,
                       "depth_min": cfg.depth_min, "depth_max": cfg.depth_max, "view": view,
                       "webrtc": webrtc_page_config(webrtc)}
        return render_template("index.html", cfg=cfg, query=query, page_config=page_config,
                               camera=camera if cameras is None or several else "")

    def too_many_clients() -> Response | None:
        """503 with Retry-After once the stream clients reach --max-clients."""
        if clients is not None:
            n = clients()
        else:
            n = sum(ch.viewers for ch in hub.channels.values())
            if depth_video is not None:
                n += depth_video.viewers
        if n < opts.max_clients:
            return None
        resp = jsonify(error="Service Unavailable",
                       detail=f"too many clients (limit {opts.max_clients})")
        resp.status_code = 503
        resp.headers["Retry-After"] = "5"
        return resp

    def stream_response(name: str) -> Response:
        _check_query({"fps", "token", "advance_headers"})
        fps = _query_float("fps", 0.1, 120)
        advance = _advance_headers()
        if opts.fps_limit:
            fps = min(fps or opts.fps_limit, opts.fps_limit)
        interval = 1.0 / fps if fps else 0.0
        if (full := too_many_clients()) is not None:
            return full
        if not interval:  # our server may hand the socket to the hub's shared writer
            request.environ[FANOUT_KEY] = (hub, name, advance)
        resp = Response(
            hub.stream(name, interval, advance, request.remote_addr),
            mimetype=f"multipart/x-mixed-replace; boundary={BOUNDARY}",
        )
        resp.headers["Cache-Control"] = "no-store, no-cache, must-revalidate, max-age=0"
        resp.headers["Pragma"] = "no-cache"
        resp.headers["X-Accel-Buffering"] = "no"
        return resp

    def snapshot_response(name: str) -> Response:
        _check_query({"token"})
        got = hub.snapshot(name, SNAPSHOT_TIMEOUT_S, request.remote_addr)
        if got is None:
            abort(503, description="no frame within the timeout")
        jpeg, meta = got
        resp = Response(jpeg, mimetype="image/jpeg")
        resp.headers["Cache-Control"] = "no-store"
        resp.headers["X-Timestamp"] = f"{meta.ts_capture:.6f}"
        resp.headers.update(cfg.stream_headers.get(name, {}))
        return resp

    for stream in STREAMS:
        app.add_url_rule(f"/{stream}", f"stream_{stream}",
                         lambda s=stream: stream_response(s))
        app.add_url_rule(f"/{stream}.jpg", f"snapshot_{stream}",
                         lambda s=stream: snapshot_response(s))

    video_doc = None
    if depth_video is not None:
        video_doc = {"route": "/depth-video", "format": "video/h264",
                     "codec": depth_video.codec(), "units": "m", **coding(cfg)}

        @app.get("/depth-video")
        def depth_video_stream() -> Response:
            _check_query({"token"})
            if (full := too_many_clients()) is not None:
                return full
            resp = Response(depth_video.stream(),
                            mimetype=f"multipart/x-mixed-replace; boundary={BOUNDARY}")
            resp.headers.update(coding_headers(cfg))
            resp.headers["X-Depth-Codec"] = depth_video.codec()
            resp.headers["Cache-Control"] = "no-store, no-cache, must-revalidate, max-age=0"
            resp.headers["X-Accel-Buffering"] = "no"
            return resp

    app.register_blueprint(depth_api(cfg, control, raw, video_doc))

    @app.get("/filters")
    def get_filters() -> Response:
        _check_query({"token"})
        active = control.settings().get("filters", list(cfg.filters))
        return jsonify(active=active, available=filter_catalog())

    @app.post("/filters")
    def set_filters() -> Response:
        _check_query({"token"})
        body = request.get_json(silent=True)
        wanted = body.get("filters") if isinstance(body, dict) else None
        if isinstance(wanted, list) and all(isinstance(n, str) for n in wanted):
            wanted = ",".join(wanted)
        if not isinstance(wanted, str):
            abort(400, description='expected JSON {"filters": ["gray", "blur", ...]}')
        try:
            names = parse_filter_list(wanted)
        except ValueError as exc:
            abort(400, description=str(exc))
        control.update_settings(lambda doc: {**doc, "filters": names})
        return jsonify(active=names)

    if webrtc is not None:
        app.register_blueprint(webrtc_blueprint(webrtc))

    @app.get("/healthz")
    def healthz() -> tuple[Response, int]:
        snap = control.snapshot()
        now = time.time()
        ages = {r: now - snap[f"hb_{r}"] for r in ("capture", "encoder")}
        ok = all(age < HEALTHY_HEARTBEAT_S for age in ages.values())
        return jsonify(ok=ok, heartbeat_age_s={k: round(v, 3) for k, v in ages.items()}), (
            200 if ok else 503)

    @app.get("/metrics")
    def metrics() -> Response:
        _check_query({"token"})
        every = metric_sources() if metric_sources is not None else [(camera, hub, control)]
        return metrics_response(every, extra=[WebRTCCollector(control)] if webrtc else [])

    @app.get("/status")
    def status() -> Response:
        _check_query({"token"})
        doc = build_status(cfg, hub, control, backend, webrtc=webrtc, h264=opts.h264,
                           imu=readout, depth_video=depth_video)
        if connections is not None:
            doc["connections"] = {**connections(), "max_clients": opts.max_clients}
        if cameras_status is not None:
            doc.update(cameras_status())
        return jsonify(doc)

    if cameras is not None:
        @app.get("/cameras.json")
        def cameras_doc() -> Response:
            _check_query({"token"})
            return jsonify(cameras())

    return app


def build_status(cfg: Config, hub: FrameHub, control: Control, backend: str, *,
                 webrtc: WebRTCOptions | None = None,
                 h264: H264Options | None = None,
                 imu: ImuReadout | None = None,
                 depth_video: DepthVideoFeed | None = None) -> dict[str, Any]:
    """The /status document: source, rates, viewers, latency, restarts, uptime."""
    snap = control.snapshot()
    info = control.info()
    now = time.time()
    streams = {}
    for name, ch in hub.channels.items():
        ch.tick()
        streams[name] = {
            "viewers": ch.viewers,
            "fps_encoded": round(snap[f"encode_fps_{name}"], 2),
            "fps_sent": None if ch.fps_out is None else round(ch.fps_out, 2),
            "parts_sent_per_s": None if ch.parts_per_s is None else round(ch.parts_per_s, 2),
            "frames_encoded": int(snap[f"encoded_{name}"]),
            "encode_ms": round(snap[f"encode_ms_{name}"], 2),
            "latency_ms": ch.latency_ms(),
            "width": ch.meta.width if ch.meta else None,
            "height": ch.meta.height if ch.meta else None,
        }
    return {
        "source": info,
        "source_ok": bool(snap["source_ok"]),
        "resolution": {"width": info.get("width", cfg.width),
                       "height": info.get("height", cfg.height)},
        "fps_target": cfg.fps,
        "fps_captured": round(snap["capture_fps"], 2),
        "frames_captured": int(snap["frames_captured"]),
        "capture_ms": round(snap["capture_ms"], 2),
        "encoder": {"backend": backend, "quality": cfg.quality,
                    "depth_quality": cfg.depth_quality},
        "depth": {"mode": cfg.depth_mode, "min_m": cfg.depth_min, "max_m": cfg.depth_max,
                  "scale": info.get("depth_scale")},
        "streams": streams,
        "viewers": sum(ch.viewers for ch in hub.channels.values()),
        "clients": hub.clients(),
        "filters": control.settings().get("filters", list(cfg.filters)),
        "restarts": {r: int(snap[f"restarts_{r}"]) for r in ("capture", "encoder", "web")},
        "pids": {r: int(snap[f"pid_{r}"]) for r in ("capture", "encoder", "web")},
        "heartbeat_age_s": {r: round(now - snap[f"hb_{r}"], 3) if snap[f"hb_{r}"] else None
                            for r in ("capture", "encoder", "web")},
        "uptime_s": round(now - snap["started_at"], 3),
        "mcap": _mcap_status(snap),
        "depth_video": _depth_video_status(snap, depth_video),
        "imu": (imu or ImuReadout(None)).status(snap, info),
        **webrtc_status(control, webrtc, h264),
    }


def _mcap_status(snap: dict[str, float]) -> dict[str, Any] | None:
    """The MCAP recorder child, where one runs: pid, restarts, recording or stopped."""
    if not snap["pid_mcap"]:
        return None
    return {"pid": int(snap["pid_mcap"]), "restarts": int(snap["restarts_mcap"]),
            "recording": bool(snap["mcap_recording"]),
            "file_index": int(snap["mcap_file_index"]),
            "depth_dropped": int(snap["mcap_depth_dropped"])}


def _depth_video_status(snap: dict[str, float], feed: DepthVideoFeed | None
                        ) -> dict[str, Any] | None:
    """The depth-video stage, where it runs: rates, encode time, keyframes, viewers."""
    if feed is None:
        return None
    return {"viewers": feed.viewers, "fps": round(snap["dv_fps"], 2),
            "bitrate": round(snap["dv_bps"]), "encode_ms": round(snap["dv_encode_ms"], 2),
            "frames": int(snap["dv_frames"]), "keyframes": int(snap["dv_keyframes"]),
            "bytes": int(snap["dv_bytes"]), "codec": feed.codec(),
            "restarts": int(snap["restarts_depthvideo"]), "pid": int(snap["pid_depthvideo"])}
