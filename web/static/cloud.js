// The live point cloud in WebGL2. Depth goes to the GPU as it came: the metric JPEG as an
// RGBA texture whose hue the vertex shader turns into metres, or the depth video's decoded
// 10-bit codes as an unsigned-integer texture read through the log mapping. The colour
// JPEG follows as a texture too, and the shader deprojects each (decimated) pixel with
// the intrinsics, one vertex per pixel, as three.js's webgl_kinect example does. No
// per-point JavaScript runs per frame: a frame is two texture uploads and one draw.
import {LatestFrame} from "./mjpeg.js";
import {HUE, MAPPINGS} from "./hue.js";

const VERTEX = `#version 300 es
precision highp float;
precision highp int;
uniform sampler2D uDepth;
uniform highp usampler2D uCodes;  // the depth video's 10-bit codes (uVideo)
uniform bool uVideo;
uniform vec3 uCoding;      // the video's code_lo, code_hi, invalid_below
uniform sampler2D uColor;
uniform ivec2 uGrid;       // points per row, rows
uniform int uStep;         // decimation: one point every uStep pixels
uniform vec4 uIntr;        // fx, fy, ppx, ppy of the depth image
uniform vec3 uRange;       // min, max (metres), mapping (0 uniform, 1 inverse, 2 log)
uniform mat4 uView;
uniform mat4 uProj;
uniform float uPointScale; // pixels per metre at distance 1
uniform int uCountSide;    // > 0: the counting pass, into a uCountSide^2 target
uniform bool uReadout;     // metres of each grid point into a grid-sized float target
out vec3 vColor;

float hueIndex(vec3 c) {
  c = floor(c * 255.0 + 0.5);
  float v = max(max(c.r, c.g), c.b);
  float d = v - min(min(c.r, c.g), c.b);
  if (v < ${HUE.minValue.toFixed(1)} || d < ${HUE.minSaturation.toFixed(2)} * v) return -1.0;
  float h;
  if (v == c.r) h = 60.0 * (c.g - c.b) / d;
  else if (v == c.g) h = 120.0 + 60.0 * (c.b - c.r) / d;
  else h = 240.0 + 60.0 * (c.r - c.g) / d;
  if (h < 0.0) h += 360.0;
  return floor(h * ${HUE.steps.toFixed(1)} / 360.0 + 0.5);
}

float metres(float i) {
  float level = i >= ${HUE.steps.toFixed(1)} ? ${(-HUE.guard).toFixed(1)} : i - ${HUE.guard.toFixed(1)};
  float f = clamp(level, 0.0, ${(HUE.levels - 1).toFixed(1)}) / ${(HUE.levels - 1).toFixed(1)};
  float lo = uRange.x, hi = uRange.y;
  if (uRange.z > 1.5) return lo * exp(f * log(hi / lo));
  if (uRange.z > 0.5) return 1.0 / (1.0 / hi + f * (1.0 / lo - 1.0 / hi));
  return lo + f * (hi - lo);
}

void main() {
  ivec2 g = ivec2(gl_VertexID % uGrid.x, gl_VertexID / uGrid.x);
  ivec2 p = g * uStep;
  float z = -1.0;
  if (uVideo) {
    float c = float(texelFetch(uCodes, p, 0).r);
    if (c >= uCoding.z) {
      float f = (c - uCoding.x) / (uCoding.y - uCoding.x);
      z = clamp(uRange.x * exp(f * log(uRange.y / uRange.x)), uRange.x, uRange.y);
    }
  } else {
    float i = hueIndex(texelFetch(uDepth, p, 0).rgb);
    if (i >= 0.0) z = metres(i);
  }
  if (z < 0.0) {                       // no depth: outside the clip volume, never drawn
    gl_Position = vec4(2.0, 2.0, 2.0, 1.0);
    gl_PointSize = 1.0;
    vColor = vec3(0.0);
    return;
  }
  if (uReadout) {                      // one pixel per grid point, holding its metres
    gl_Position = vec4((vec2(g) + 0.5) / vec2(uGrid) * 2.0 - 1.0, 0.0, 1.0);
    gl_PointSize = 1.0;
    vColor = vec3(z, 0.0, 0.0);
    return;
  }
  if (uCountSide > 0) {                // one hit per valid point, spread over the target
    int cell = gl_VertexID % (uCountSide * uCountSide);
    vec2 xy = (vec2(cell % uCountSide, cell / uCountSide) + 0.5) / float(uCountSide);
    gl_Position = vec4(xy * 2.0 - 1.0, 0.0, 1.0);
    gl_PointSize = 1.0;
    vColor = vec3(1.0 / 255.0);
    return;
  }
  vec3 xyz = vec3((float(p.x) - uIntr.z) / uIntr.x * z, (float(p.y) - uIntr.w) / uIntr.y * z, z);
  vec4 eye = uView * vec4(xyz, 1.0);
  gl_Position = uProj * eye;
  gl_PointSize = clamp(uPointScale * float(uStep) * z / uIntr.x / max(-eye.z, 1e-3), 1.0, 24.0);
  ivec2 cs = textureSize(uColor, 0), ds = uVideo ? textureSize(uCodes, 0) : textureSize(uDepth, 0);
  vColor = texelFetch(uColor, p * cs / ds, 0).rgb;
}`;

