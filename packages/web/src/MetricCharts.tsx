import { useEffect, useMemo, useRef, useState } from 'react';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import type { Api, MetricKeySummary, MetricPoint, RunMetrics } from './api.js';
import { useSession } from './hooks.js';
import { axisColors, useTheme } from './theme.js';
import { ChartsFold } from './ui.js';
import { COLORS, formatValue } from './util.js';

export { COLORS } from './util.js';
/** Charts drawn at most; the summary table lists every key. */
const MAX_CHARTS = 24;

/** Every stored point of a run, paged by seq (what the API holds once thinning is done). */
export async function storedMetrics(
  api: Api,
  runId: string,
): Promise<{ keys: MetricKeySummary[]; points: MetricPoint[] }> {
  const first = await api.runMetrics(runId);
  const points = [...first.points];
  let page: RunMetrics = first;
  while (page.points.length) {
    page = await api.runMetrics(runId, page.next_seq);
    points.push(...page.points);
  }
  return { keys: first.keys, points };
}

/** One key's series, ordered by step (uPlot wants ascending x); ties keep arrival order. */
export function seriesOf(points: readonly MetricPoint[]): Map<string, { xs: number[]; ys: number[] }> {
  const byKey = new Map<string, MetricPoint[]>();
  for (const p of points) {
    const list = byKey.get(p.key);
    if (list) list.push(p);
    else byKey.set(p.key, [p]);
  }
  const out = new Map<string, { xs: number[]; ys: number[] }>();
  for (const [key, list] of [...byKey].sort(([a], [b]) => a.localeCompare(b))) {
    const sorted = [...list].sort((a, b) => a.step - b.step || a.seq - b.seq);
    out.set(key, { xs: sorted.map((p) => p.step), ys: sorted.map((p) => p.value) });
  }
  return out;
}

/** A line chart of one metric against its step; follows its container's width. */
function MetricChart({ name, xs, ys, color }: { name: string; xs: number[]; ys: number[]; color: string }) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const data = useMemo<uPlot.AlignedData>(() => [xs, ys], [xs, ys]);
  const theme = useTheme();

  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const u = new uPlot(
      {
        width: Math.max(200, el.clientWidth),
        height: 180,
        legend: { show: false },
        cursor: { drag: { x: true, y: false } },
        scales: { x: { time: false } },
        axes: [
          {
            ...axisColors(),
            label: 'step',
            labelSize: 16,
          },
          { ...axisColors(), size: 56 },
        ],
        series: [{}, { label: name, stroke: color, width: 2, points: { show: xs.length < 60 } }],
      },
      data,
      el,
    );
    plot.current = u;
    const ro = new ResizeObserver(() => u.setSize({ width: Math.max(200, el.clientWidth), height: 180 }));
    ro.observe(el);
    return () => {
      ro.disconnect();
      u.destroy();
      plot.current = null;
    };
    // Rebuilt when the key changes; new points go through setData below.
  }, [name, color, theme]);

  useEffect(() => {
    plot.current?.setData(data);
  }, [data]);

  const last = ys.at(-1);
  return (
    <figure
      className="chart"
      data-metric={name}
      data-points={xs.length}
      data-last={last === undefined ? '' : String(last)}
    >
      <figcaption>
        {name} {last !== undefined && <span className="muted small mono">{formatValue(last)}</span>}
      </figcaption>
      <div ref={box} className="chart-box" role="img" aria-label={`${name} by step, ${xs.length} points`} />
    </figure>
  );
}

/**
 * The run's metrics (parsed by the server from `LIFTOFF_METRICS {...}` lines of its output): one chart per key and a
 * table of final values. While the run is live the charts grow from the log stream's `metrics` events; once it has
 * ended (and on every load of an ended run) they show the stored series from the API, thinned exactly as stored.
 */
