import { useMemo, useState, type KeyboardEvent } from 'react';
import type uPlot from 'uplot';
import type { Agent, ItemSummary, Queue, Run } from '../api.js';
import { POLL_MS, useNow, useSession } from '../hooks.js';
import { isFinal, usePoll } from '../poll.js';
import { res } from '../resources.js';
import { Link, navigate } from '../router.js';
import { LaunchDialog } from '../LaunchDialog.js';
import { runsFiltersHref } from '../runsFilters.js';
import { DataTable } from '../table.js';
import { ItemsTab } from './QueueItems.js';
import { AgentBadge, Chart, ChartsFold, Command, Empty, RunnerMissing, Time } from '../ui.js';
import { formatAgo, formatTime } from '../util.js';
import { agentsOf } from './QueuesPage.js';
import { RunsTable } from './RunsTable.js';
import { LoadError, actionError } from '../loadError.js';

const TABS = [
  { id: 'items', label: 'Items' },
  { id: 'runs', label: 'Runs' },
  { id: 'agents', label: 'Agents' },
  { id: 'config', label: 'Config' },
] as const;
type TabId = (typeof TABS)[number]['id'];

/** Charts show at least this much history. */
const MIN_WINDOW_MS = 10 * 60_000;

/** Pending and running counts over time, rebuilt from the items' created/claimed/ended times. */
export function depthSeries(items: readonly ItemSummary[], now: number): uPlot.AlignedData {
  const events: Array<[number, number, number]> = [];
  for (const it of items) {
    events.push([it.created_at, +1, 0]);
    if (it.claimed_at !== null) {
      events.push([it.claimed_at, -1, +1]);
      if (it.ended_at !== null) events.push([it.ended_at, 0, -1]);
    } else if (it.ended_at !== null) {
      events.push([it.ended_at, -1, 0]);
    }
  }
  events.sort((a, b) => a[0] - b[0]);
  const xs: number[] = [];
  const pending: number[] = [];
  const running: number[] = [];
  // Start from an empty queue before the first item, and show at least the last few minutes (uPlot needs 2 points).
  const start = Math.min((events[0]?.[0] ?? now) - 1000, now - MIN_WINDOW_MS) / 1000;
  xs.push(start);
  pending.push(0);
  running.push(0);
  let p = 0;
  let r = 0;
  for (const [t, dp, dr] of events) {
    p += dp;
    r += dr;
    const x = t / 1000;
    if (xs.length && xs[xs.length - 1] === x) {
      pending[pending.length - 1] = p;
      running[running.length - 1] = r;
    } else {
      xs.push(x);
      pending.push(p);
      running.push(r);
    }
  }
  xs.push(now / 1000);
  pending.push(p);
  running.push(r);
  return [xs, pending, running];
}

/** One bar per run (x = start time), height = duration in seconds (so far, for a running one). */
export function durationSeries(runs: readonly Run[], now: number): uPlot.AlignedData {
  const rows = runs
    .filter((r) => r.started_at !== null)
    .map((r) => [(r.started_at as number) / 1000, ((r.ended_at ?? now) - (r.started_at as number)) / 1000] as const)
    .sort((a, b) => a[0] - b[0]);
  // Empty ends frame the window: at least the last few minutes, and now.
  const start = Math.min((rows[0]?.[0] ?? now / 1000) - 30, (now - MIN_WINDOW_MS) / 1000);
  return [
    [start, ...rows.map((r) => r[0]), now / 1000 + 30],
    [null, ...rows.map((r) => r[1]), null],
  ];
}

/** Stop an agent remotely (only offered when the server reports `stop_requested`, i.e. supports it). */
function StopAgent({ agent, onDone }: { agent: Agent; onDone: () => void }) {
  const { api } = useSession();
  const [confirming, setConfirming] = useState(false);
  const [error, setError] = useState<string | undefined>(undefined);
  if (agent.status === 'KILLED') return null;
  if (agent.stop_requested) {
    return (
      <span className="muted small" data-stop={agent.stop_requested}>
        {agent.stop_requested === 'finish' ? 'Stopping after its jobs…' : 'Stopping…'}
      </span>
    );
  }
  const stop = async (mode: 'finish' | 'stop-runs') => {
    try {
      await api.stopAgent(agent.id, mode);
      setConfirming(false);
      onDone();
    } catch (e) {
      setError(actionError(e));
    }
  };
  if (!confirming) {
    return (
      <button
        type="button"
        className="btn btn-small btn-danger-ghost"
        onClick={() => setConfirming(true)}
        aria-label={`Stop agent ${agent.id}`}
      >
        Stop
      </button>
    );
  }
  return (
    <span className="confirm">
      {error && (
        <span className="field-error" role="alert">
          {error}
        </span>
      )}
      <button type="button" className="btn btn-small" onClick={() => void stop('finish')} autoFocus>
        After its jobs
      </button>
      <button type="button" className="btn btn-small btn-danger" onClick={() => void stop('stop-runs')}>
        Now
      </button>
      <button type="button" className="btn btn-small btn-ghost" onClick={() => setConfirming(false)}>
        Keep
      </button>
    </span>
  );
}

