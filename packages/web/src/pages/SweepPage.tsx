import { Suspense, lazy, useEffect, useState } from 'react';
import type { Sweep, SweepTrial } from '../api.js';
import { useSession } from '../hooks.js';
import { usePoll } from '../poll.js';
import { res } from '../resources.js';
import { Link } from '../router.js';
import { formatValue } from '../util.js';
import { ScatterPlot } from '../sweeps/ScatterPlot.js';
import { SweepActions } from '../sweeps/SweepActions.js';
import { SweepBadge, paramText } from '../sweeps/SweepBadge.js';
import { DataTable, type TableColumn } from '../table.js';
import { ErrorBanner, StateBadge, Time } from '../ui.js';

/** The overlaid curves draw with uPlot, a chunk of its own (code splitting, ui.tsx): fetched with this page's charts. */
const TrialCurves = lazy(() => import('../sweeps/TrialCurves.js').then((m) => ({ default: m.TrialCurves })));

/** The parameters the trials were given, in first-seen order (a nested parameter is one column, shown as JSON). */
function paramNames(trials: readonly SweepTrial[]): string[] {
  const names = new Set<string>();
  for (const t of trials) for (const k of Object.keys(t.params)) names.add(k);
  return [...names];
}

function trialColumns(
  params: string[],
  metric: string | undefined,
  best: number | undefined,
): TableColumn<SweepTrial>[] {
  return [
    { id: 'number', header: '#', numeric: true, cell: (t) => t.number, td: { 'data-col': 'number' } },
    {
      id: 'state',
      header: 'State',
      cell: (t) => (
        <>
          <StateBadge state={t.state} />
          {t.early_terminated && <div className="sub">early-terminated</div>}
        </>
      ),
    },
    ...params.map<TableColumn<SweepTrial>>((p) => ({
      id: `param-${p}`,
      header: p,
      cell: (t) =>
        p in t.params ? <span className="mono">{paramText(t.params[p])}</span> : <span className="muted">—</span>,
      td: { 'data-param': p },
    })),
    ...(metric
      ? [
          {
            id: 'metric',
            header: metric,
            numeric: true,
            cell: (t: SweepTrial) =>
              t.metric === null ? (
                <span className="muted">—</span>
              ) : (
                <span className="mono">
                  {formatValue(t.metric)}
                  {t.number === best && <span className="sweep-best-tag"> best</span>}
                </span>
              ),
            td: { 'data-col': 'metric' },
          },
        ]
      : []),
    {
      id: 'run',
      header: 'Run',
      cell: (t) =>
        t.run_id ? (
          <Link href={`/runs/${encodeURIComponent(t.run_id)}`} className="mono">
            {t.run_id.slice(-8)}
          </Link>
        ) : (
          <Link href={`/items/${encodeURIComponent(t.item_id)}`} className="muted">
            item
          </Link>
        ),
    },
  ];
}

