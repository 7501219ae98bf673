"""A Foxglove WebSocket protocol client for tests and benchmarks (websockets + mcap decoders).

It speaks the protocol as Foxglove's app does: offers both subprotocols, reads the
advertised channels, subscribes by channel id, and decodes each binary messageData frame
with the channel's advertised protobuf schema through `mcap-protobuf-support`.
"""

from __future__ import annotations

import base64
import json
import struct
import time
from pathlib import Path
from typing import Any

from mcap.records import Schema
from mcap_protobuf.decoder import DecoderFactory
from websockets.sync.client import connect
from websockets.typing import Subprotocol

SUBPROTOCOLS = [Subprotocol("foxglove.sdk.v1"), Subprotocol("foxglove.websocket.v1")]
OP_MESSAGE_DATA = 0x01


class FoxgloveClient:
    """One connection: channels by topic, subscriptions by id, decoded messages."""

    def __init__(self, port: int, host: str = "127.0.0.1", timeout: float = 10.0) -> None:
        self.ws = connect(f"ws://{host}:{port}", subprotocols=SUBPROTOCOLS, max_size=None,
                          open_timeout=timeout)
        self.channels: dict[str, dict[str, Any]] = {}
        self.subs: dict[int, str] = {}
        self.next_sub = 1
        self.server_info: dict[str, Any] | None = None
        self._decoders: dict[str, Any] = {}
        self.bytes_by_topic: dict[str, int] = {}

    def _handle_text(self, text: str) -> None:
        msg = json.loads(text)
        if msg.get("op") == "serverInfo":
            self.server_info = msg
        elif msg.get("op") == "advertise":
            for ch in msg["channels"]:
                self.channels[ch["topic"]] = ch
        elif msg.get("op") == "unadvertise":
            ids = set(msg["channelIds"])
            self.channels = {t: c for t, c in self.channels.items() if c["id"] not in ids}

    def wait_channels(self, topics: list[str], timeout: float = 10.0) -> dict[str, Any]:
        """Read control messages until every topic is advertised."""
        deadline = time.monotonic() + timeout
        while not all(t in self.channels for t in topics):
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"not advertised: {set(topics) - set(self.channels)}")
            frame = self.ws.recv(timeout=left)
            if isinstance(frame, str):
                self._handle_text(frame)
        return self.channels

    def subscribe(self, topics: list[str]) -> None:
        subs = []
        for topic in topics:
            sid = self.next_sub
            self.next_sub += 1
            self.subs[sid] = topic
            subs.append({"id": sid, "channelId": self.channels[topic]["id"]})
        self.ws.send(json.dumps({"op": "subscribe", "subscriptions": subs}))

    def unsubscribe(self, topics: list[str]) -> None:
        ids = [sid for sid, t in self.subs.items() if t in topics]
        for sid in ids:
            del self.subs[sid]
        self.ws.send(json.dumps({"op": "unsubscribe", "subscriptionIds": ids}))

    def decoder(self, topic: str) -> Any:
        if topic not in self._decoders:
            ch = self.channels[topic]
            schema = Schema(id=ch["id"], name=ch["schemaName"], encoding=ch["schemaEncoding"],
                            data=base64.b64decode(ch["schema"]))
            self._decoders[topic] = (json.loads if ch["encoding"] == "json" else
                                     DecoderFactory().decoder_for(ch["encoding"], schema))
        return self._decoders[topic]

    def next_message(self, timeout: float = 10.0) -> tuple[str, int, bytes] | None:
        """(topic, log time ns, payload) of the next messageData frame, None on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            try:
                frame = self.ws.recv(timeout=left)
            except TimeoutError:
                return None
            if isinstance(frame, str):
                self._handle_text(frame)
                continue
            if frame[0] != OP_MESSAGE_DATA:
                continue
            sid, log_time = struct.unpack_from("<IQ", frame, 1)
            topic = self.subs.get(sid)
            if topic is None:
                continue
            self.bytes_by_topic[topic] = self.bytes_by_topic.get(topic, 0) + len(frame)
            return topic, log_time, frame[13:]

    def collect(self, want: dict[str, int], timeout: float = 15.0
                ) -> dict[str, list[tuple[int, Any]]]:
        """At least want[topic] decoded (log time, message) per topic, within `timeout`."""
        got: dict[str, list[tuple[int, Any]]] = {t: [] for t in want}
        deadline = time.monotonic() + timeout
        while any(len(got[t]) < n for t, n in want.items()):
            left = deadline - time.monotonic()
            item = self.next_message(max(left, 0))
            if item is None:
                short = {t: len(got[t]) for t in want if len(got[t]) < want[t]}
                raise TimeoutError(f"too few messages after {timeout} s: {short}")
            topic, log_time, payload = item
            if topic in got:
                got[topic].append((log_time, self.decoder(topic)(payload)))
        return got

    def close(self) -> None:
        self.ws.close()


def listener_pid(parent: int, port: int) -> int:
    """The child of `parent` that holds the listening socket of a TCP port (from /proc)."""
    from tests.helpers import children_of  # noqa: PLC0415

    port_hex = f":{port:04X}"
    listening = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            parts = line.split()
            if parts[1].endswith(port_hex) and parts[3] == "0A":
                listening.add(parts[9])
    for pid in children_of(parent):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = fd.readlink().as_posix()
            except OSError:
                continue
            if target.startswith("socket:[") and target[8:-1] in listening:
                return pid
    raise AssertionError(f"no child of {parent} listens on port {port}")