function AgentsTab({ queue, agents, reload }: { queue: Queue; agents: Agent[] | undefined; reload: () => void }) {
  const now = useNow(1000);
  if (!agents) return <p className="muted">Loading…</p>;
  const list = agentsOf(agents, queue.name).sort(
    (a, b) => Number(a.status === 'KILLED') - Number(b.status === 'KILLED') || b.started_at - a.started_at,
  );
  const live = list.some((a) => a.status !== 'KILLED');
  const canStop = list.some((a) => 'stop_requested' in a);
  return (
    <section aria-label="Agents">
      {!live && (
        <Empty title={list.length ? 'No agent is polling this queue now' : 'No agent has polled this queue yet'}>
          <p>Items wait until an agent serves the queue. Start one on any machine that can reach this server:</p>
          <Command text={`liftoff launch-agent -q ${queue.name}`} />
        </Empty>
      )}
      {list.length > 0 && (
        <DataTable
          label="Agents"
          rows={list}
          rowKey={(a) => a.id}
          rowAttrs={(a) => ({ 'data-agent': a.id })}
          columns={[
            {
              id: 'id',
              header: 'Agent ID',
              cell: (a) => (
                <>
                  <span className="mono" data-col="id">
                    {a.id}
                  </span>
                  {a.name !== a.id && <div className="sub">{a.name}</div>}
                  <div className="sub">
                    <Link href={runsFiltersHref({ agent: a.id, queue: queue.name })}>Runs on this queue</Link>
                  </div>
                </>
              ),
            },
            {
              id: 'status',
              header: 'Status',
              td: { 'data-col': 'status' },
              cell: (a) => (
                <>
                  <AgentBadge agent={a} />
                  {a.status === 'KILLED' && a.status_reason && <div className="sub">{a.status_reason}</div>}
                </>
              ),
            },
            {
              id: 'started',
              header: 'Start date',
              td: { 'data-col': 'started' },
              cell: (a) => <Time ms={a.started_at} />,
            },
            { id: 'host', header: 'Host', td: { 'data-col': 'host' }, cell: (a) => a.hostname },
            {
              id: 'heartbeat',
              header: 'Last heartbeat',
              cell: (a) => <span title={formatTime(a.last_heartbeat_at)}>{formatAgo(a.last_heartbeat_at, now)}</span>,
            },
            { id: 'version', header: 'Version', cell: (a) => a.version },
            {
              id: 'max',
              header: 'Max jobs',
              numeric: true,
              cell: (a) => (a.max_jobs === -1 ? 'unlimited' : a.max_jobs),
            },
            {
              id: 'current',
              header: 'Current jobs',
              numeric: true,
              cell: (a) => (a.status === 'KILLED' ? 0 : a.current_jobs),
            },
            ...(canStop
              ? [
                  {
                    id: 'actions',
                    header: <span className="sr-only">Actions</span>,
                    className: 'actions',
                    cell: (a: Agent) => <StopAgent agent={a} onDone={reload} />,
                  },
                ]
              : []),
          ]}
        />
      )}
    </section>
  );
}

