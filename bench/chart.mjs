// Latency distributions drawn as SVG: one row per configuration, a bar from p50 to p99 with a tick at p95, on a
// log-scale axis. Hand-written on purpose: a dozen shapes do not justify a charting library and a headless browser.
export function latencyChart(title, rows) {
  const width = 900;
  const left = 330;
  const rowH = 28;
  const top = 48;
  const height = top + rows.length * rowH + 40;
  const values = rows.flatMap((r) => [r.p50, r.p99]).filter((v) => v > 0);
  const lo = Math.pow(10, Math.floor(Math.log10(Math.min(...values))));
  const hi = Math.pow(10, Math.ceil(Math.log10(Math.max(...values))));
  const x = (v) =>
    left + ((Math.log10(Math.max(v, lo)) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))) * (width - left - 30);
  const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;');
  const ticks = [];
  for (let v = lo; v <= hi * 1.0001; v *= 10) {
    ticks.push(`<line x1="${x(v)}" y1="${top - 8}" x2="${x(v)}" y2="${height - 30}" stroke="#ddd"/>`);
    ticks.push(
      `<text x="${x(v)}" y="${height - 14}" font-size="11" text-anchor="middle" fill="#555">${v >= 1000 ? `${v / 1000} s` : `${v} ms`}</text>`,
    );
  }
  const bars = rows.map((r, i) => {
    const y = top + i * rowH;
    return [
      `<text x="${left - 10}" y="${y + 15}" font-size="12" text-anchor="end" fill="#222">${esc(r.label)}</text>`,
      `<rect x="${x(r.p50)}" y="${y + 5}" width="${Math.max(2, x(r.p99) - x(r.p50))}" height="14" fill="${r.baseline ? '#e8a33d' : '#3d7de8'}" opacity="0.8"/>`,
      `<line x1="${x(r.p95)}" y1="${y + 3}" x2="${x(r.p95)}" y2="${y + 21}" stroke="#111" stroke-width="2"/>`,
    ].join('');
  });
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif">
<rect width="100%" height="100%" fill="white"/>
<text x="10" y="22" font-size="15" font-weight="bold">${esc(title)}</text>
<text x="10" y="38" font-size="11" fill="#555">bar: p50 to p99, tick: p95; blue: Liftoff, orange: baseline (log scale)</text>
${ticks.join('\n')}
${bars.join('\n')}
</svg>
`;
}
