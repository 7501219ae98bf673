"""URL checks and redaction shared by the push side."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def redact(url: str) -> str:
    """The URL with any user:password@ replaced, fit for logs."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def parse_destination(url: str, schemes: tuple[str, ...]) -> tuple[str, str, int, str]:
    """(scheme, host, port, path) of a destination URL; ValueError with a clear message."""
    parts = urlsplit(url)
    if parts.scheme not in schemes:
        raise ValueError(f"{redact(url)}: scheme must be one of {', '.join(schemes)}")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"{redact(url)}: bad port number") from None
    if not parts.hostname:
        raise ValueError(f"{redact(url)}: no host")
    if port is None:
        if parts.scheme == "tcp":
            raise ValueError(f"{redact(url)}: tcp:// needs a port")
        port = {"https": 443, "rtmp": 1935, "rtmps": 443, "rtsp": 554}.get(parts.scheme, 80)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return parts.scheme, parts.hostname, port, path