/** One sweep: its state and controls, best trial, trials table, parameter-vs-metric scatter and overlaid curves. */
export function SweepPage({ id }: { id: string }) {
  const { entity } = useSession();
  const sweep = usePoll(res.sweep(entity, id), 3000);
  const s: Sweep | undefined = sweep.data;
  const trials = s?.trials ?? [];
  const params = paramNames(trials);
  const [picked, setPicked] = useState<string | undefined>(undefined);
  const param = picked && params.includes(picked) ? picked : params[0];
  useEffect(() => {
    document.title = `${s?.name ?? id} · Sweeps · Liftoff`;
  }, [s?.name, id]);
  if (!s)
    return (
      <div className="page">
        {sweep.error ? <ErrorBanner>{sweep.error.message}</ErrorBanner> : <p className="muted">Loading…</p>}
      </div>
    );
  const metric = s.config.metric;
  const best = s.best?.number;
  return (
    <div className="page">
      <p className="crumbs">
        <Link href="/sweeps">Sweeps</Link> /
      </p>
      <div className="page-head sweep-head">
        <div>
          <h1>{s.name}</h1>
          <p className="muted">
            <SweepBadge state={s.state} /> {s.reason && <span data-field="reason">{s.reason}</span>}
          </p>
        </div>
        <SweepActions sweep={s} onChanged={sweep.reload} />
      </div>
      {sweep.error && <ErrorBanner>{sweep.error.message}</ErrorBanner>}
      <dl className="kv" aria-label="Sweep">
        <dt>Method</dt>
        <dd>{s.method}</dd>
        <dt>Metric</dt>
        <dd>
          {metric ? (
            `${metric.goal ?? 'minimize'} ${metric.name}${metric.target !== undefined ? `, target ${metric.target}` : ''}`
          ) : (
            <span className="muted">none</span>
          )}
        </dd>
        <dt>Queue</dt>
        <dd>
          <Link href={`/queues/${encodeURIComponent(s.queue)}`}>{s.queue}</Link>, {s.parallel} in parallel
        </dd>
        <dt>Trials</dt>
        <dd data-field="trial-count">{s.trial_count}</dd>
        <dt>Created</dt>
        <dd>
          <Time ms={s.created_at} /> by {s.author}
        </dd>
        {s.ended_at !== null && (
          <>
            <dt>Ended</dt>
            <dd>
              <Time ms={s.ended_at} />
            </dd>
          </>
        )}
        <dt>Id</dt>
        <dd className="mono">{s.id}</dd>
      </dl>
      {s.notes.length > 0 && (
        <ul className="banner banner-info sweep-notes">
          {s.notes.map((n) => (
            <li key={n}>{n}</li>
          ))}
        </ul>
      )}
      {s.best && metric && (
        <section className="card pad sweep-best" aria-labelledby="best-title" data-testid="best-trial">
          <h2 id="best-title">Best trial</h2>
          <p>
            Trial <strong data-field="best-number">{s.best.number}</strong>: {metric.name}{' '}
            <span className="mono" data-field="best-metric">
              {formatValue(s.best.metric ?? NaN)}
            </span>
            {s.best.run_id && (
              <>
                {' '}
                (<Link href={`/runs/${encodeURIComponent(s.best.run_id)}`}>run</Link>)
              </>
            )}
          </p>
          <p className="mono small">
            {Object.entries(s.best.params)
              .map(([k, v]) => `${k}=${paramText(v)}`)
              .join(', ')}
          </p>
        </section>
      )}
      <h2 className="sweep-section-title">Trials</h2>
      {trials.length === 0 ? (
        <p className="muted">No trial pushed yet.</p>
      ) : (
        <DataTable
          label="Trials"
          columns={trialColumns(params, metric?.name, best)}
          rows={trials}
          rowKey={(t) => String(t.number)}
          rowAttrs={(t) => ({ 'data-trial': String(t.number), 'data-state': t.state })}
        />
      )}
      {metric && trials.length > 0 && (
        <div className="sweep-charts">
          <section className="card pad" aria-labelledby="scatter-title">
            <div className="sweep-chart-head">
              <h2 id="scatter-title">Parameter vs metric</h2>
              {params.length > 0 && (
                <label className="sweep-param-picker">
                  Plot parameter{' '}
                  <select value={param} onChange={(e) => setPicked(e.target.value)}>
                    {params.map((p) => (
                      <option key={p} value={p}>
                        {p}
                      </option>
                    ))}
                  </select>
                </label>
              )}
            </div>
            {param && <ScatterPlot trials={trials} param={param} metric={metric.name} best={best} />}
          </section>
          <section className="card pad" aria-labelledby="curves-title" data-testid="trial-curves">
            <h2 id="curves-title">{metric.name} of every trial</h2>
            <Suspense fallback={<p className="muted">Loading the charts…</p>}>
              <TrialCurves trials={trials} metric={metric.name} />
            </Suspense>
          </section>
        </div>
      )}
    </div>
  );
}
