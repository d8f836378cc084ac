import { Suspense, lazy, useEffect, useState, type ReactNode } from 'react';
import { isTerminal, priorityName, type Item, type LaunchSpec, type PriorityName, type RunDetail } from '../api.js';
import { POLL_MS, useNow, useSession } from '../hooks.js';
import { usePoll } from '../poll.js';
import { res } from '../resources.js';
import { Link, navigate } from '../router.js';
import { LaunchDialog } from '../LaunchDialog.js';
import { useLogStream } from '../logs.js';
import { LogViewer } from '../LogViewer.js';
import { ConfirmDialog } from '../ConfirmDialog.js';
import { RunOutputs } from '../RunOutputs.js';
import { ErrorBanner, StateBadge, Time } from '../ui.js';
import { formatDuration, joinArgv, redactDeep, redactEnv, shortId } from '../util.js';
import { LoadError, actionError } from '../loadError.js';

/** The metric charts and uPlot: a chunk of their own, loaded when a run page opens rather than on every first visit. */
const MetricCharts = lazy(() => import('../MetricCharts.js').then((m) => ({ default: m.MetricCharts })));

function Json({ value }: { value: unknown }) {
  const empty = value && typeof value === 'object' && Object.keys(value).length === 0;
  if (empty) return <span className="muted">none</span>;
  return <pre className="code-block">{JSON.stringify(value, null, 2)}</pre>;
}

export function SpecView({ spec }: { spec: LaunchSpec }) {
  const env = redactEnv(spec.env);
  return (
    <dl className="kv" aria-label="Spec">
      <dt>Source</dt>
      <dd className="mono" data-field="source">
        {spec.source.type === 'git' ? (
          <>
            git {spec.source.url}
            {spec.source.ref && <span className="muted"> @ {spec.source.ref}</span>}
          </>
        ) : spec.source.type === 'code' ? (
          <>code archive {spec.source.archive_id.slice(0, 12)}</>
        ) : spec.source.type === 'image' ? (
          <>image {spec.source.image}</>
        ) : (
          JSON.stringify(spec.source)
        )}
      </dd>
      {spec.job && (
        <>
          <dt>Job</dt>
          <dd className="mono" data-field="job">
            <Link href={`/jobs/${encodeURIComponent(spec.job.name)}/${spec.job.version}`}>
              {spec.job.name}:{spec.job.version}
            </Link>
          </dd>
        </>
      )}
      <dt>Entry point</dt>
      <dd className="mono" data-field="entry-point">
        {joinArgv(spec.entry_point)}
      </dd>
      <dt>Args</dt>
      <dd className="mono">{spec.args.length ? joinArgv(spec.args) : <span className="muted">none</span>}</dd>
      <dt>Run config</dt>
      <dd>
        <Json value={redactDeep(spec.run_config)} />
      </dd>
      <dt>Resource args</dt>
      <dd>
        <Json value={redactDeep(spec.resource_args)} />
      </dd>
      <dt>Environment</dt>
      <dd data-field="env">
        {Object.keys(env).length === 0 ? (
          <span className="muted">none</span>
        ) : (
          <ul className="env">
            {Object.entries(env).map(([k, v]) => (
              <li key={k} className="mono">
                {k}={v}
              </li>
            ))}
          </ul>
        )}
      </dd>
      {(spec.name ?? spec.project) && (
        <>
          <dt>Name / project</dt>
          <dd>
            {spec.name ?? '—'} / {spec.project ?? '—'}
          </dd>
        </>
      )}
      <dt>Submitted by</dt>
      <dd>{spec.author ?? '—'}</dd>
    </dl>
  );
}

function Timeline({ run, item }: { run: RunDetail; item: Item | undefined }) {
  const steps: Array<{ label: string; at: number | null; state: 'done' | 'now' | 'todo' }> = [];
  const ended = run.ended_at !== null;
  steps.push({ label: 'Queued', at: item?.created_at ?? null, state: 'done' });
  steps.push({ label: 'Claimed by agent', at: item?.claimed_at ?? run.created_at, state: 'done' });
  steps.push({
    label: 'Started',
    at: run.started_at,
    state: run.started_at !== null ? 'done' : ended ? 'todo' : 'now',
  });
  steps.push({
    label: ended ? `Ended: ${run.status}` : run.status === 'cancelling' ? 'Cancelling' : 'Ends',
    at: run.ended_at,
    state: ended ? 'done' : run.started_at !== null ? 'now' : 'todo',
  });
  return (
    <ol className="timeline" aria-label="Status timeline">
      {steps.map((s) => (
        <li key={s.label} className={`tl-${s.state}`}>
          <span className="tl-dot" aria-hidden="true" />
          <span className="tl-label">{s.label}</span>
          <span className="tl-time">
            <Time ms={s.at} />
          </span>
        </li>
      ))}
    </ol>
  );
}