export function MetricCharts({
  runId,
  streamed,
  ended,
}: {
  runId: string;
  streamed: readonly MetricPoint[];
  ended: boolean;
}) {
  const { api } = useSession();
  const [stored, setStored] = useState<{ keys: MetricKeySummary[]; points: MetricPoint[] } | undefined>(undefined);
  const [error, setError] = useState<string | undefined>(undefined);

  useEffect(() => {
    if (!ended) return;
    let stopped = false;
    storedMetrics(api, runId).then(
      (m) => !stopped && setStored(m),
      (e: unknown) => !stopped && setError((e as Error).message),
    );
    return () => {
      stopped = true;
    };
  }, [api, runId, ended]);

  const points = stored?.points ?? streamed;
  const series = useMemo(() => seriesOf(points), [points]);
  if (!series.size && !stored?.keys.length) return null;
  const charts = [...series].slice(0, MAX_CHARTS);
  return (
    <section className="card pad" aria-labelledby="metrics-title" data-testid="metrics">
      <h2 id="metrics-title">Metrics</h2>
      {error && <p className="field-error">{error}</p>}
      <ChartsFold label={`${charts.length === 1 ? 'chart' : `${charts.length} charts`}`}>
        {charts.map(([key, s], i) => (
          <MetricChart key={key} name={key} xs={s.xs} ys={s.ys} color={COLORS[i % COLORS.length] ?? '#2563eb'} />
        ))}
      </ChartsFold>
      {series.size > MAX_CHARTS && (
        <p className="muted small">{series.size - MAX_CHARTS} more keys are not charted; the table lists them all.</p>
      )}
      {stored && stored.keys.length > 0 && (
        // Focusable: on a phone it scrolls sideways inside itself, and the keyboard must reach that.
        <table className="table mini" aria-label="Final metrics" tabIndex={0}>
          <thead>
            <tr>
              <th>Key</th>
              <th>Last</th>
              <th>At step</th>
              <th>Min</th>
              <th>Max</th>
              <th>Values</th>
            </tr>
          </thead>
          <tbody>
            {stored.keys.map((k) => (
              <tr key={k.key} data-key={k.key}>
                <td className="mono">{k.key}</td>
                <td className="mono">{formatValue(k.last.value)}</td>
                <td>{k.last.step}</td>
                <td className="mono">{formatValue(k.min)}</td>
                <td className="mono">{formatValue(k.max)}</td>
                <td title={k.stored < k.seen ? `${k.stored} stored (every ${k.stride}th)` : undefined}>{k.seen}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

/**
 * One metric of several runs on one chart (the compare view): each run's series against step, joined on the union of
 * their steps (uPlot wants one x array) with gaps spanned, so runs logged at different steps still draw lines.
 */
export function OverlayChart({
  name,
  series,
}: {
  name: string;
  series: Array<{ run: string; label: string; xs: number[]; ys: number[] }>;
}) {
  const box = useRef<HTMLDivElement>(null);
  const data = useMemo(() => uPlot.join(series.map((s) => [s.xs, s.ys] as uPlot.AlignedData)), [series]);
  const theme = useTheme();

  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const u = new uPlot(
      {
        width: Math.max(200, el.clientWidth),
        height: 200,
        legend: { show: true },
        scales: { x: { time: false } },
        axes: [
          { ...axisColors(), label: 'step', labelSize: 16 },
          { ...axisColors(), size: 56 },
        ],
        series: [
          {},
          ...series.map((s, i) => ({
            label: s.label,
            stroke: COLORS[i % COLORS.length] ?? '#2563eb',
            width: 2,
            spanGaps: true,
          })),
        ],
      },
      data,
      el,
    );
    const ro = new ResizeObserver(() => u.setSize({ width: Math.max(200, el.clientWidth), height: 200 }));
    ro.observe(el);
    return () => {
      ro.disconnect();
      u.destroy();
    };
  }, [data, series, theme]);

  return (
    <figure className="chart" data-metric={name}>
      <figcaption>{name}</figcaption>
      <div ref={box} className="chart-box" role="img" aria-label={`${name} by step for ${series.length} runs`} />
      <ul className="sr-only">
        {series.map((s) => (
          <li key={s.run} data-run={s.run} data-points={s.xs.length}>
            {s.label}: {s.xs.length} points
          </li>
        ))}
      </ul>
    </figure>
  );
}
