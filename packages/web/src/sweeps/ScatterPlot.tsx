import { useId, useMemo } from 'react';
import type { SweepTrial } from '../api.js';
import { COLORS, formatValue } from '../util.js';
import { paramText } from './SweepBadge.js';

const W = 560;
const H = 260;
const PAD = { left: 64, right: 16, top: 12, bottom: 40 };

/** Ticks of a numeric axis: about `n` round values across [lo, hi]. */
function ticks(lo: number, hi: number, n = 5): number[] {
  if (lo === hi) return [lo];
  const raw = (hi - lo) / n;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? raw;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(+v.toPrecision(12));
  return out;
}

/**
 * Parameter against metric, one dot per trial with a value: an SVG (a few hundred dots at most) so every dot is an
 * element with its trial, readable by tests and, through the list after it, by screen readers. A numeric parameter
 * gets a linear axis; any other (categories, nested values) one slot per distinct value. The best trial is ringed.
 */
export function ScatterPlot({
  trials,
  param,
  metric,
  best,
}: {
  trials: readonly SweepTrial[];
  param: string;
  metric: string;
  best: number | undefined;
}) {
  const titleId = useId();
  const points = useMemo(
    () =>
      trials.flatMap((t) =>
        t.metric === null || !(param in t.params) ? [] : [{ trial: t.number, x: t.params[param], y: t.metric }],
      ),
    [trials, param],
  );
  const numeric = points.length > 0 && points.every((p) => typeof p.x === 'number');
  const categories = numeric ? [] : [...new Set(points.map((p) => paramText(p.x)))].sort();
  const xs = points.map((p) => (numeric ? (p.x as number) : categories.indexOf(paramText(p.x))));
  const ys = points.map((p) => p.y);
  const [x0, x1] = numeric ? [Math.min(...xs), Math.max(...xs)] : [-0.5, categories.length - 0.5];
  const [y0, y1] = [Math.min(...ys), Math.max(...ys)];
  const span = (lo: number, hi: number) => (hi > lo ? [lo, hi] : [lo - 1, hi + 1]) as [number, number];
  const [ax, bx] = span(x0, x1);
  const [ay, by] = span(y0, y1);
  const sx = (v: number) => PAD.left + ((v - ax) / (bx - ax)) * (W - PAD.left - PAD.right);
  const sy = (v: number) => H - PAD.bottom - ((v - ay) / (by - ay)) * (H - PAD.top - PAD.bottom);
  const xTicks = numeric
    ? ticks(ax, bx).map((v) => ({ at: v, text: formatValue(v) }))
    : categories.map((c, i) => ({ at: i, text: c }));
  return (
    <figure className="chart sweep-scatter" data-param={param} data-points={points.length}>
      <figcaption id={titleId}>
        {metric} by {param}
      </figcaption>
      {points.length === 0 ? (
        <p className="muted small">No trial has reported {metric} yet.</p>
      ) : (
        <svg viewBox={`0 0 ${W} ${H}`} role="img" aria-labelledby={titleId} className="scatter-svg">
          {ticks(ay, by).map((v) => (
            <g key={`y${v}`}>
              <line x1={PAD.left} x2={W - PAD.right} y1={sy(v)} y2={sy(v)} className="scatter-grid" />
              <text x={PAD.left - 6} y={sy(v) + 4} textAnchor="end" className="scatter-tick">
                {formatValue(v)}
              </text>
            </g>
          ))}
          {xTicks.map((t) => (
            <text key={`x${t.at}`} x={sx(t.at)} y={H - PAD.bottom + 16} textAnchor="middle" className="scatter-tick">
              {t.text.length > 12 ? `${t.text.slice(0, 11)}…` : t.text}
            </text>
          ))}
          <text x={(PAD.left + W - PAD.right) / 2} y={H - 6} textAnchor="middle" className="scatter-label">
            {param}
          </text>
          {points.map((p, i) => (
            <circle
              key={p.trial}
              cx={sx(xs[i] ?? 0)}
              cy={sy(p.y)}
              r={p.trial === best ? 7 : 5}
              fill={COLORS[0]}
              fillOpacity={0.75}
              // The ring takes the theme's text colour (styles.css), so it shows on the dark theme too.
              className={p.trial === best ? 'scatter-best' : undefined}
              stroke={p.trial === best ? undefined : 'none'}
              strokeWidth={2}
              data-trial={p.trial}
              data-x={paramText(p.x)}
              data-y={p.y}
            >
              <title>
                trial {p.trial}: {param} = {paramText(p.x)}, {metric} = {formatValue(p.y)}
              </title>
            </circle>
          ))}
        </svg>
      )}
    </figure>
  );
}