/** A preempted run ended because its infrastructure went away; what matters next is where its item went. */
function Preempted({ run, item }: { run: RunDetail; item: Item | undefined }) {
  let next: ReactNode = null;
  if (item && item.run_id !== run.id && item.run_id)
    next = (
      <>
        The item was requeued; its next run is <Link href={`/runs/${item.run_id}`}>{item.run_id}</Link>.
      </>
    );
  else if (item?.state === 'pending')
    next = (
      <>
        The item was requeued for attempt {(item.preemptions ?? 0) + 1}
        {item.not_before ? (
          <>
            {' '}
            and may start at <Time ms={item.not_before} />
          </>
        ) : null}
        : <Link href={`/items/${item.id}`}>follow it</Link>.
      </>
    );
  else if (item) next = <>The item was not requeued: it ended {item.state}.</>;
  return (
    <div className="banner banner-preempted" data-testid="run-preempted">
      <strong>Preempted</strong>: the infrastructure it ran on was taken away. {next}
      {run.error_message && <pre className="error-message">{run.error_message}</pre>}
    </div>
  );
}

export function RunPage({ id }: { id: string }) {
  const { api } = useSession();
  // A finished run changes no more: its page stops asking (the log stream's end reloads it once).
  const run = usePoll(res.run(id), POLL_MS, { done: (d) => isTerminal(d.status) });
  // One stream for the page: the log view and the metric charts read it.
  const logs = useLogStream(id);
  const itemId = run.data?.item_id;
  // Read once, except after a preemption: the item then moves on (requeued, a new run) and the page says so.
  const item = usePoll(res.item(itemId ?? ''), run.data?.status === 'preempted' ? 2000 : 0, {
    enabled: Boolean(itemId),
  });
  const [cancelState, setCancelState] = useState<{ busy: boolean; error?: string }>({ busy: false });
  const [confirmingCancel, setConfirmingCancel] = useState(false);
  const [rerunning, setRerunning] = useState(false);
  // The queue, for the re-run dialog (its template variables and what it may run); read when the dialog opens.
  const queue = usePoll(res.queue(run.data?.entity ?? '', run.data?.queue ?? ''), 0, {
    enabled: rerunning && Boolean(run.data),
  });
  const now = useNow(1000);
  const r = run.data;
  const terminal = r ? isTerminal(r.status) : false;

  // The stream ends when the run does: show its final state now rather than at the next poll.
  const streamEnded = logs.phase === 'ended';
  const reloadRun = run.reload;
  // (A run the page already shows as ended needs no new look: nothing of it changes any more.)
  useEffect(() => {
    if (streamEnded && !terminal) reloadRun();
  }, [streamEnded, terminal, reloadRun]);

  useEffect(() => {
    if (r) document.title = `Run ${r.id.slice(0, 8)} · ${r.status} · Liftoff`;
    return () => {
      document.title = 'Liftoff';
    };
  }, [r]);

  if (!r) {
    return (
      <div className="page">{run.error ? <LoadError error={run.error} /> : <p className="muted">Loading…</p>}</div>
    );
  }

  const cancel = async () => {
    setCancelState({ busy: true });
    try {
      await api.cancelRun(r.id);
      setCancelState({ busy: false });
      run.reload();
    } catch (e) {
      setCancelState({ busy: false, error: actionError(e) });
    }
  };

  const duration = r.started_at !== null ? (r.ended_at ?? now) - r.started_at : null;
  return (
    <div className="page">
      <p className="crumbs">
        <Link href="/">Queues</Link> / <Link href={`/queues/${encodeURIComponent(r.queue)}`}>{r.queue}</Link> /{' '}
        <Link href={`/queues/${encodeURIComponent(r.queue)}/runs`}>runs</Link> /
      </p>
      <div className="page-head">
        <div>
          <h1>
            {r.spec.name ?? 'Run'} <span className="mono id">{r.id}</span>
          </h1>
          <p className="stats">
            <span data-testid="run-status">
              <StateBadge state={r.status} />
            </span>
            <span>
              Duration <strong>{formatDuration(duration)}</strong>
            </span>
            <span>
              Exit code <strong data-testid="exit-code">{r.exit_code ?? '—'}</strong>
            </span>
            {item.data && (
              <span>
                Priority <strong>{priorityName(item.data.priority)}</strong>
              </span>
            )}
            <span className="muted small mono" title="agent">
              agent {r.agent_id}
            </span>
          </p>
        </div>
        <div className="page-actions">
          <button
            type="button"
            className="btn"
            onClick={() => setRerunning(true)}
            disabled={!item.data}
            title="Open the launch form filled with this run's push, to change a value and launch it again"
          >
            Re-run…
          </button>
          {!terminal && (
            <button
              type="button"
              className="btn btn-danger"
              onClick={() => setConfirmingCancel(true)}
              disabled={cancelState.busy || r.status === 'cancelling'}
            >
              {r.status === 'cancelling' ? 'Stopping…' : 'Cancel run'}
            </button>
          )}
          {confirmingCancel && (
            <ConfirmDialog
              title={`Cancel run ${r.spec.name ? `“${r.spec.name}” (${shortId(r.id)})` : shortId(r.id)}?`}
              confirmLabel="Cancel run"
              keepLabel="Keep running"
              busy={cancelState.busy}
              onConfirm={() => void cancel().then(() => setConfirmingCancel(false))}
              onClose={() => setConfirmingCancel(false)}
            >
              <p>
                Its agent stops the job and the run ends as stopped. This cannot be undone (Re-run… launches it again).
              </p>
            </ConfirmDialog>
          )}
        </div>
      </div>
      {rerunning && queue.data && item.data && (
        <LaunchDialog
          queue={queue.data}
          from={{
            pushed: item.data.pushed ?? {
              // An item from before pushes were kept: its stored spec, under the queue's rules of today.
              spec: { ...item.data.spec, author: undefined },
              priority: priorityName(item.data.priority) as PriorityName,
            },
            label: `run ${r.id}`,
          }}
          onClose={() => setRerunning(false)}
          onLaunched={(launched) => {
            setRerunning(false);
            navigate(`/items/${launched.id}`);
          }}
        />
      )}
      {r.warning && (
        <div className="banner banner-warn run-warning" role="status" data-testid="run-warning">
          <strong>{terminal ? 'Last warning' : 'Warning'}</strong>
          <span className="warning-text">{r.warning}</span>
        </div>
      )}
      {cancelState.error && <ErrorBanner>{cancelState.error}</ErrorBanner>}
      {run.error && <ErrorBanner>{run.error.message}</ErrorBanner>}
      {r.status === 'preempted' ? (
        <Preempted run={r} item={item.data} />
      ) : (
        (r.error_stage ?? r.error_message) && (
          <div className="banner banner-error" data-testid="run-error">
            <strong>
              {r.status === 'lost' ? 'Lost: its agent went silent' : `Failed at stage ${r.error_stage ?? '?'}`}
            </strong>
            {r.error_message && <pre className="error-message">{r.error_message}</pre>}
          </div>
        )
      )}
      <div className="run-grid">
        <div className="run-main">
          <Suspense fallback={<p className="muted">Loading the charts…</p>}>
            <MetricCharts runId={r.id} streamed={logs.metrics} ended={logs.phase === 'ended'} />
          </Suspense>
          <LogViewer runId={r.id} logs={logs} />
        </div>
        <aside className="run-side">
          <RunOutputs runId={r.id} ended={terminal} link={r.outputs_link} />
          <section className="card pad" aria-labelledby="timeline-title">
            <h2 id="timeline-title">Timeline</h2>
            <Timeline run={r} item={item.data} />
          </section>
          <section className="card pad" aria-labelledby="spec-title">
            <h2 id="spec-title">Spec</h2>
            <SpecView spec={r.spec} />
          </section>
        </aside>
      </div>
    </div>
  );
}
