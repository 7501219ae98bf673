"""Connection hygiene: deadlines, the open-files budget, per-address caps, trusted proxies.

A connection that opens and then says nothing costs one file descriptor for as long as
we let it. Like nginx (client_header_timeout, keepalive_timeout, limit_conn) the web
process gives every connection a deadline for a complete request head, closes idle
keep-alive connections, caps connections per address, and keeps its table of open
connections inside the open-files limit with a reserve, so a full table is handled
by closing the oldest connection that has not sent a request yet (or, if none, by a
clean 503 to the newcomer): never by an accept() that fails with EMFILE.

Behind a reverse proxy every connection comes from the proxy. As gunicorn's
--forwarded-allow-ips does, connections from trusted proxies are not capped by address
(the proxy caps its own); their X-Forwarded-For names the client, which is logged, listed
in /status and capped per request instead.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import resource
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import gevent

from pipeline.args import ranged

log = logging.getLogger("web")

RESERVE_FDS = 32  # log files, snapshots, pipes, and a spare to accept-and-refuse cleanly
CONTROL_SLOTS = 16  # connections always left for /status, /healthz and the page
BURST_QUIET_S = 10.0  # a burst of refusals ends after this long without one
_REFUSAL_BODY = b'{"error": "Service Unavailable", "detail": "too many connections"}\n'
REFUSAL = (b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 5\r\n"
           b"Content-Type: application/json\r\nContent-Length: %d\r\n"
           b"Connection: close\r\n\r\n" % len(_REFUSAL_BODY)) + _REFUSAL_BODY
PEER_KEY = "depthcam.peer"  # environ: the address the connection came from
MAX_HOPS = 32  # X-Forwarded-For entries looked at, from the right

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def trusted_networks(text: str) -> tuple[Network, ...]:
    """--forwarded-allow-ips: a comma list of addresses or CIDRs; "*" is everyone, "" no one."""
    nets: list[Network] = []
    for item in (t.strip() for t in text.split(",")):
        if not item:
            continue
        if item == "*":
            nets += [ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0")]
            continue
        try:
            nets.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{item!r} is not an address or CIDR (e.g. 10.0.0.0/8, ::1)") from None
    return tuple(nets)


DEFAULT_TRUSTED = trusted_networks("127.0.0.1,::1")


def _address(text: str) -> Address | None:
    """An address from a peer name or an X-Forwarded-For entry ("[v6]:port" and "v4:port"
    included); IPv4-mapped IPv6 as IPv4; None if it is no address."""
    text = text.strip()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        addr = ipaddress.ip_address(text.partition("%")[0])
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


class Proxies:
    """The reverse proxies whose X-Forwarded-For and X-Forwarded-Proto are believed."""

    def __init__(self, networks: Iterable[Network]) -> None:
        self.networks = tuple(networks)
        self._seen: dict[str, bool] = {}

    def trusts(self, ip: str) -> bool:
        """Is `ip` (a peer address as the socket gives it) one of the trusted proxies?"""
        known = self._seen.get(ip)
        if known is None:
            addr = _address(ip)
            known = addr is not None and any(addr in n for n in self.networks)
            if len(self._seen) > 4096:
                self._seen.clear()
            self._seen[ip] = known
        return known

    def client(self, peer: str, forwarded_for: str | None) -> str:
        """The client a request from trusted `peer` was made by: the right-most entry of
        X-Forwarded-For that is not a trusted proxy, or the left-most when all are (each
        proxy appends the address it got the request from; only the entries our proxies
        wrote can be believed). An entry that is no address ends the walk."""
        client = peer
        if not forwarded_for:
            return client
        for entry in reversed(forwarded_for.split(",")[-MAX_HOPS:]):
            addr = _address(entry)
            if addr is None:
                break
            client = str(addr)
            if not self.trusts(client):
                break
        return client

    @staticmethod
    def scheme(forwarded_proto: str | None) -> str | None:
        """http or https, as the nearest proxy says the client spoke to it; None if unsaid."""
        if not forwarded_proto:
            return None
        proto = forwarded_proto.split(",")[-1].strip().lower()
        return proto if proto in ("http", "https") else None

    def apply(self, environ: dict[str, Any]) -> None:
        """A request's environ as its client made it: REMOTE_ADDR the client (the peer kept
        under PEER_KEY) and wsgi.url_scheme its scheme, when the peer is a trusted proxy;
        untouched otherwise, so headers from anyone else change nothing."""
        peer = environ.get("REMOTE_ADDR", "")
        environ[PEER_KEY] = peer
        if not peer or not self.trusts(peer):
            return
        environ["REMOTE_ADDR"] = self.client(peer, environ.get("HTTP_X_FORWARDED_FOR"))
        scheme = self.scheme(environ.get("HTTP_X_FORWARDED_PROTO"))
        if scheme:
            environ["wsgi.url_scheme"] = scheme


def refuse_request(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    """The WSGI answer to a request over its client's cap: 503 with Retry-After."""
    start_response("503 Service Unavailable", [
        ("Content-Type", "application/json"), ("Retry-After", "5"),
        ("Content-Length", str(len(_REFUSAL_BODY)))])
    return [_REFUSAL_BODY]


