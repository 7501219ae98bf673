// Depth in metres from /depth-video: 10-bit H.264 decoded with WebCodecs. Every access unit
// of the stream goes to a VideoDecoder in order; the newest decoded frame's luma codes are
// kept (I420P10: 16-bit samples) and read as metres through the stream's log mapping
// (/camera.json's depth_video: docs/DEPTH_VIDEO.md). The depth tools read it through the
// same {width, height, read(x0, y0, w, h)} as the metric JPEG.
import {readParts} from "./mjpeg.js";

const STATS_WINDOW_MS = 3000;

// Whether this browser can decode the server's depth video: WebCodecs' VideoDecoder with
// the stream's codec (a 10-bit profile), as the browser itself answers.
export async function videoSupported(camera) {
  const doc = camera && camera.depth_video;
  if (!doc || typeof VideoDecoder === "undefined" || typeof VideoFrame === "undefined") {
    return false;
  }
  try {
    const got = await VideoDecoder.isConfigSupported({codec: doc.codec});
    return !!got.supported;
  } catch (e) {
    return false;
  }
}

// Metres of each 10-bit code (null: no depth), from the mapping's parameters.
function metresTable(doc) {
  const table = new Array(1024);
  const span = Math.log(doc.max / doc.min) / (doc.code_hi - doc.code_lo);
  for (let c = 0; c < 1024; c++) {
    table[c] = c < doc.invalid_below ? null :
      Math.min(Math.max(doc.min * Math.exp((c - doc.code_lo) * span), doc.min), doc.max);
  }
  return table;
}

// Follows /depth-video, keeping the newest decoded frame: {width, height, frame, time,
// read(x0, y0, w, h)}. onFrame(frame) runs after each decoded frame; stop() ends it.
export class DepthVideo {
  constructor(url, camera, onFrame = () => {}) {
    this.url = url;
    this.doc = camera.depth_video;
    this.table = metresTable(this.doc);
    this.onFrame = onFrame;
    this.frame = null;
    this.frames = 0;
    this.bytes = 0;
    this.error = null;
    this._recent = [];  // [time ms, bytes] of units received over the stats window
    this._decoded = [];  // time ms of frames decoded over the stats window
    this._decodeMs = [];  // per frame, unit handed to the decoder -> frame out
    this._sent = new Map();  // timestamp -> when it went to the decoder
    this._started = performance.now();
    this._abort = new AbortController();
    this._decoder = null;
    this._key = false;  // a keyframe went to this decoder: deltas may follow
    this.done = this._run();
  }

  _newDecoder() {
    if (this._decoder && this._decoder.state !== "closed") this._decoder.close();
    this._key = false;
    this._sent.clear();
    this._decoder = new VideoDecoder({
      output: (f) => this._output(f),
      error: (e) => { this.error = String(e.message || e); this._key = false; },
    });
    this._decoder.configure({codec: this.doc.codec, optimizeForLatency: true});
  }

  async _run() {
    while (!this._abort.signal.aborted) {
      this._newDecoder();  // a new connection starts at a keyframe, with a fresh decoder
      try {
        await readParts(this.url, (part) => this._unit(part), this._abort.signal);
      } catch (e) {
        if (this._abort.signal.aborted) return;
        this.error = String(e.message || e);
      }
      await new Promise((r) => setTimeout(r, 1000));  // reconnect after a drop
    }
  }

  _unit(part) {
    const now = performance.now();
    this.bytes += part.bytes.length;
    this._recent.push([now, part.bytes.length]);
    const key = part.headers["x-keyframe"] === "1";
    if (this._decoder.state === "closed") this._newDecoder();
    if (!key && !this._key) return;  // after an error: wait for the next keyframe
    this._key = true;
    const timestamp = parseInt(part.headers["x-frame"] || "0", 10);
    this._sent.set(timestamp, {at: now, time: parseFloat(part.headers["x-timestamp"] || "0")});
    this._decoder.decode(new EncodedVideoChunk({type: key ? "key" : "delta", timestamp,
                                               data: part.bytes}));
  }

  async _output(vf) {
    const sent = this._sent.get(vf.timestamp);
    this._sent.delete(vf.timestamp);
    try {
      const rect = vf.visibleRect;  // the picture, without the codec's padding rows
      const width = rect.width, height = rect.height;
      const size = vf.allocationSize({rect: {x: rect.x, y: rect.y, width, height}});
      const buf = new Uint8Array(size);
      const layout = await vf.copyTo(buf, {rect: {x: rect.x, y: rect.y, width, height}});
      const luma = new Uint16Array(buf.buffer, layout[0].offset, (size - layout[0].offset) >> 1);
      const stride = layout[0].stride >> 1;
      const table = this.table;
      const read = (x0, y0, w, h) => {
        const out = new Array(w * h);
        for (let j = 0; j < h; j++) {
          for (let i = 0; i < w; i++) out[j * w + i] = table[luma[(y0 + j) * stride + x0 + i] & 1023];
        }
        return out;
      };
      const now = performance.now();
      this.frame = {width, height, frame: vf.timestamp, time: sent ? sent.time : 0, read,
                    codes: luma, stride};
      this.frames++;
      this.error = null;
      this._decoded.push(now);
      if (sent) this._decodeMs.push(now - sent.at);
      if (this._decodeMs.length > 90) this._decodeMs.shift();
      this.onFrame(this.frame);
    } catch (e) {
      this.error = String(e.message || e);
    } finally {
      vf.close();
    }
  }

  // {bytes_per_s, fps, decode_ms} over the last few seconds.
  stats() {
    const now = performance.now(), from = now - STATS_WINDOW_MS;
    while (this._recent.length && this._recent[0][0] < from) this._recent.shift();
    while (this._decoded.length && this._decoded[0] < from) this._decoded.shift();
    const span = Math.min(STATS_WINDOW_MS, now - this._started) / 1000;
    const sorted = [...this._decodeMs].sort((a, b) => a - b);
    const bytes = this._recent.reduce((n, [, b]) => n + b, 0);
    return {bytes_per_s: span > 0 ? bytes / span : 0,
            fps: span > 0 ? this._decoded.length / span : 0,
            decode_ms: sorted.length ? sorted[sorted.length >> 1] : null};
  }

  stop() {
    this._abort.abort();
    if (this._decoder && this._decoder.state !== "closed") this._decoder.close();
    this.frame = null;
  }
}
