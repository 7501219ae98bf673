// The JavaScript twin of media/hue.py's decoder: the hue ramp, and metres from an RGB
// pixel of a hue-coded depth image (the metric stream). The page's depth tools read it
// pixel by pixel; the 3D view builds the same rules into its shader.

// The hue ramp of media/hue.py (docs/DEPTH_HUE.md): 1530 steps, 24 guard steps each side
// of the wrap point, dark (< 96) or grey (saturation < 0.5) pixels are invalid.
export const HUE = {steps: 1530, guard: 24, levels: 1482, minValue: 96, minSaturation: 0.5};
export const MAPPINGS = {uniform: 0, inverse: 1, log: 2};

// Hue index 0..1530 of an RGB pixel, or -1 where the pixel carries no depth.
export function hueIndex(r, g, b) {
  const v = Math.max(r, g, b), lo = Math.min(r, g, b), d = v - lo;
  if (v < HUE.minValue || d < HUE.minSaturation * v) return -1;
  let h;
  if (v === r) h = 60 * (g - b) / d;
  else if (v === g) h = 120 + 60 * (b - r) / d;
  else h = 240 + 60 * (r - g) / d;
  if (h < 0) h += 360;
  return Math.floor(h * HUE.steps / 360 + 0.5);
}

// Metres of hue index i under an encoding {mapping, min, max}.
export function indexMetres(i, enc) {
  let level = i >= HUE.steps ? -HUE.guard : i - HUE.guard;
  level = Math.min(Math.max(level, 0), HUE.levels - 1);
  const f = level / (HUE.levels - 1), lo = enc.min, hi = enc.max;
  if (enc.mapping === "log") return lo * Math.exp(f * Math.log(hi / lo));
  if (enc.mapping === "inverse") return 1 / (1 / hi + f * (1 / lo - 1 / hi));
  return lo + f * (hi - lo);
}

// Metres of an RGB pixel of the metric stream, or null where invalid.
export function decodePixel(r, g, b, enc) {
  const i = hueIndex(r, g, b);
  return i < 0 ? null : indexMetres(i, enc);
}

// Encoding of a metric frame: the mapping /camera.json announces, the range each frame
// carries in its headers (the server's, if a header is missing).
export function encodingOf(frame, cam) {
  const h = frame.headers;
  return {mapping: cam.metric.mapping,
          min: parseFloat(h["x-depth-min"]) || cam.metric.min,
          max: parseFloat(h["x-depth-max"]) || cam.metric.max};
}
