// Hand-written SVG charts: candles with a signal's bar and levels, and a realized P&L line.
// Geometry is in SVG attributes; colours come from classes in app.css (no inline style).

import { s } from "./dom.js";
import { price, time } from "./format.js";

const W = 760;
const H = 320;
const PAD = { left: 8, right: 78, top: 12, bottom: 24 };

function scale(domainLow, domainHigh, rangeLow, rangeHigh) {
  const span = domainHigh - domainLow || 1;
  return (v) => rangeLow + ((v - domainLow) / span) * (rangeHigh - rangeLow);
}

/**
 * Candles oldest first ({t, o, h, l, c}); ``levels`` {entry, sl, tp}; ``markTime`` the signal bar's
 * start (ms). Returns an <svg> with data-* attributes tests can read.
 */
export function candleChart(candles, { levels = {}, markTime = null, title = "" } = {}) {
  const lows = candles.map((c) => c.l);
  const highs = candles.map((c) => c.h);
  const extra = [levels.entry, levels.sl, levels.tp].filter((v) => Number.isFinite(v));
  let low = Math.min(...lows, ...extra);
  let high = Math.max(...highs, ...extra);
  const margin = (high - low) * 0.04 || Math.abs(high) * 0.01 || 1;
  low -= margin;
  high += margin;
  const x0 = PAD.left;
  const x1 = W - PAD.right;
  const step = (x1 - x0) / Math.max(candles.length, 1);
  const y = scale(low, high, H - PAD.bottom, PAD.top);
  const svg = s("svg", {
    class: "chart candles",
    viewBox: `0 0 ${W} ${H}`,
    role: "img",
    "aria-label": title,
    "data-candles": candles.length,
  });
  for (let i = 0; i <= 4; i++) {
    const v = low + ((high - low) * i) / 4;
    svg.append(
      s("line", { class: "grid", x1: x0, x2: x1, y1: y(v), y2: y(v) }),
      s("text", { class: "axis-label", x: x1 + 4, y: y(v) + 4, text: price(v) }),
    );
  }
  let marked = -1;
  candles.forEach((c, i) => {
    const cx = x0 + step * (i + 0.5);
    const up = c.c >= c.o;
    if (markTime !== null && c.t === markTime) {
      marked = i;
      svg.append(s("rect", { class: "signal-bar", x: cx - step / 2, y: PAD.top, width: step, height: H - PAD.top - PAD.bottom }));
    }
    svg.append(s("line", { class: up ? "wick-up" : "wick-down", x1: cx, x2: cx, y1: y(c.h), y2: y(c.l) }));
    const top = y(Math.max(c.o, c.c));
    const bodyH = Math.max(1, Math.abs(y(c.o) - y(c.c)));
    svg.append(s("rect", { class: up ? "body-up" : "body-down", x: cx - step * 0.35, y: top, width: step * 0.7, height: bodyH }));
  });
  svg.setAttribute("data-marked-index", String(marked));
  const names = { entry: "Entry", sl: "SL", tp: "TP" };
  for (const key of ["entry", "sl", "tp"]) {
    const v = levels[key];
    if (!Number.isFinite(v)) continue;
    svg.append(
      s("line", { class: `level level-${key}`, x1: x0, x2: x1, y1: y(v), y2: y(v), "data-level": key }),
      s("text", { class: `level-label label-${key}`, x: x1 + 4, y: y(v) - 3, text: `${names[key]} ${price(v)}` }),
    );
  }
  if (candles.length) {
    svg.append(
      s("text", { class: "axis-label", x: x0, y: H - 6, text: time(candles[0].t) }),
      s("text", { class: "axis-label", x: x1, y: H - 6, "text-anchor": "end", text: time(candles[candles.length - 1].t) }),
    );
  }
  return svg;
}

/** Points [{t (ms), v}] as a line, with the zero line: cumulative realized P&L over time. */
export function lineChart(points, { title = "" } = {}) {
  const values = points.map((p) => p.v);
  let low = Math.min(0, ...values);
  let high = Math.max(0, ...values);
  if (high === low) high = low + 1;
  const margin = (high - low) * 0.08;
  low -= margin;
  high += margin;
  const t0 = points[0].t;
  const t1 = points[points.length - 1].t;
  const x = scale(t0, t1 === t0 ? t0 + 1 : t1, PAD.left, W - PAD.right);
  const y = scale(low, high, H - PAD.bottom, PAD.top);
  const svg = s("svg", { class: "chart equity-chart", viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": title, "data-points": points.length });
  for (let i = 0; i <= 4; i++) {
    const v = low + ((high - low) * i) / 4;
    svg.append(
      s("line", { class: "grid", x1: PAD.left, x2: W - PAD.right, y1: y(v), y2: y(v) }),
      s("text", { class: "axis-label", x: W - PAD.right + 4, y: y(v) + 4, text: v.toFixed(2) }),
    );
  }
  svg.append(s("line", { class: "zero", x1: PAD.left, x2: W - PAD.right, y1: y(0), y2: y(0) }));
  const path = points.map((p, i) => `${i ? "L" : "M"}${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`).join(" ");
  svg.append(s("path", { class: "equity", d: path }));
  svg.append(
    s("text", { class: "axis-label", x: PAD.left, y: H - 6, text: time(t0) }),
    s("text", { class: "axis-label", x: W - PAD.right, y: H - 6, "text-anchor": "end", text: time(t1) }),
  );
  return svg;
}