/** The switches agents apply while running this queue's items; absent on servers without them. */
function RunSwitches({ queue }: { queue: Queue }) {
  if (queue.preemption_retries === undefined) return null;
  const backoff = queue.preemption_backoff_seconds ?? 0;
  return (
    <>
      <dt>Start timeout</dt>
      <dd data-field="start-timeout">
        {queue.start_timeout_seconds
          ? `${queue.start_timeout_seconds} s: a run still starting after that is failed`
          : 'none'}
      </dd>
      <dt>Preemption</dt>
      <dd data-field="preemption">
        {queue.preemption_retries === 0
          ? 'a preempted run fails its item'
          : `requeued up to ${queue.preemption_retries} ${queue.preemption_retries === 1 ? 'time' : 'times'}, ${backoff ? `after ${backoff} s, doubling per retry` : 'at once'}`}
      </dd>
      {queue.lost_retries !== undefined && (
        <>
          <dt>Lost runs</dt>
          <dd data-field="lost-retries">
            {queue.lost_retries === 0
              ? 'a lost run (its agent went silent) ends its item lost'
              : `requeued up to ${queue.lost_retries} ${queue.lost_retries === 1 ? 'time' : 'times'} when its agent went silent`}
          </dd>
        </>
      )}
      <dt>Allowed</dt>
      <dd data-field="allow">
        {queue.allow?.length ? (
          queue.allow.map((a) => (
            <span key={a} className="chip">
              {a}
            </span>
          ))
        ) : (
          <span className="muted">no guardrail exceptions</span>
        )}
      </dd>
    </>
  );
}

