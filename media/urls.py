"""URL checks and redaction shared by the push side."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def redact(url: str, *, userinfo: str = "***@") -> str:
    """The URL fit for logs: any user:password@ replaced by `userinfo` ("" leaves it out),
    and the query and fragment dropped, since they may carry tokens.

    A URL that does not parse (a bad IPv6 literal) gives "<invalid url>".
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<invalid url>"
    netloc = parts.netloc
    if "@" in netloc:
        netloc = userinfo + netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


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
