// The WebRTC player: color as H.264 through Janus, signalled through our own origin
// (/webrtc/janus..., the server's narrow proxy of the Janus HTTP API). A switch picks
// MJPEG or WebRTC (/?player=webrtc); when WebRTC cannot play the page shows MJPEG and
// says why, and it keeps reconnecting by itself whenever the stream drops.
import {api} from "./app.js";
import {readStamp} from "./stamp.js";

const rtc = api.config.webrtc || {enabled: false};
const $ = (id) => document.getElementById(id);

// No new decoded frame for this long: reconnect. Long enough that a restarted H.264
// stage resumes the same session (Janus keeps it) without a new negotiation.
const STALL_S = 5;
const FIRST_FRAME_S = 8;      // an attempt that shows nothing for this long has failed
const RETRY_S = [0.3, 1, 2, 3];

// One call of the Janus HTTP API: a POST of `body` (with a transaction id) or, without a
// body, the long-poll GET (`extra` query parameters). Rejects on an HTTP or Janus error.
async function janus(path, body, {extra, signal} = {}) {
  const r = await fetch(api.url(rtc.api + path, extra), {
    method: body ? "POST" : "GET", cache: "no-store", signal,
    headers: body ? {"Content-Type": "application/json"} : {},
    body: body ? JSON.stringify({...body, transaction: Math.random().toString(36).slice(2)})
      : undefined,
  });
  let doc = null;
  try { doc = await r.json(); } catch (e) { /* not JSON: reported below */ }
  if (!r.ok || !doc || doc.janus === "error") {
    const why = doc && (doc.error && (doc.error.reason || doc.error) || doc.detail);
    throw new Error(`signalling ${r.status}: ${why || r.statusText}`);
  }
  return doc;
}

// The long poll: a GET that Janus answers with up to 5 events, or a keepalive after 30 s.
const janusPoll = (session, signal) => janus(`/${session}`, null, {extra: {maxev: "5"}, signal});

// One viewing session: Janus session + streaming handle + RTCPeerConnection.
class Viewer {
  // keepPolling false: stop the long poll once media flows, freeing the browser's
  // connection to this host (it allows six) for more viewers in one page.
  constructor(video, onFail, keepPolling = true) {
    this.video = video;
    this.onFail = onFail;
    this.keepPolling = keepPolling;
    this.aborter = new AbortController();
    this.up = new Promise((resolve) => { this.setUp = resolve; });
    this.alive = true;
    this.pc = null;
    this.session = null;
    this.handle = null;
  }

  async start() {
    this.session = (await janus("", {janus: "create"})).data.id;
    this.handle = (await janus(`/${this.session}`,
      {janus: "attach", plugin: "janus.plugin.streaming"})).data.id;
    this.poll();
    this.keepalive = setInterval(() => {
      janus(`/${this.session}`, {janus: "keepalive"}).catch(() => {});
    }, 20000);
    await janus(`/${this.session}/${this.handle}`,
      {janus: "message", body: {request: "watch", id: rtc.mountpoint}});
  }

  async poll() {
    while (this.alive) {
      let evs;
      try {
        evs = await janusPoll(this.session, this.aborter.signal);
      } catch (e) {
        if (this.alive && !this.aborter.signal.aborted) this.fail(e.message);
        return;
      }
      for (const ev of Array.isArray(evs) ? evs : [evs]) {
        try { await this.event(ev); } catch (e) { if (this.alive) this.fail(e.message); }
      }
    }
  }

  async event(ev) {
    if (ev.janus === "keepalive") return;
    if (ev.janus === "webrtcup") {
      this.setUp(true);
      if (!this.keepPolling) this.aborter.abort();
      return;
    }
    if (ev.janus === "hangup") throw new Error("gateway hung up: " + (ev.reason || ""));
    if (ev.janus === "trickle" && this.pc) {
      const c = ev.candidate;
      if (c && !c.completed) await this.pc.addIceCandidate(c);
      return;
    }
    const data = ev.plugindata && ev.plugindata.data;
    if (data && data.error) throw new Error("streaming: " + data.error);
    if (data && data.result && data.result.status === "stopped") {
      throw new Error("stream stopped");
    }
    if (ev.jsep && ev.jsep.type === "offer") await this.answer(ev.jsep);
  }