const FRAGMENT = `#version 300 es
precision highp float;
in vec3 vColor;
out vec4 outColor;
void main() { outColor = vec4(vColor, 1.0); }`;

const COUNT_PER_CELL = 200;  // < 255: an 8-bit cell counts exactly with additive blending

// ---- 4x4 matrices, column-major ----------------------------------------------------
function perspective(fovy, aspect, near, far) {
  const f = 1 / Math.tan(fovy / 2), nf = 1 / (near - far);
  return [f / aspect, 0, 0, 0, 0, f, 0, 0, 0, 0, (far + near) * nf, -1, 0, 0, 2 * far * near * nf, 0];
}
const sub = (a, b) => [a[0] - b[0], a[1] - b[1], a[2] - b[2]];
const cross = (a, b) => [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]];
const dot = (a, b) => a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
const norm = (a) => { const n = Math.hypot(...a) || 1; return [a[0] / n, a[1] / n, a[2] / n]; };
function lookAt(eye, target, up) {
  const f = norm(sub(target, eye)), s = norm(cross(f, up)), u = cross(s, f);
  return [s[0], u[0], -f[0], 0, s[1], u[1], -f[1], 0, s[2], u[2], -f[2], 0,
    -dot(s, eye), -dot(u, eye), dot(f, eye), 1];
}

// Orbit (drag), pan (right/shift-drag, two fingers) and zoom (wheel, pinch) about a target.
class Orbit {
  constructor(el, target, onChange) {
    this.target = target;
    this.distance = Math.hypot(...target);
    this.yaw = 0.5;  // a little from the side, so depth shows at first sight
    this.pitch = -0.3;
    this.onChange = onChange;
    this.pointers = new Map();
    el.style.touchAction = "none";
    el.addEventListener("contextmenu", (e) => e.preventDefault());
    el.addEventListener("pointerdown", (e) => {
      el.setPointerCapture(e.pointerId);
      this.pointers.set(e.pointerId, {x: e.clientX, y: e.clientY, pan: e.button === 2 || e.shiftKey});
    });
    const up = (e) => this.pointers.delete(e.pointerId);
    el.addEventListener("pointerup", up);
    el.addEventListener("pointercancel", up);
    el.addEventListener("pointermove", (e) => this._move(e));
    el.addEventListener("wheel", (e) => {
      e.preventDefault();
      this.zoom(Math.exp(e.deltaY * 0.001));
    }, {passive: false});
  }

  _move(e) {
    const p = this.pointers.get(e.pointerId);
    if (!p) return;
    const dx = e.clientX - p.x, dy = e.clientY - p.y;
    if (this.pointers.size === 2) {
      const [a, b] = [...this.pointers.values()];
      const before = Math.hypot(a.x - b.x, a.y - b.y);
      p.x = e.clientX; p.y = e.clientY;
      const after = Math.hypot(a.x - b.x, a.y - b.y);
      if (before > 0 && after > 0) this.zoom(before / after);
      this.pan(dx / 2, dy / 2);
      return;
    }
    p.x = e.clientX; p.y = e.clientY;
    if (p.pan) this.pan(dx, dy);
    else {
      this.yaw += dx * 0.005;
      this.pitch = Math.max(-1.5, Math.min(1.5, this.pitch + dy * 0.005));
      this.onChange();
    }
  }