@dataclass(frozen=True)
class ConnLimits:
    """Deadlines and caps for the web server's connections."""

    header_timeout: float = 10.0
    keepalive_timeout: float = 15.0
    max_clients_per_ip: int = 256
    send_timeout: float = 20.0
    forwarded_allow_ips: tuple[Network, ...] = DEFAULT_TRUSTED


def add_limit_args(p: argparse.ArgumentParser) -> None:
    """The connection-hygiene options (in app_mp.py's "access and limits" group)."""
    seconds = ranged(float, 0.1, 3600, "a number of seconds")
    g = p.add_argument_group("connections")
    g.add_argument("--header-timeout", type=seconds, default=10.0, metavar="SECONDS",
                   help="close a connection that has not sent a complete request head "
                   "within this time (default 10)")
    g.add_argument("--keepalive-timeout", type=seconds, default=15.0, metavar="SECONDS",
                   help="close a kept-alive connection idle this long between requests "
                   "(default 15)")
    g.add_argument("--send-timeout", type=seconds, default=20.0, metavar="SECONDS",
                   help="drop a stream client that has taken no bytes for this long "
                   "(a reader that stopped reading; default 20)")
    g.add_argument("--max-clients-per-ip", type=ranged(int, 0, 1 << 20, "a whole number"),
                   default=256, metavar="N",
                   help="open connections from one address, and requests in progress that "
                   "a trusted proxy forwards for one client; more get 503 (default 256, "
                   "0 = no cap)")
    g.add_argument("--forwarded-allow-ips", type=trusted_networks, default=DEFAULT_TRUSTED,
                   metavar="LIST",
                   help="reverse proxies (comma list of addresses or CIDRs) whose "
                   "X-Forwarded-For and X-Forwarded-Proto are believed; their connections "
                   "are not capped per address, the client they name is (default "
                   "127.0.0.1,::1; '' trusts no one, '*' everyone)")


def limits_from(x: dict[str, Any]) -> ConnLimits:
    """ConnLimits from parsed options (absent ones keep their defaults)."""
    d = ConnLimits()
    return ConnLimits(
        header_timeout=x.get("header_timeout", d.header_timeout),
        keepalive_timeout=x.get("keepalive_timeout", d.keepalive_timeout),
        max_clients_per_ip=x.get("max_clients_per_ip", d.max_clients_per_ip),
        send_timeout=x.get("send_timeout", d.send_timeout),
        forwarded_allow_ips=x.get("forwarded_allow_ips", d.forwarded_allow_ips),
    )