  async answer(offer) {
    const pc = this.pc = new RTCPeerConnection({iceServers: rtc.iceServers || []});
    pc.ontrack = (e) => {
      // Live view: play frames as soon as they are decoded, no jitter-buffer cushion.
      if ("jitterBufferTarget" in e.receiver) e.receiver.jitterBufferTarget = 0;
      else if ("playoutDelayHint" in e.receiver) e.receiver.playoutDelayHint = 0;
      const stream = e.streams && e.streams[0] ? e.streams[0] : new MediaStream([e.track]);
      this.video.srcObject = stream;
      this.video.play().catch(() => {});
    };
    pc.onicecandidate = (e) => {
      const candidate = e.candidate ? e.candidate.toJSON() : {completed: true};
      janus(`/${this.session}/${this.handle}`, {janus: "trickle", candidate}).catch(() => {});
    };
    pc.onconnectionstatechange = () => {
      if (this.alive && ["failed", "closed"].includes(pc.connectionState)) {
        this.fail("peer connection " + pc.connectionState);
      }
    };
    await pc.setRemoteDescription(offer);
    const answer = await pc.createAnswer();
    await pc.setLocalDescription(answer);
    await janus(`/${this.session}/${this.handle}`, {janus: "message",
      body: {request: "start"}, jsep: {type: answer.type, sdp: answer.sdp}});
    // Ask for no playout delay (RTP playout-delay extension, min = max = 0): a live
    // camera wants the newest frame, not a smoothing buffer.
    await janus(`/${this.session}/${this.handle}`, {janus: "message",
      body: {request: "configure", min_delay: 0, max_delay: 0}});
  }

  fail(why) {
    if (!this.alive) return;
    this.stop();
    this.onFail(why);
  }

  stop() {
    this.alive = false;
    this.aborter.abort();
    clearInterval(this.keepalive);
    if (this.pc) this.pc.close();
    this.pc = null;
    if (this.session) janus(`/${this.session}`, {janus: "destroy"}).catch(() => {});
  }
}


// The player: which of MJPEG / WebRTC shows color, the reconnect loop, the stats line.
// Which element is visible and which feed downloads is decided in app.js (setColorFeed):
// this module says whether WebRTC is wanted and whether its video plays.
const img = $("color");
const figure = img ? img.closest("figure") : null;
const video = document.createElement("video");
video.id = "color-video";
video.muted = true;
video.autoplay = true;
video.playsInline = true;
video.style.cssText = "width:100%;height:auto;display:none;background:#000";
if (figure) {
  figure.insertBefore(video, img.nextSibling);
  api.setColorFeed({video});
}

const bar = document.createElement("div");
bar.id = "player";
bar.style.cssText = "padding:0 14px 6px;color:#aaa";
bar.innerHTML = `player
  <label><input type="radio" name="player" value="mjpeg"> MJPEG</label>
  <label><input type="radio" name="player" value="webrtc"> WebRTC (H.264)</label>
  <span id="webrtc-info" class="stat"></span> <span id="webrtc-why"></span>`;
const header = document.querySelector("header");
if (header) header.after(bar);

const state = {player: "mjpeg", status: "off", reason: "", connects: 0, viewer: null,
               lastFrames: 0, lastProgress: 0, started: 0, bytes: 0, bytesAt: 0,
               bitrate: 0, failures: 0, retryTimer: null};

// Whether the WebRTC video is what shows color (true) or the MJPEG <img> (false).
function showVideo(on) { api.setColorFeed({playing: on}); }

function say(text) { $("webrtc-why").textContent = text; }

function connect() {
  clearTimeout(state.retryTimer);
  if (state.player !== "webrtc") return;
  if (state.viewer) state.viewer.stop();
  state.viewer = null;
  state.status = "connecting";
  state.started = performance.now() / 1000;
  state.lastFrames = 0;
  state.lastProgress = state.started;
  const v = state.viewer = new Viewer(video, (why) => lost(v, why));
  v.start().catch((e) => lost(v, e.message));
}

function lost(viewer, why) {
  if (viewer !== state.viewer || state.player !== "webrtc") return;
  viewer.stop();
  state.viewer = null;
  state.failures += 1;
  state.status = "reconnecting";
  state.reason = why;
  console.info(`webrtc: ${why}`);
  // Until WebRTC plays again, color comes as MJPEG, and the page says why.
  showVideo(false);
  say(`WebRTC: ${why}; showing MJPEG, reconnecting…`);
  const delay = RETRY_S[Math.min(state.failures - 1, RETRY_S.length - 1)];
  state.retryTimer = setTimeout(connect, delay * 1000);
}

async function inbound() {
  const pc = state.viewer && state.viewer.pc;
  if (!pc) return null;
  const report = await pc.getStats();
  for (const s of report.values()) {
    if (s.type === "inbound-rtp" && (s.kind === "video" || s.mediaType === "video")) return s;
  }
  return null;
}

