import { useEffect, useMemo, useState } from 'react';
import type { MetricPoint, RunDetail } from '../api.js';
import { OverlayChart, seriesOf, storedMetrics } from '../MetricCharts.js';
import { useSession } from '../hooks.js';
import { Link } from '../router.js';
import { ErrorBanner } from '../ui.js';
import { shortId } from '../util.js';

/** Charts drawn at most in the compare view (one per metric key). */
const MAX_CHARTS = 24;

/** A run config's leaves by dotted path; objects are walked, arrays and scalars are values (JSON text). */
export function flatConfig(value: unknown, prefix = '', out = new Map<string, string>()): Map<string, string> {
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    for (const [k, v] of Object.entries(value as Record<string, unknown>))
      flatConfig(v, prefix ? `${prefix}.${k}` : k, out);
  } else if (prefix) out.set(prefix, JSON.stringify(value));
  return out;
}

interface Loaded {
  run: RunDetail;
  points: MetricPoint[];
}

/**
 * Several runs side by side: each metric key's curves overlaid (every stored point, as the run page charts them),
 * and the run configs in one table with the keys whose values differ marked.
 */
export function RunCompare({ ids, onClose }: { ids: string[]; onClose: () => void }) {
  const { api } = useSession();
  const [loaded, setLoaded] = useState<Loaded[] | undefined>(undefined);
  const [error, setError] = useState<string | undefined>(undefined);

  useEffect(() => {
    let stopped = false;
    setLoaded(undefined);
    Promise.all(
      ids.map(async (id) => ({ run: await api.run(id), points: (await storedMetrics(api, id)).points })),
    ).then(
      (l) => !stopped && setLoaded(l),
      (e: unknown) => !stopped && setError((e as Error).message),
    );
    return () => {
      stopped = true;
    };
  }, [api, ids.join(',')]);

  const label = (r: RunDetail) => r.spec.name ?? shortId(r.id);
  const charts = useMemo(() => {
    if (!loaded) return [];
    const perRun = loaded.map((l) => ({ run: l.run, series: seriesOf(l.points) }));
    const keys = [...new Set(perRun.flatMap((p) => [...p.series.keys()]))].sort();
    return keys.slice(0, MAX_CHARTS).map((key) => ({
      key,
      series: perRun.flatMap((p) => {
        const s = p.series.get(key);
        return s ? [{ run: p.run.id, label: label(p.run), xs: s.xs, ys: s.ys }] : [];
      }),
    }));
  }, [loaded]);
  const configs = useMemo(() => (loaded ?? []).map((l) => flatConfig(l.run.spec.run_config ?? {})), [loaded]);
  const configKeys = [...new Set(configs.flatMap((c) => [...c.keys()]))].sort();

  return (
    <section className="card pad" aria-labelledby="compare-title" data-testid="compare">
      <div className="page-head">
        <h2 id="compare-title">Compare {ids.length} runs</h2>
        <button type="button" className="btn btn-small" onClick={onClose}>
          Close
        </button>
      </div>
      {error && <ErrorBanner>{error}</ErrorBanner>}
      {!loaded && !error && <p className="muted">Loading…</p>}
      {loaded && (
        <>
          {charts.length === 0 && <p className="muted">None of these runs reported metrics.</p>}
          <div className="charts">
            {charts.map((c) => (
              <OverlayChart key={c.key} name={c.key} series={c.series} />
            ))}
          </div>
          <table className="table mini compare-config" aria-label="Run configs" tabIndex={0}>
            <thead>
              <tr>
                <th scope="col">Config key</th>
                {loaded.map((l) => (
                  <th scope="col" key={l.run.id}>
                    <Link href={`/runs/${l.run.id}`}>{label(l.run)}</Link>
                  </th>
                ))}
              </tr>
            </thead>
            <tbody>
              {configKeys.map((key) => {
                const values = configs.map((c) => c.get(key));
                const differs = values.some((v) => v !== values[0]);
                return (
                  <tr
                    key={key}
                    data-config-key={key}
                    data-differs={differs}
                    className={differs ? 'row-differs' : undefined}
                  >
                    <th scope="row" className="mono">
                      {key}
                      {differs && <span className="sr-only"> (differs)</span>}
                    </th>
                    {values.map((v, i) => (
                      <td key={i} className="mono">
                        {v ?? <span className="muted">—</span>}
                      </td>
                    ))}
                  </tr>
                );
              })}
            </tbody>
          </table>
        </>
      )}
    </section>
  );
}
