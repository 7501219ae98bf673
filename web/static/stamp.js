// Reads the capture-time stamp the synthetic scene draws into its frames (media/stamp.py):
// a row of 8x8 black/white cells in the bottom-left corner, 2 guard cells (white, black),
// 40 bits of epoch milliseconds modulo 2^40, 6 bits counting the set data bits.
const CELL = 8, DATA_BITS = 40, CHECK_BITS = 6, CELLS = 2 + DATA_BITS + CHECK_BITS;
const MODULO = 2 ** DATA_BITS;
let canvas = null;

function sourceSize(el) {
  if (el instanceof HTMLVideoElement) return [el.videoWidth, el.videoHeight];
  return [el.naturalWidth, el.naturalHeight];
}

// Capture time (seconds since the epoch) of the frame an <img>, <video> or canvas shows
// now, or null when it carries no readable stamp.
export function readStamp(el) {
  const [w, h] = el instanceof HTMLCanvasElement ? [el.width, el.height] : sourceSize(el);
  if (!w || !h || w < CELLS * CELL || h < 3 * CELL) return null;
  const y0 = Math.floor((h - 2 * CELL) / CELL) * CELL;
  canvas = canvas || document.createElement("canvas");
  canvas.width = CELLS * CELL;
  canvas.height = 1;
  const ctx = canvas.getContext("2d", {willReadFrequently: true});
  ctx.drawImage(el, 0, y0 + CELL / 2, CELLS * CELL, 1, 0, 0, CELLS * CELL, 1);
  const px = ctx.getImageData(0, 0, CELLS * CELL, 1).data;
  const bits = [];
  for (let i = 0; i < CELLS; i++) {
    const o = (i * CELL + CELL / 2) * 4;
    bits.push((px[o] + px[o + 1] + px[o + 2]) / 3 >= 128 ? 1 : 0);
  }
  if (bits[0] !== 1 || bits[1] !== 0) return null;
  let ms = 0, count = 0, check = 0;
  for (let i = 0; i < DATA_BITS; i++) { ms = ms * 2 + bits[2 + i]; count += bits[2 + i]; }
  for (let i = 0; i < CHECK_BITS; i++) check = check * 2 + bits[2 + DATA_BITS + i];
  if (check !== count % (1 << CHECK_BITS)) return null;
  const now = Date.now();
  const base = now - (now % MODULO);
  let best = base + ms;
  for (const c of [base - MODULO + ms, base + MODULO + ms]) {
    if (Math.abs(c - now) < Math.abs(best - now)) best = c;
  }
  return best / 1000;
}