api.webrtcStats = async () => {
  const s = await inbound();
  if (!s) return null;
  return {framesDecoded: s.framesDecoded || 0, bytesReceived: s.bytesReceived || 0,
          frameWidth: s.frameWidth || 0, frameHeight: s.frameHeight || 0};
};
// The whole inbound video report, for diagnosing (loss, NACK/PLI counts, drops, jitter).
api.webrtcInbound = async () => {
  const s = await inbound();
  return s ? JSON.parse(JSON.stringify(s)) : null;
};
api.webrtcState = () => ({player: state.player, status: state.status, reason: state.reason,
                          connects: state.connects, failures: state.failures});
// Capture-to-display latency of the next `n` video frames, from the stamp in the picture.
api.webrtcLatency = (n = 60) => new Promise((resolve) => {
  const out = [];
  const step = () => {
    const t = readStamp(video);
    if (t !== null) out.push(Date.now() / 1000 - t);
    if (out.length >= n) resolve(out);
    else video.requestVideoFrameCallback(step);
  };
  video.requestVideoFrameCallback(step);
});

// More viewers of the same mountpoint on hidden videos (benchmarks: many viewers from one
// browser). Resolves to their number; webrtcExtraFrames() sums their decoded frames.
const extra = [];
api.webrtcExtraViewers = async (n) => {
  for (let i = 0; i < n; i++) {
    const v = document.createElement("video");
    v.muted = true;
    const viewer = new Viewer(v, (why) => console.info(`webrtc extra viewer: ${why}`), false);
    await viewer.start();
    await viewer.up;
    extra.push(viewer);
  }
  return extra.length;
};
api.webrtcExtraFrames = async () => {
  let frames = 0;
  for (const v of extra) {
    if (!v.pc) continue;
    for (const s of (await v.pc.getStats()).values()) {
      if (s.type === "inbound-rtp" && s.kind === "video") frames += s.framesDecoded || 0;
    }
  }
  return frames;
};

async function watch() {
  if (state.player !== "webrtc" || !state.viewer) return;
  const now = performance.now() / 1000;
  const s = await inbound();
  if (s && (s.framesDecoded || 0) > state.lastFrames) {
    if (state.status !== "playing") {
      console.info(`webrtc: playing after ${(now - state.started).toFixed(2)} s`);
      state.status = "playing";
      state.connects += 1;
      state.failures = 0;
      state.reason = "";
      say("");
      showVideo(true);
    }
    state.lastFrames = s.framesDecoded;
    state.lastProgress = now;
  }
  if (s) {
    const dt = now - state.bytesAt;
    if (state.bytesAt && dt > 0) state.bitrate = (s.bytesReceived - state.bytes) * 8 / dt;
    state.bytes = s.bytesReceived;
    state.bytesAt = now;
    $("webrtc-info").textContent = `${(state.bitrate / 1e6).toFixed(2)} Mbit/s, ` +
      `${s.frameWidth || "?"}x${s.frameHeight || "?"}, ${s.framesDecoded || 0} frames decoded`;
  }
  if (state.status === "playing" && now - state.lastProgress > STALL_S) {
    lost(state.viewer, `no video for ${STALL_S} s`);
  } else if (state.status === "connecting" && now - state.started > FIRST_FRAME_S) {
    lost(state.viewer, `no video within ${FIRST_FRAME_S} s`);
  }
}
setInterval(() => { watch().catch(() => {}); }, 250);

api.setPlayer = (which) => {
  const want = which === "webrtc" ? "webrtc" : "mjpeg";
  for (const r of document.querySelectorAll('input[name="player"]')) r.checked = r.value === want;
  const url = new URL(location.href);
  url.searchParams.set("player", want);
  history.replaceState(null, "", url);
  if (want === "mjpeg") {
    state.player = "mjpeg";
    clearTimeout(state.retryTimer);
    if (state.viewer) state.viewer.stop();
    state.viewer = null;
    state.status = "off";
    $("webrtc-info").textContent = "";
    say("");
    api.setColorFeed({player: "mjpeg", playing: false});
    return;
  }
  if (!rtc.enabled) {
    state.player = "mjpeg";
    state.status = "unavailable";
    state.reason = "this server runs without --webrtc";
  } else if (typeof RTCPeerConnection === "undefined") {
    state.player = "mjpeg";
    state.status = "unavailable";
    state.reason = "this browser has no WebRTC";
  } else {
    state.player = "webrtc";
    state.failures = 0;
    api.setColorFeed({player: "webrtc"});
    connect();
    return;
  }
  for (const r of document.querySelectorAll('input[name="player"]')) {
    r.checked = r.value === "mjpeg";
  }
  api.setColorFeed({player: "mjpeg", playing: false});
  say(`WebRTC unavailable: ${state.reason}; showing MJPEG`);
};

for (const r of document.querySelectorAll('input[name="player"]')) {
  r.onchange = () => api.setPlayer(r.value);
}
api.setPlayer(new URLSearchParams(location.search).get("player") || "mjpeg");