  zoom(factor) { this.distance = Math.max(0.05, Math.min(200, this.distance * factor)); this.onChange(); }

  pan(dx, dy) {
    const k = this.distance * 0.0015, {s, u} = this._axes();
    for (let i = 0; i < 3; i++) this.target[i] += (-s[i] * dx + u[i] * dy) * k;
    this.onChange();
  }

  _axes() {
    const eye = this.eye(), f = norm(sub(this.target, eye)), s = norm(cross(f, [0, -1, 0]));
    return {s, u: cross(s, f)};
  }

  eye() {  // camera frame: x right, y down, z forward; yaw = pitch = 0 looks along +z
    const cp = Math.cos(this.pitch), t = this.target, r = this.distance;
    return [t[0] - r * Math.sin(this.yaw) * cp, t[1] + r * Math.sin(this.pitch),
      t[2] - r * Math.cos(this.yaw) * cp];
  }

  view() { return lookAt(this.eye(), this.target, [0, -1, 0]); }
}

function compile(gl, type, src) {
  const s = gl.createShader(type);
  gl.shaderSource(s, src);
  gl.compileShader(s);
  if (!gl.getShaderParameter(s, gl.COMPILE_STATUS)) throw new Error(gl.getShaderInfoLog(s));
  return s;
}

function texture(gl) {
  const t = gl.createTexture();
  gl.bindTexture(gl.TEXTURE_2D, t);
  for (const [k, v] of [[gl.TEXTURE_MIN_FILTER, gl.NEAREST], [gl.TEXTURE_MAG_FILTER, gl.NEAREST],
    [gl.TEXTURE_WRAP_S, gl.CLAMP_TO_EDGE], [gl.TEXTURE_WRAP_T, gl.CLAMP_TO_EDGE]]) {
    gl.texParameteri(gl.TEXTURE_2D, k, v);
  }
  return t;
}

export class Cloud {
  // box: element to fill; camera: /camera.json; metric: the page's LatestFrame of /metric,
  // or video: its DepthVideo of /depth-video; encoding(frame): {mapping, min, max} of a
  // metric frame; colorVideo(): the playing WebRTC <video> to colour from, or null, and then
  // colorUrl, a /color stream of its own (closed again while the video plays).
  constructor(box, {camera, metric = null, video = null, encoding, colorUrl,
                    colorVideo = () => null, step = 2}) {
    this.camera = camera;
    this.metric = metric;
    this.video = video;
    this.encoding = encoding;
    this.step = step;
    this.canvas = document.createElement("canvas");
    this.canvas.id = "cloud";
    this.canvas.style.cssText = "width:100%;height:100%;display:block;background:#000;cursor:grab";
    box.appendChild(this.canvas);
    const gl = this.gl = this.canvas.getContext("webgl2",
      {antialias: false, preserveDrawingBuffer: true});
    if (!gl) throw new Error("no WebGL2");
    const prog = this.prog = gl.createProgram();
    const shaders = [compile(gl, gl.VERTEX_SHADER, VERTEX), compile(gl, gl.FRAGMENT_SHADER, FRAGMENT)];
    for (const sh of shaders) gl.attachShader(prog, sh);
    gl.linkProgram(prog);
    for (const sh of shaders) gl.deleteShader(sh);  // the program keeps what it needs
    if (!gl.getProgramParameter(prog, gl.LINK_STATUS)) throw new Error(gl.getProgramInfoLog(prog));
    this.u = {};
    for (const name of ["uDepth", "uCodes", "uVideo", "uCoding", "uColor", "uGrid", "uStep", "uIntr", "uRange", "uView", "uProj",
      "uPointScale", "uCountSide", "uReadout"]) this.u[name] = gl.getUniformLocation(prog, name);
    this.vao = gl.createVertexArray();
    this.depthTex = texture(gl);
    gl.texImage2D(gl.TEXTURE_2D, 0, gl.RGBA8, 1, 1, 0, gl.RGBA, gl.UNSIGNED_BYTE, null);
    this.codesTex = texture(gl);  // both depth samplers stay complete, whichever is read
    gl.texImage2D(gl.TEXTURE_2D, 0, gl.R16UI, 1, 1, 0, gl.RED_INTEGER, gl.UNSIGNED_SHORT, null);
    this.colorTex = texture(gl);
    gl.pixelStorei(gl.UNPACK_COLORSPACE_CONVERSION_WEBGL, gl.NONE);
    gl.pixelStorei(gl.UNPACK_PREMULTIPLY_ALPHA_WEBGL, false);
    gl.pixelStorei(gl.UNPACK_FLIP_Y_WEBGL, false);
    const m = video ? camera.depth_video : camera.metric;
    const zc = Math.min(Math.max((m.min + m.max) / 4, m.min * 2), 3);
    this.orbit = new Orbit(this.canvas, [0, 0, zc], () => { this.dirty = true; });
    this.frames = 0;
    this.renders = 0;
    this.points = 0;
    this.depthFrame = null;
    this.colorFrame = null;
    this.newData = false;
    this.dirty = true;
    this.started = performance.now();
    this.colorUrl = colorUrl;
    this.colorVideo = colorVideo;
    this.color = null;  // the LatestFrame of colorUrl while no video plays
    this.colorBytes = 0;  // MJPEG color bytes of closed streams
    this.colorSource = null;  // "webrtc" or "mjpeg": what the last colour upload came from
    this.colorFrames = 0;  // colour frames uploaded
    this.watched = null;  // the <video> whose frames are counted
    this.videoFrames = 0;  // frames it presented (requestVideoFrameCallback)
    this._raf = requestAnimationFrame(() => this._tick());
  }

