// Small inline SVG charts (no library): a step line of cumulative values over time, and a bar
// histogram. Every chart is an `<svg role="img">` with a title and a description that says
// what it shows in words; the pages put the numbers in a table beside it too. Exact decimals
// arrive as strings and are shown as they are; they become numbers only to place pixels.
// No style attributes (the Content-Security-Policy allows none): colours come from classes in
// app.css.

const NS = 'http://www.w3.org/2000/svg';
let seq = 0;

function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined && v !== null) el.setAttribute(k, String(v));
  for (const c of children.flat()) if (c !== null && c !== undefined) el.appendChild(typeof c === 'string' ? document.createTextNode(c) : c);
  return el;
}

function frame(title, desc, width, height) {
  const id = `chart${++seq}`;
  return s('svg', {
    viewBox: `0 0 ${width} ${height}`, class: 'chart', role: 'img',
    'aria-labelledby': `${id}-t ${id}-d`, preserveAspectRatio: 'xMidYMid meet',
  }, s('title', { id: `${id}-t` }, title), s('desc', { id: `${id}-d` }, desc));
}

function ticks(min, max, n) {
  if (min === max) return [min];
  const step = (max - min) / n;
  return Array.from({ length: n + 1 }, (_, i) => min + step * i);
}

function short(v) {
  const a = Math.abs(v);
  if (a >= 1000) return `${(v / 1000).toFixed(1)}k`;
  return Number.isInteger(v) ? String(v) : v.toFixed(2);
}

/**
 * Cumulative lines: `series` = [{name, points: [{at (ISO), value (string)}]}], from 0 at the
 * window's start. Each series gets a class `s0`…`s5`.
 */
export function lineChart(series, { title, desc, since, until, width = 720, height = 260 }) {
  const svg = frame(title, desc, width, height);
  const pad = { l: 56, r: 12, t: 12, b: 28 };
  const t0 = new Date(since).getTime();
  const t1 = new Date(until).getTime();
  const values = series.flatMap((x) => x.points.map((p) => Number(p.value)));
  const lo = Math.min(0, ...values);
  const hi = Math.max(0, ...values);
  const span = hi - lo || 1;
  const x = (t) => pad.l + ((t - t0) / (t1 - t0 || 1)) * (width - pad.l - pad.r);
  const y = (v) => pad.t + (1 - (v - lo) / span) * (height - pad.t - pad.b);
  const axes = s('g', { class: 'axes' });
  for (const v of ticks(lo, hi, 4)) {
    axes.appendChild(s('line', { x1: pad.l, x2: width - pad.r, y1: y(v), y2: y(v), class: 'grid' }));
    axes.appendChild(s('text', { x: pad.l - 6, y: y(v) + 4, 'text-anchor': 'end' }, short(v)));
  }
  axes.appendChild(s('line', { x1: pad.l, x2: width - pad.r, y1: y(0), y2: y(0), class: 'zero' }));
  for (const [t, anchor] of [[t0, 'start'], [t1, 'end']]) {
    axes.appendChild(s('text', { x: x(t), y: height - 8, 'text-anchor': anchor }, new Date(t).toLocaleDateString()));
  }
  svg.appendChild(axes);
  series.forEach((line, i) => {
    // A step line: the cumulative value holds until the next trade closes.
    let d = `M ${x(t0)} ${y(0)}`;
    let last = 0;
    for (const p of line.points) {
      const tx = x(new Date(p.at).getTime());
      d += ` L ${tx} ${y(last)} L ${tx} ${y(Number(p.value))}`;
      last = Number(p.value);
    }
    d += ` L ${x(t1)} ${y(last)}`;
    svg.appendChild(s('path', { d, class: `line s${i % 6}` }, s('title', {}, line.name)));
  });
  return svg;
}

/** Bars: `bars` = [{label, count}]. */
export function barChart(bars, { title, desc, width = 720, height = 240 }) {
  const svg = frame(title, desc, width, height);
  const pad = { l: 40, r: 8, t: 12, b: 40 };
  const max = Math.max(1, ...bars.map((b) => b.count));
  const w = (width - pad.l - pad.r) / Math.max(1, bars.length);
  const y = (v) => pad.t + (1 - v / max) * (height - pad.t - pad.b);
  const axes = s('g', { class: 'axes' });
  for (const v of ticks(0, max, Math.min(4, max))) {
    axes.appendChild(s('line', { x1: pad.l, x2: width - pad.r, y1: y(v), y2: y(v), class: 'grid' }));
    axes.appendChild(s('text', { x: pad.l - 6, y: y(v) + 4, 'text-anchor': 'end' }, short(Math.round(v))));
  }
  svg.appendChild(axes);
  bars.forEach((b, i) => {
    const bx = pad.l + i * w + 2;
    svg.appendChild(s('rect', {
      x: bx, y: y(b.count), width: Math.max(1, w - 4), height: Math.max(0, y(0) - y(b.count)), class: 'bar',
    }, s('title', {}, `${b.label}: ${b.count}`)));
    svg.appendChild(s('text', { x: bx + (w - 4) / 2, y: height - 24, 'text-anchor': 'middle', class: 'label' }, b.label));
  });
  return svg;
}