def raise_nofile() -> int:
    """Raise the soft open-files limit to the hard one; returns the limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard
    if hard == resource.RLIM_INFINITY:
        try:
            with open("/proc/sys/fs/nr_open") as f:
                target = int(f.read())
        except (OSError, ValueError):
            target = 1 << 20
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:
            log.warning("cannot raise the open-files limit from %d to %d: %s", soft, target, exc)
    return soft


def open_fds() -> int:
    """File descriptors this process has open now."""
    return len(os.listdir("/proc/self/fd"))


def max_clients_allowed(nofile: int) -> int:
    """The most stream clients an open-files limit of `nofile` can carry (an estimate
    made before the web process exists; it re-checks with its real baseline)."""
    return max(1, nofile - 2 * RESERVE_FDS - CONTROL_SLOTS)


class Conn:
    """One accepted connection: its address, greenlet and current head deadline, and the
    client a trusted proxy named for the request in progress."""

    __slots__ = ("ip", "greenlet", "timer", "requests", "client")

    def __init__(self, ip: str, greenlet: Any) -> None:
        self.ip = ip
        self.greenlet = greenlet
        self.timer: gevent.Timeout | None = None
        self.requests = 0
        self.client = ""


class ConnectionGuard:
    """The table of open connections, kept inside the budget.

    Connections waiting for a request head are kept in arrival order; when the table is
    full, the oldest of them is closed to make room (a flood of silent connections can
    then never lock out a viewer who speaks). Refusals are logged once per burst.
    """

    def __init__(self, limits: ConnLimits, budget: int) -> None:
        self.limits = limits
        self.proxies = Proxies(limits.forwarded_allow_ips)
        self.budget = max(1, budget)
        self.open = 0
        self.per_ip: Counter[str] = Counter()
        self.waiting: dict[Conn, None] = {}
        self.by_greenlet: dict[Any, Conn] = {}
        self.counts = Counter({"accepted": 0, "refused": 0, "evicted": 0, "timed_out": 0})
        self._last: dict[str, float] = {}

    def admit(self, ip: str) -> str | None:
        """Count a just-accepted connection in, or say why it must be refused (a trusted
        proxy's connections are counted, not capped: the clients it names are)."""
        cap = self.limits.max_clients_per_ip
        if cap and self.per_ip[ip] >= cap and not self.proxies.trusts(ip):
            self._burst("per-ip", "%s has %d connections open (--max-clients-per-ip %d): "
                        "refusing more from it", ip, self.per_ip[ip], cap)
            self.counts["refused"] += 1
            return "per-ip"
        if self.open >= self.budget:
            self._burst("full", "all %d connections of the open-files budget are busy: "
                        "refusing new ones", self.budget)
            self.counts["refused"] += 1
            return "full"
        self.open += 1
        self.per_ip[ip] += 1
        self.counts["accepted"] += 1
        return None

    def claim(self, conn: Conn, client: str) -> bool:
        """A request from a trusted proxy names `client`: count it against the client's cap
        while the request lasts (see release); False, counted as a refusal, when the client
        is at its cap. A client that is a trusted address itself is not capped."""
        if self.proxies.trusts(client):
            return True
        cap = self.limits.max_clients_per_ip
        if cap and self.per_ip[client] >= cap:
            self._burst("per-client", "%s (through %s) has %d connections open "
                        "(--max-clients-per-ip %d): refusing more from it", client, conn.ip,
                        self.per_ip[client], cap)
            self.counts["refused"] += 1
            return False
        self.per_ip[client] += 1
        conn.client = client
        return True

    def release(self, conn: Conn) -> None:
        """The request that claimed a client is over."""
        if conn.client:
            self._uncount_ip(conn.client)
            conn.client = ""

    def make_room(self) -> bool:
        """When the table is full, close the oldest connection still waiting for its
        request head; False if every connection is busy with a request."""
        if self.open < self.budget:
            return True
        while self.waiting:
            conn = next(iter(self.waiting))
            self.end_wait(conn)
            if conn.timer is not None:
                self._burst("full", "connection table full (%d of %d): closing the oldest "
                            "connections that have not sent a request", self.open,
                            self.budget)
                self.counts["evicted"] += 1
                self.open -= 1  # its descriptor is closed before the next accept
                self._uncount_ip(conn.ip)
                conn.ip = ""
                conn.greenlet.kill(conn.timer, block=False)
                return True
        return False

    def begin(self, ip: str, greenlet: Any) -> Conn:
        """The connection's greenlet starts: the head deadline starts with it."""
        conn = Conn(ip, greenlet)
        self.by_greenlet[greenlet] = conn
        self.start_wait(conn, self.limits.header_timeout)
        return conn

    def start_wait(self, conn: Conn, seconds: float) -> None:
        """Arm the deadline for the next request head and queue the connection as
        evictable."""
        if conn.timer is not None:
            conn.timer.close()
        conn.timer = gevent.Timeout.start_new(seconds)
        self.waiting[conn] = None

    def end_wait(self, conn: Conn) -> None:
        """The head has arrived (or the connection ends): disarm its deadline."""
        self.waiting.pop(conn, None)
        if conn.timer is not None:
            conn.timer.cancel()

    def end(self, conn: Conn) -> None:
        """The connection's greenlet is done and its socket closed."""
        self.end_wait(conn)
        self.release(conn)
        if conn.timer is not None:
            conn.timer.close()
        self.by_greenlet.pop(conn.greenlet, None)
        if conn.ip:  # an evicted connection was counted out already
            self.open -= 1
            self._uncount_ip(conn.ip)

    def _uncount_ip(self, ip: str) -> None:
        self.per_ip[ip] -= 1
        if self.per_ip[ip] <= 0:
            del self.per_ip[ip]

    def current(self) -> Conn | None:
        """The connection served by the running greenlet."""
        return self.by_greenlet.get(gevent.getcurrent())

    def stats(self) -> dict[str, int]:
        """Numbers for /status."""
        return {"open": self.open, "budget": self.budget, "waiting_for_request":
                len(self.waiting), **self.counts}

    def _burst(self, kind: str, msg: str, *args: object) -> None:
        now = time.monotonic()
        if now - self._last.get(kind, -BURST_QUIET_S) >= BURST_QUIET_S:
            log.warning(msg, *args)
        self._last[kind] = now