  setStep(step) { this.step = step; this.dirty = true; }

  _upload(tex, bitmap) {
    const gl = this.gl;
    gl.bindTexture(gl.TEXTURE_2D, tex);
    gl.texImage2D(gl.TEXTURE_2D, 0, gl.RGBA8, gl.RGBA, gl.UNSIGNED_BYTE, bitmap);
  }

  _uploadCodes(f) {
    const gl = this.gl;
    gl.bindTexture(gl.TEXTURE_2D, this.codesTex);
    gl.pixelStorei(gl.UNPACK_ALIGNMENT, 2);
    gl.pixelStorei(gl.UNPACK_ROW_LENGTH, f.stride);
    gl.texImage2D(gl.TEXTURE_2D, 0, gl.R16UI, f.width, f.height, 0, gl.RED_INTEGER,
                  gl.UNSIGNED_SHORT, f.codes.subarray(0, f.stride * f.height));
    gl.pixelStorei(gl.UNPACK_ROW_LENGTH, 0);
    gl.pixelStorei(gl.UNPACK_ALIGNMENT, 4);
  }

  // Counts the frames `v` presents, so each is uploaded once.
  _watch(v) {
    this.watched = v;
    const step = () => {
      if (this.watched !== v) return;
      this.videoFrames++;
      v.requestVideoFrameCallback(step);
    };
    v.requestVideoFrameCallback(step);
  }

  // The newest color frame not uploaded yet, from the playing video or the MJPEG stream
  // (opened only while no video plays), as {source, key, pixels}; null when none is new.
  _nextColor() {
    const v = this.colorVideo();
    if (v && v.readyState >= 2 && v.videoWidth) {
      if (this.color) this._closeMjpeg();
      if (this.watched !== v) this._watch(v);
      const key = `webrtc-${this.videoFrames}`;
      return this.colorFrame && this.colorFrame.key === key ? null
        : {source: "webrtc", key, pixels: v};
    }
    this.watched = null;
    if (!this.color) this.color = new LatestFrame(this.colorUrl);
    const c = this.color.frame;
    return c && (!this.colorFrame || this.colorFrame.key !== c) ? {source: "mjpeg", key: c, pixels: c.bitmap}
      : null;
  }

  _closeMjpeg() {
    this.colorBytes += this.color.bytes;
    this.color.stop();
    this.color = null;
  }