function ConfigTab({ queue }: { queue: Queue }) {
  const sections = Object.entries(queue.resource_args);
  const vars = Object.entries(queue.template_variables ?? {});
  return (
    <section className="card pad" aria-label="Config">
      <dl className="kv">
        <dt>Resource type</dt>
        <dd>
          <span className="chip">{queue.resource}</span> <RunnerMissing resource={queue.resource} />
        </dd>
        <dt>Created</dt>
        <dd>
          <Time ms={queue.created_at} />
        </dd>
        {queue.prioritization_mode !== undefined && (
          <>
            <dt>Prioritization</dt>
            <dd data-field="prioritization">
              {queue.prioritization_mode === 'V0'
                ? `on: higher priorities first${queue.aging_seconds ? `, aging one level per ${queue.aging_seconds} s` : ''}`
                : 'off: items run in the order they were pushed'}
            </dd>
          </>
        )}
        {queue.max_concurrency !== undefined && (
          <>
            <dt>Max concurrency</dt>
            <dd>{queue.max_concurrency ?? 'unlimited'}</dd>
          </>
        )}
        <RunSwitches queue={queue} />
        <dt>Default resource args</dt>
        <dd>
          {sections.length === 0 ? (
            <span className="muted">None. Jobs run with their own resource args only.</span>
          ) : (
            <pre className="code-block">{JSON.stringify(queue.resource_args, null, 2)}</pre>
          )}
        </dd>
        {vars.length > 0 && (
          <>
            <dt>Template variables</dt>
            <dd>
              <table className="table mini" aria-label="Template variables" tabIndex={0}>
                <thead>
                  <tr>
                    <th scope="col">Variable</th>
                    <th scope="col">Type</th>
                    <th scope="col">Allowed</th>
                    <th scope="col">Default</th>
                    <th scope="col">Description</th>
                  </tr>
                </thead>
                <tbody>
                  {vars.map(([k, { schema }]) => (
                    <tr key={k}>
                      <td className="mono">{`{{${k}}}`}</td>
                      <td>{schema.type}</td>
                      <td>
                        {schema.enum
                          ? schema.enum.join(', ')
                          : [
                              schema.minimum !== undefined ? `≥ ${schema.minimum}` : '',
                              schema.maximum !== undefined ? `≤ ${schema.maximum}` : '',
                            ]
                              .filter(Boolean)
                              .join(', ') || 'any'}
                      </td>
                      <td>{schema.default ?? <span className="muted">required</span>}</td>
                      <td className="wrap">{schema.description ?? ''}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </dd>
          </>
        )}
      </dl>
      <p className="hint">
        Every job pushed to this queue gets these args, key by key under its own <code>resource_args</code> (the job’s
        values win).
      </p>
    </section>
  );
}

export function QueuePage({ name, tab }: { name: string; tab: string }) {
  const { entity } = useSession();
  const queue = usePoll(res.queue(entity, name));
  // A queue that is not there (or not for this key) stops the page's other polls too: nothing of it can change.
  const queueThere = !(queue.error && isFinal(queue.error));
  const agents = usePoll(res.agents(entity), POLL_MS, { enabled: queueThere });
  const runs = usePoll(res.queueRuns(entity, name, 200), POLL_MS, { enabled: queueThere });
  const chartItems = usePoll(res.items(entity, name, undefined, 1000), 4000, {
    enabled: queueThere,
  });
  const [launching, setLaunching] = useState(false);
  const now = useNow(4000);
  const active: TabId = (TABS.find((t) => t.id === tab)?.id ?? 'items') as TabId;

  const depth = useMemo(() => depthSeries(chartItems.data ?? [], now), [chartItems.data, now]);
  const durations = useMemo(() => durationSeries(runs.data ?? [], now), [runs.data, now]);

  const base = `/queues/${encodeURIComponent(name)}`;
  const onTabKey = (e: KeyboardEvent<HTMLAnchorElement>, i: number) => {
    if (e.key !== 'ArrowRight' && e.key !== 'ArrowLeft') return;
    e.preventDefault();
    const next = TABS[(i + (e.key === 'ArrowRight' ? 1 : TABS.length - 1)) % TABS.length];
    if (next) {
      navigate(`${base}/${next.id}`);
      document.getElementById(`tab-${next.id}`)?.focus();
    }
  };

  if (queue.error && !queue.data) {
    return (
      <div className="page">
        <p className="crumbs">
          <Link href="/">Queues</Link> /
        </p>
        <LoadError error={queue.error} />
      </div>
    );
  }
  const q = queue.data;
  const live = agentsOf(agents.data, name).filter((a) => a.status !== 'KILLED');

  return (
    <div className="page">
      <p className="crumbs">
        <Link href="/">Queues</Link> / <span aria-current="page">{name}</span>
      </p>
      <div className="page-head">
        <div>
          <h1>{name}</h1>
          {q && (
            <p className="stats">
              <span className="chip">{q.resource}</span> <RunnerMissing resource={q.resource} />
              <span>
                <strong data-stat="pending">{q.pending}</strong> pending
              </span>
              <span>
                <strong data-stat="running">{q.running}</strong> running
              </span>
              <span>
                <strong>{live.length}</strong> {live.length === 1 ? 'agent' : 'agents'} polling
              </span>
            </p>
          )}
        </div>
        <button type="button" className="btn btn-primary" onClick={() => setLaunching(true)} disabled={!q}>
          Launch job
        </button>
      </div>

      {q && agents.data && live.length === 0 && (
        <div className="banner banner-warn" role="status">
          <span>
            No agent is polling “{name}”: its items wait until one does. Start one on a machine that can reach this
            server:
          </span>
          <Command text={`liftoff launch-agent -q ${name}`} />
        </div>
      )}
      <ChartsFold label="charts">
        <Chart
          title="Queue depth"
          yLabel="items"
          data={depth}
          empty={chartItems.data && chartItems.data.length === 0 ? 'No items yet' : undefined}
          series={[
            { label: 'Pending', color: '#f59e0b', kind: 'step' },
            { label: 'Running', color: '#4f46e5', kind: 'step' },
          ]}
        />
        <Chart
          title="Run durations"
          yLabel="seconds"
          data={durations}
          empty={runs.data && durations[0].length <= 2 ? 'No runs yet' : undefined}
          series={[{ label: 'Duration (s)', color: '#0ea5e9', kind: 'bars' }]}
        />
      </ChartsFold>

      <div className="tabs" role="tablist" aria-label="Queue sections">
        {TABS.map((t, i) => (
          <Link
            key={t.id}
            id={`tab-${t.id}`}
            href={`${base}/${t.id}`}
            role="tab"
            aria-selected={active === t.id}
            aria-controls="tabpanel"
            tabIndex={active === t.id ? 0 : -1}
            className={`tab${active === t.id ? ' tab-active' : ''}`}
            onKeyDown={(e) => onTabKey(e, i)}
          >
            {t.label}
            {t.id === 'agents' && agents.data && <span className="count">{live.length}</span>}
          </Link>
        ))}
      </div>
      <div id="tabpanel" role="tabpanel" aria-labelledby={`tab-${active}`} className="tabpanel">
        {q && active === 'items' && <ItemsTab queue={q} onLaunch={() => setLaunching(true)} />}
        {active === 'runs' && <RunsTable entity={entity} queue={name} />}
        {q && active === 'agents' && <AgentsTab queue={q} agents={agents.data} reload={agents.reload} />}
        {q && active === 'config' && <ConfigTab queue={q} />}
      </div>
      {q && launching && (
        <LaunchDialog
          queue={q}
          onClose={() => setLaunching(false)}
          onLaunched={(item) => {
            setLaunching(false);
            navigate(`/items/${item.id}`);
          }}
        />
      )}
    </div>
  );
}
