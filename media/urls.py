"""URL checks and the one redactor that keeps credentials out of every log line."""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit, urlunsplit

SECRET_PARAMS = frozenset({
    "token", "access_token", "refresh_token", "id_token", "auth", "authorization", "key",
    "api_key", "apikey", "secret", "client_secret", "password", "passwd", "pwd", "pass",
    "sig", "signature", "credential", "credentials", "session", "sessionid",
})
"""Query parameters whose values are credentials (matched case-insensitively; so is any
name ending in token, secret, password or key after a separator, e.g. janus_secret)."""
SECRET_SUFFIXES = ("token", "secret", "password", "_key", "-key")
HIDDEN = "***"

# A query parameter (after ? & or ;) and its value, wherever it stands in a line of text.
_PARAM = re.compile(r"(?P<lead>[?&;])(?P<name>[^=&;#?\s\"'<>]+)=(?P<value>[^&;#\s\"'<>]*)")
# user:password@ (or user@) after a scheme, wherever it stands in a line of text.
_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)[^/?#@\s\"'<>]+@")


def secret_param(name: str) -> bool:
    """Does a query parameter of this name carry a credential?"""
    n = unquote(name).strip().lower()
    return n in SECRET_PARAMS or n.endswith(SECRET_SUFFIXES)


def _hide_param(m: re.Match[str]) -> str:
    if not secret_param(m["name"]) or not m["value"]:
        return m[0]
    return f"{m['lead']}{m['name']}={HIDDEN}"


def redact_text(text: str) -> str:
    """`text` with every user:password@ and credential query value in it replaced by ***
    (request lines, URLs inside messages, ffmpeg's output)."""
    if "@" in text:
        text = _USERINFO.sub(rf"\g<scheme>{HIDDEN}@", text)
    if "=" in text:
        text = _PARAM.sub(_hide_param, text)
    return text


def redact(url: str, *, userinfo: str = f"{HIDDEN}@", query: bool = True) -> str:
    """The URL (or request target, e.g. /color?token=...) fit for logs.

    Any user:password@ becomes `userinfo` ("" leaves it out) and credential query values
    become ***; `query=False` drops the query and fragment altogether. A URL that does not
    parse is masked as free text (`redact_text`).
    """
    try:
        parts = urlsplit(url)
        has_userinfo = parts.username is not None or parts.password is not None
        port = parts.port if has_userinfo else None
    except ValueError:
        return redact_text(url)
    if has_userinfo or not query:
        netloc = parts.netloc
        if has_userinfo:
            host = parts.hostname or ""
            if ":" in host:
                host = f"[{host}]"
            netloc = f"{userinfo}{host}" + (f":{port}" if port else "")
        url = urlunsplit((parts.scheme, netloc, parts.path,
                          parts.query if query else "", parts.fragment if query else ""))
    if "=" in url:
        url = _PARAM.sub(_hide_param, url)
    return url


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
