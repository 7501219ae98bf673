// A multipart/x-mixed-replace reader over fetch(): each part's headers and JPEG as it
// arrives, decoded to an ImageBitmap off the main thread. The newest frame wins: while one
// is being decoded, later parts replace each other and only the last one is decoded next.
const CRLF2 = [13, 10, 13, 10];
const latin1 = new TextDecoder("latin1");
const HEAD_STEP = 4096;

function indexOf(buf, pattern, from) {
  outer: for (let i = from; i <= buf.length - pattern.length; i++) {
    for (let j = 0; j < pattern.length; j++) if (buf[i + j] !== pattern[j]) continue outer;
    return i;
  }
  return -1;
}

function parseHeaders(text) {
  const headers = {};
  for (const line of text.split("\r\n")) {
    const at = line.indexOf(":");
    if (at > 0) headers[line.slice(0, at).trim().toLowerCase()] = line.slice(at + 1).trim();
  }
  return headers;
}

// The bytes received and not parsed yet, as the list of network chunks they came in:
// a part's body is joined once, when it is complete, not copied again on every chunk.
class Pending {
  constructor() { this.chunks = []; this.length = 0; this.scanned = 0; }

  push(chunk) { this.chunks.push(chunk); this.length += chunk.length; }

  // Index just past the first CRLF CRLF, or -1. Headers are short: while they straddle
  // chunks, the first chunk grows by the next chunk's first HEAD_STEP bytes (a copy of a
  // few kilobytes at most, not of the frame that follows the headers).
  headerEnd() {
    for (;;) {
      const first = this.chunks[0];
      if (!first) return -1;
      const at = indexOf(first, CRLF2, Math.max(0, this.scanned - 3));
      if (at >= 0) { this.scanned = 0; return at + 4; }
      this.scanned = first.length;
      if (this.chunks.length < 2) return -1;
      const next = this.chunks[1], n = Math.min(next.length, HEAD_STEP);
      const merged = new Uint8Array(first.length + n);
      merged.set(first);
      merged.set(n === next.length ? next : next.subarray(0, n), first.length);
      this.chunks[0] = merged;
      if (n === next.length) this.chunks.splice(1, 1);
      else this.chunks[1] = next.subarray(n);
    }
  }

  // The next n bytes (n <= length), removed from the front, in one new array.
  take(n) {
    const out = new Uint8Array(n);
    let off = 0;
    while (off < n) {
      const c = this.chunks[0], use = Math.min(c.length, n - off);
      out.set(use === c.length ? c : c.subarray(0, use), off);
      off += use;
      if (use === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(use);
    }
    this.length -= n;
    return out;
  }

}

// Calls onPart({headers, bytes}) for every part of the stream at `url` until `signal`
// aborts (no part is handed over after that, even one already received in the same
// chunk) or the stream ends; rejects on an HTTP error with its JSON detail.
export async function readParts(url, onPart, signal) {
  const resp = await fetch(url, {cache: "no-store", signal});
  if (!resp.ok) {
    let detail = resp.statusText;
    try { detail = (await resp.json()).detail || detail; } catch (e) { /* not JSON */ }
    throw new Error(`${url}: ${resp.status} ${detail}`);
  }
  const reader = resp.body.getReader();
  const pending = new Pending();
  let need = null;  // {headers, length} once a part's headers are read
  for (;;) {
    const {value, done} = await reader.read();
    if (done) return;
    pending.push(value);
    for (;;) {
      if (need === null) {
        const end = pending.headerEnd();
        if (end < 0) break;
        const headers = parseHeaders(latin1.decode(pending.take(end)));
        const length = parseInt(headers["content-length"], 10);
        if (!(length >= 0)) continue;  // the preamble or a part without length
        need = {headers, length};
      }
      if (pending.length < need.length) break;
      if (signal && signal.aborted) return;
      onPart({headers: need.headers, bytes: pending.take(need.length)});
      need = null;
    }
  }
}

const BITMAP_OPTIONS = {colorSpaceConversion: "none", premultiplyAlpha: "none"};

// Follows a stream, keeping its newest decoded frame: {bitmap, headers, frame, time}.
// onFrame(frame) runs after each decode. stop() ends it.
export class LatestFrame {
  constructor(url, onFrame = () => {}) {
    this.url = url;
    this.onFrame = onFrame;
    this.frame = null;
    this.frames = 0;
    this.bytes = 0;
    this.error = null;
    this._next = null;
    this._busy = false;
    this._abort = new AbortController();
    this.done = this._run();
  }

  async _run() {
    while (!this._abort.signal.aborted) {
      try {
        await readParts(this.url, (part) => this._part(part), this._abort.signal);
      } catch (e) {
        if (this._abort.signal.aborted) return;
        this.error = String(e.message || e);
      }
      await new Promise((r) => setTimeout(r, 1000));  // reconnect after a drop
    }
  }

  _part(part) {
    this.bytes += part.bytes.length;
    this._next = part;
    if (!this._busy) this._decode();
  }

  async _decode() {
    this._busy = true;
    while (this._next) {
      const part = this._next;
      this._next = null;
      try {
        const blob = new Blob([part.bytes], {type: "image/jpeg"});
        const bitmap = await createImageBitmap(blob, BITMAP_OPTIONS);
        if (this.frame) this.frame.bitmap.close();
        this.frame = {bitmap, headers: part.headers, pixels: null,
                      width: bitmap.width, height: bitmap.height, size: part.bytes.length,
                      frame: parseInt(part.headers["x-frame"] || "0", 10),
                      time: parseFloat(part.headers["x-timestamp"] || "0")};
        this.frames++;
        this.error = null;
        this.onFrame(this.frame);
      } catch (e) {
        this.error = String(e.message || e);
      }
    }
    this._busy = false;
  }

  stop() {
    this._abort.abort();
    if (this.frame) this.frame.bitmap.close();
    this.frame = null;
  }
}
