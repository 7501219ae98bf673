"""Argument types and checks every command line shares: one-line errors, exit code 2.

Each entry point builds its parser from the option groups of the roles it runs; the
types here keep a bad value to one clear line on stderr.
"""

from __future__ import annotations

import argparse
import errno
import ipaddress
import re
import socket
import sys
from collections.abc import Callable
from typing import NoReturn


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a bad value as one line and exit code 2."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        sys.exit(2)


def ranged(cast: Callable[[str], float], lo: float, hi: float, what: str
           ) -> Callable[[str], float]:
    """An argparse type: `cast` the text and require lo <= value <= hi, else one clear line."""

    def parse(text: str) -> float:
        try:
            value = cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if not lo <= value <= hi:  # also rejects NaN
            raise argparse.ArgumentTypeError(
                f"{text!r} must be between {cast(lo)!s:.10} and {cast(hi)!s:.10}")
        return value

    return parse


_BIT_SUFFIX = {"k": 1e3, "m": 1e6, "g": 1e9}


def bitrate(lo: int, hi: int) -> Callable[[str], int]:
    """An argparse type for bits per second: a number with an optional k/M/G suffix
    (decimal; "bit/s", "bps" or "b" after it is accepted), required within [lo, hi]."""

    def parse(text: str) -> int:
        t = text.strip().lower().removesuffix("bit/s").removesuffix("bps").removesuffix("b")
        mult = _BIT_SUFFIX.get(t[-1:], 1.0)
        try:
            value = float(t[:-1] if t[-1:] in _BIT_SUFFIX else t) * mult
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not a bit rate (e.g. 4M, 800k)") from None
        if not lo <= value <= hi:  # also rejects NaN
            raise argparse.ArgumentTypeError(
                f"{text!r} is out of range ({_si(lo)} to {_si(hi)} bit/s)")
        return int(value)

    return parse


_BYTE_SUFFIX = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_SECOND_SUFFIX = {"s": 1.0, "m": 60.0, "h": 3600.0}


def byte_size(text: str) -> int:
    """An argparse type for a size in bytes: a number with an optional k/M/G/T suffix
    (binary, so 1G is 2**30 bytes; a trailing "B" or "iB" is accepted), at least 1 MiB."""
    t = text.strip().lower().removesuffix("ib").removesuffix("b")
    mult = _BYTE_SUFFIX.get(t[-1:], 1)
    try:
        value = float(t[:-1] if t[-1:] in _BYTE_SUFFIX else t) * mult
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size (e.g. 500M, 1G)") from None
    if not 1 << 20 <= value < 1 << 60:  # also rejects NaN
        raise argparse.ArgumentTypeError(f"{text!r} is below 1M")
    return int(value)


def duration(text: str) -> float:
    """An argparse type for a duration: seconds, or a number with an s/m/h suffix, >= 1 s."""
    t = text.strip().lower()
    mult = _SECOND_SUFFIX.get(t[-1:], 1.0)
    try:
        value = float(t[:-1] if t[-1:] in _SECOND_SUFFIX else t) * mult
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration (e.g. 10m, 5s, 1h)"
                                         ) from None
    if not 1.0 <= value <= 366 * 86400.0:  # also rejects NaN
        raise argparse.ArgumentTypeError(f"{text!r} must be between 1 s and a year")
    return value


def _si(bps: int) -> str:
    for unit, mult in (("G", 10**9), ("M", 10**6), ("k", 10**3)):
        if bps >= mult:
            return f"{bps / mult:g}{unit}"
    return str(bps)


positive_int = ranged(int, 1, 1 << 31, "a whole number")
fps_arg = ranged(float, 0.5, 120, "a number")
quality_arg = ranged(int, 1, 100, "a whole number")
metres_arg = ranged(float, 0, 65, "a number of metres")
port_arg = ranged(int, 0, 65535, "a port number")


def host_arg(text: str) -> str:
    """An IP address (IPv6 may be bracketed) or a host name."""
    host = text.strip("[]")
    try:
        ipaddress.ip_address(host)
        return host
    except ValueError:
        pass
    if re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,252})", host):
        return host
    raise argparse.ArgumentTypeError(f"{text!r} is not a host name or IP address")


def parse_hostport(text: str) -> tuple[str, int]:
    """'HOST:PORT' or '[v6]:PORT' -> (host, port); raises ValueError on nonsense."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError("expected HOST:PORT with a port number 0-65535")
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port)


def check_listen_address(host: str) -> None:
    """Resolve `host` and make sure it is an address of this machine (one we can listen
    on); raises ValueError with a one-line reason otherwise."""
    try:
        infos = socket.getaddrinfo(host, 0, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as exc:
        raise ValueError(f"cannot resolve {host!r}: {getattr(exc, 'strerror', None) or exc}"
                         ) from None
    reasons = []
    for family, kind, proto, _, addr in infos:
        try:
            with socket.socket(family, kind, proto) as probe:
                probe.bind(addr)  # port 0: only asks whether the address is ours
            return
        except OSError as exc:
            reasons.append(f"{addr[0]}: {exc.strerror or exc}")
    raise ValueError(f"{host!r} is not an address of this machine ({'; '.join(reasons)})")


def check_listen(host: str, port: int) -> str | None:
    """Why host:port cannot be listened on right now, or None (checked before children start)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        infos = socket.getaddrinfo(host, port, family, socket.SOCK_STREAM)
    except socket.gaierror as exc:
        return f"cannot listen on {host}:{port}: {exc.strerror}"
    with socket.socket(infos[0][0], socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(infos[0][4])
        except OSError as exc:
            reason = "address already in use" if exc.errno == errno.EADDRINUSE else (
                exc.strerror or str(exc))
            return f"cannot listen on {host}:{port}: {reason}"
    return None
