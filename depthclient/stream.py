"""multipart/x-mixed-replace parts (headers and body) read from a file-like HTTP body."""

from __future__ import annotations

from typing import BinaryIO

MAX_HEADER_LINES = 64
MAX_PART_BYTES = 64 * 1024 * 1024


class MultipartReader:
    """Parts of one MJPEG stream: `next_part()` returns (lower-case headers, body bytes)."""

    def __init__(self, body: BinaryIO, boundary: str) -> None:
        self.body = body
        self.delimiter = f"--{boundary}".encode()

    def _line(self) -> bytes:
        line = self.body.readline(4096)
        if not line:
            raise EOFError("stream closed")
        return line

    def next_part(self) -> tuple[dict[str, str], bytes]:
        """Block until the next whole part; EOFError when the stream ends."""
        while self._line().strip() != self.delimiter:
            pass
        headers: dict[str, str] = {}
        for _ in range(MAX_HEADER_LINES):
            line = self._line().strip()
            if not line:
                break
            key, _, value = line.decode("latin-1").partition(":")
            headers[key.strip().lower()] = value.strip()
        else:
            raise ValueError("too many header lines in a part")
        length = int(headers.get("content-length", "-1"))
        if not 0 <= length <= MAX_PART_BYTES:
            raise ValueError(f"part without a usable Content-Length ({length})")
        body = self.body.read(length)
        if len(body) != length:
            raise EOFError("stream closed inside a part")
        return headers, body