  _tick() {
    this._raf = requestAnimationFrame(() => this._tick());
    const d = this.video ? this.video.frame : this.metric.frame;
    if (d && d !== this.depthFrame) {
      if (this.video) this._uploadCodes(d);
      else this._upload(this.depthTex, d.bitmap);
      this.depthFrame = d;
      this.newData = true;
    }
    const c = this._nextColor();
    if (c) {
      this._upload(this.colorTex, c.pixels);
      this.colorFrame = c;
      this.colorSource = c.source;
      this.colorFrames++;
    }
    if (!this.depthFrame || !this.colorFrame || !(this.newData || this.dirty)) return;
    this._draw(0);
    if (this.newData) this.frames++;
    this.renders++;
    this.newData = this.dirty = false;
  }

  _grid() {
    const w = this.depthFrame.width, h = this.depthFrame.height, s = this.step;
    return [Math.ceil(w / s), Math.ceil(h / s)];
  }

  // One draw of every (decimated) pixel: to the screen, counting valid points, or (readout)
  // each point's metres into the bound grid-sized float target.
  _draw(countSide, readout = false) {
    const gl = this.gl, u = this.u, k = this.camera.intrinsics;
    const [gw, gh] = this._grid();
    const dw = this.depthFrame.width, dh = this.depthFrame.height;
    const sx = dw / k.width, sy = dh / k.height;  // intrinsics of the depth texture's size
    gl.useProgram(this.prog);
    gl.bindVertexArray(this.vao);
    gl.activeTexture(gl.TEXTURE0);
    gl.bindTexture(gl.TEXTURE_2D, this.depthTex);
    gl.activeTexture(gl.TEXTURE1);
    gl.bindTexture(gl.TEXTURE_2D, this.colorTex);
    gl.activeTexture(gl.TEXTURE2);
    gl.bindTexture(gl.TEXTURE_2D, this.codesTex);
    gl.uniform1i(u.uDepth, 0);
    gl.uniform1i(u.uColor, 1);
    gl.uniform1i(u.uCodes, 2);
    gl.uniform1i(u.uVideo, this.video ? 1 : 0);
    gl.uniform2i(u.uGrid, gw, gh);
    gl.uniform1i(u.uStep, this.step);
    gl.uniform4f(u.uIntr, k.fx * sx, k.fy * sy, k.ppx * sx, k.ppy * sy);
    if (this.video) {
      const v = this.camera.depth_video;
      gl.uniform3f(u.uRange, v.min, v.max, MAPPINGS.log);
      gl.uniform3f(u.uCoding, v.code_lo, v.code_hi, v.invalid_below);
    } else {
      const enc = this.encoding(this.depthFrame);
      gl.uniform3f(u.uRange, enc.min, enc.max, MAPPINGS[enc.mapping]);
    }
    gl.uniform1i(u.uCountSide, countSide);
    gl.uniform1i(u.uReadout, readout ? 1 : 0);
    if (readout) {
      gl.viewport(0, 0, gw, gh);
      gl.clearColor(0, 0, 0, 0);
      gl.clear(gl.COLOR_BUFFER_BIT);
      gl.disable(gl.BLEND);
    } else if (countSide) {
      gl.viewport(0, 0, countSide, countSide);
      gl.clearColor(0, 0, 0, 0);
      gl.clear(gl.COLOR_BUFFER_BIT);
      gl.enable(gl.BLEND);
      gl.blendFunc(gl.ONE, gl.ONE);
    } else {
      const c = this.canvas, dpr = window.devicePixelRatio || 1;
      const w = Math.max(1, Math.round(c.clientWidth * dpr)), ht = Math.max(1, Math.round(c.clientHeight * dpr));
      if (c.width !== w || c.height !== ht) { c.width = w; c.height = ht; }
      const fovy = Math.PI / 3;
      gl.viewport(0, 0, w, ht);
      gl.clearColor(0.05, 0.05, 0.07, 1);
      gl.clear(gl.COLOR_BUFFER_BIT | gl.DEPTH_BUFFER_BIT);
      gl.enable(gl.DEPTH_TEST);
      gl.disable(gl.BLEND);
      gl.uniformMatrix4fv(u.uView, false, this.orbit.view());
      gl.uniformMatrix4fv(u.uProj, false, perspective(fovy, w / ht, 0.02, 200));
      gl.uniform1f(u.uPointScale, ht / 2 / Math.tan(fovy / 2));
    }
    gl.drawArrays(gl.POINTS, 0, gw * gh);
    if (countSide) gl.disable(gl.BLEND);
    else gl.disable(gl.DEPTH_TEST);
  }

