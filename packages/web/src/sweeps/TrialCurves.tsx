import { useEffect, useMemo, useRef, useState } from 'react';
import { isTerminal, type Api, type MetricPoint, type SweepTrial } from '../api.js';
import { useSession } from '../hooks.js';
import { OverlayChart, seriesOf } from '../MetricCharts.js';

/** Curves drawn at most: the newest trials' (a chart of hundreds of lines reads as none). */
const MAX_CURVES = 40;

/** Every stored point of one key of a run, paged by seq. */
async function keyPoints(api: Api, runId: string, key: string): Promise<MetricPoint[]> {
  const out: MetricPoint[] = [];
  let after = -1;
  for (;;) {
    const page = await api.runMetrics(runId, after, 10_000, key);
    out.push(...page.points);
    if (!page.points.length) return out;
    after = page.next_seq;
  }
}

/**
 * The sweep's metric for every trial on one chart (the run compare view's OverlayChart). Each poll of the sweep
 * refetches only the trials still running; an ended trial's curve is fetched once and kept.
 */
export function TrialCurves({ trials, metric }: { trials: readonly SweepTrial[]; metric: string }) {
  const { api } = useSession();
  const [curves, setCurves] = useState<ReadonlyMap<string, MetricPoint[]>>(new Map());
  const done = useRef(new Set<string>());
  const shown = useMemo(() => trials.filter((t) => t.run_id && t.state !== 'pending').slice(-MAX_CURVES), [trials]);
  const wanted = shown
    .filter((t) => !done.current.has(t.run_id ?? ''))
    .map((t) => `${t.run_id}:${t.state}:${t.metric}`)
    .join(',');

  useEffect(() => {
    let stopped = false;
    const todo = shown.filter((t) => t.run_id && !done.current.has(t.run_id));
    void Promise.all(
      todo.map(async (t) => {
        const id = t.run_id ?? '';
        const points = await keyPoints(api, id, metric).catch(() => undefined);
        if (points && isTerminal(t.state)) done.current.add(id);
        return [id, points] as const;
      }),
    ).then((got) => {
      if (stopped) return;
      setCurves((old) => {
        const next = new Map(old);
        for (const [id, points] of got) if (points) next.set(id, points);
        return next;
      });
    });
    return () => {
      stopped = true;
    };
    // Refetched when a trial not yet complete changes (state or last value).
  }, [api, metric, wanted]);

  const series = useMemo(
    () =>
      shown.flatMap((t) => {
        const s = seriesOf(curves.get(t.run_id ?? '') ?? []).get(metric);
        return s && s.xs.length ? [{ run: t.run_id ?? '', label: `trial ${t.number}`, xs: s.xs, ys: s.ys }] : [];
      }),
    [shown, curves, metric],
  );
  if (!series.length) return <p className="muted small">No trial has reported {metric} yet.</p>;
  return (
    <>
      <OverlayChart name={metric} series={series} />
      {trials.length > MAX_CURVES && (
        <p className="muted small">The newest {MAX_CURVES} trials' curves; the table lists every trial.</p>
      )}
    </>
  );
}
