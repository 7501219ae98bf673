"""The web server's options: listen address, TLS, access control and limits, typed once.

`add_web_args` declares them and `web_options` checks them (the certificate chain is
loaded here, once, so a bad one is one line and exit code 2); the frozen result goes to
the web child only, the one process that needs the credentials it holds.
"""

from __future__ import annotations

import argparse
import ssl
from dataclasses import dataclass, field
from typing import Any

from encoder.options import H264Options
from pipeline.args import fps_arg, host_arg, port_arg, positive_int
from web.auth import Authenticator, build_authenticator
from web.limits import ConnLimits, add_limit_args, limits_from
from webrtc.options import WebRTCOptions

DEFAULT_MAX_CLIENTS = 500


@dataclass(frozen=True)
class WebOptions:
    """Where the web server listens, who may watch, and its limits."""

    host: str = "0.0.0.0"
    port: int = 5000
    auth: Authenticator = field(default_factory=Authenticator)
    cert: str | None = None
    key: str | None = None
    max_clients: int = DEFAULT_MAX_CLIENTS
    max_clients_given: bool = False  # --max-clients was on the command line
    allow_origin: str | None = None
    fps_limit: float | None = None
    limits: ConnLimits = field(default_factory=ConnLimits)
    # What the page and /status show of the other roles: the gateway the player signals
    # through (with its API secret, which the signalling proxy adds), the H.264 stage.
    webrtc: WebRTCOptions | None = None
    h264: H264Options | None = None

    @property
    def ssl_args(self) -> dict[str, Any]:
        """Keyword arguments that make gevent's server speak TLS (empty for plain HTTP)."""
        return {"certfile": self.cert, "keyfile": self.key} if self.cert else {}


def add_web_args(p: argparse.ArgumentParser) -> None:
    """The "web server" and "access and limits" option groups."""
    g = p.add_argument_group("web server")
    g.add_argument("--host", type=host_arg, default="0.0.0.0",
                   help="address to listen on (default 0.0.0.0, all IPv4 interfaces)")
    g.add_argument("--port", type=port_arg, default=5000, help="TCP port (default 5000)")
    s = p.add_argument_group("access and limits")
    s.add_argument("--auth", metavar="USER:PASSWORD",
                   help="require HTTP Basic auth on every route")
    s.add_argument("--auth-file", metavar="PATH",
                   help="Basic-auth users, one USER:HASH per line "
                   "(make a line with: python3 -m web.auth USER)")
    s.add_argument("--token", help="accept this token as ?token=... or 'Authorization: Bearer'")
    s.add_argument("--cert", metavar="PEM", help="serve HTTPS with this certificate chain")
    s.add_argument("--key", metavar="PEM", help="private key for --cert")
    s.add_argument("--max-clients", type=positive_int, default=None,
                   help="stream clients at once; more get 503 with Retry-After (default 500, "
                   "or fewer if the open-files limit allows fewer)")
    s.add_argument("--allow-origin", metavar="ORIGIN",
                   help="CORS: send Access-Control-Allow-Origin: ORIGIN (off by default)")
    s.add_argument("--fps-limit", type=fps_arg, default=None,
                   help="highest rate sent to any client (clients may ask lower with ?fps=)")
    add_limit_args(p)


def web_options(ns: argparse.Namespace) -> WebOptions:
    """Check the parsed web options and build them; ValueError with a one-line message."""
    auth = build_authenticator(ns.auth, ns.auth_file, ns.token)
    if bool(ns.cert) != bool(ns.key):
        raise ValueError("--cert and --key go together")
    if ns.cert:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            ctx.load_cert_chain(ns.cert, ns.key)
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(f"--cert/--key: {getattr(exc, 'strerror', None) or exc}") from None
    return WebOptions(
        host=ns.host, port=ns.port, auth=auth, cert=ns.cert, key=ns.key,
        max_clients=ns.max_clients or DEFAULT_MAX_CLIENTS,
        max_clients_given=ns.max_clients is not None,
        allow_origin=ns.allow_origin, fps_limit=ns.fps_limit, limits=limits_from(vars(ns)))