  // Valid points of the frame shown now, counted on the GPU (only when asked).
  countPoints() {
    if (!this.depthFrame) return 0;
    const gl = this.gl, [gw, gh] = this._grid();
    const side = Math.max(1, Math.ceil(Math.sqrt(gw * gh / COUNT_PER_CELL)));
    if (!this.countFbo || this.countSide !== side) {
      gl.deleteFramebuffer(this.countFbo || null);  // the target of another grid size
      gl.deleteTexture(this.countTex || null);
      this.countTex = texture(this.gl);
      gl.texImage2D(gl.TEXTURE_2D, 0, gl.RGBA8, side, side, 0, gl.RGBA, gl.UNSIGNED_BYTE, null);
      this.countFbo = gl.createFramebuffer();
      gl.bindFramebuffer(gl.FRAMEBUFFER, this.countFbo);
      gl.framebufferTexture2D(gl.FRAMEBUFFER, gl.COLOR_ATTACHMENT0, gl.TEXTURE_2D, this.countTex, 0);
      this.countSide = side;
    }
    gl.bindFramebuffer(gl.FRAMEBUFFER, this.countFbo);
    this._draw(side);
    const out = new Uint8Array(side * side * 4);
    gl.readPixels(0, 0, side, side, gl.RGBA, gl.UNSIGNED_BYTE, out);
    gl.bindFramebuffer(gl.FRAMEBUFFER, null);
    this.dirty = true;
    let n = 0;
    for (let i = 0; i < out.length; i += 4) n += out[i];
    return n;
  }

  // Metres the shader decoded at every grid point of the frame shown now (0: no depth), read
  // back from a float target: {width, height, step, data}; null without float targets.
  gpuDepth() {
    const gl = this.gl;
    if (!this.depthFrame || !gl.getExtension("EXT_color_buffer_float")) return null;
    const [gw, gh] = this._grid();
    const tex = texture(gl);
    gl.texImage2D(gl.TEXTURE_2D, 0, gl.R32F, gw, gh, 0, gl.RED, gl.FLOAT, null);
    const fbo = gl.createFramebuffer();
    gl.bindFramebuffer(gl.FRAMEBUFFER, fbo);
    gl.framebufferTexture2D(gl.FRAMEBUFFER, gl.COLOR_ATTACHMENT0, gl.TEXTURE_2D, tex, 0);
    this._draw(0, true);
    const out = new Float32Array(gw * gh * 4);
    gl.readPixels(0, 0, gw, gh, gl.RGBA, gl.FLOAT, out);
    gl.bindFramebuffer(gl.FRAMEBUFFER, null);
    gl.deleteFramebuffer(fbo);
    gl.deleteTexture(tex);
    this.dirty = true;
    const data = new Float32Array(gw * gh);
    for (let i = 0; i < data.length; i++) data[i] = out[4 * i];
    return {width: gw, height: gh, step: this.step, data};
  }

  // What the view drew and read: `bytes` counts depth and MJPEG colour (`color_bytes`);
  // WebRTC colour is counted by the player (webrtcStats()).
  stats() {
    const mjpeg = this.colorBytes + (this.color ? this.color.bytes : 0);
    const seconds = (performance.now() - this.started) / 1000;
    return {frames: this.frames, renders: this.renders, points: this.countPoints(),
            step: this.step, grid: this.depthFrame ? this._grid() : null,
            fps: seconds > 0 ? this.frames / seconds : 0,
            color: this.colorSource, color_frames: this.colorFrames,
            bytes: (this.video || this.metric).bytes + mjpeg, color_bytes: mjpeg};
  }

  close() {
    cancelAnimationFrame(this._raf);
    this.watched = null;
    if (this.color) this._closeMjpeg();
    const gl = this.gl;
    for (const t of [this.depthTex, this.codesTex, this.colorTex, this.countTex]) {
      if (t) gl.deleteTexture(t);
    }
    if (this.countFbo) gl.deleteFramebuffer(this.countFbo);
    gl.deleteVertexArray(this.vao);
    gl.deleteProgram(this.prog);
    const ext = this.gl.getExtension("WEBGL_lose_context");
    if (ext) ext.loseContext();
    this.canvas.remove();
  }
}
