import { useEffect } from 'react';
import type { Agent } from '../api.js';
import { useNow, useSession } from '../hooks.js';
import { usePoll } from '../poll.js';
import { res } from '../resources.js';
import { Link } from '../router.js';
import { runsFiltersHref } from '../runsFilters.js';
import { DataTable, type TableColumn } from '../table.js';
import { AgentBadge, Command, Empty, ErrorBanner, Time } from '../ui.js';
import { formatAgo } from '../util.js';

function agentColumns(now: number): TableColumn<Agent>[] {
  return [
    {
      id: 'agent',
      header: 'Agent',
      cell: (a) => (
        <>
          <span className="mono" data-col="id">
            {a.id}
          </span>
          {a.name !== a.id && <div className="sub">{a.name}</div>}
        </>
      ),
    },
    {
      id: 'status',
      header: 'Status',
      cell: (a) => (
        <>
          <AgentBadge agent={a} />
          {a.status === 'KILLED' && a.status_reason && <div className="sub">{a.status_reason}</div>}
        </>
      ),
    },
    {
      id: 'queues',
      header: 'Queues',
      cell: (a) =>
        a.queues.map((q, i) => (
          <span key={q}>
            {i > 0 && ', '}
            <Link href={`/queues/${encodeURIComponent(q)}`}>{q}</Link>
          </span>
        )),
    },
    { id: 'host', header: 'Host', cell: (a) => a.hostname },
    { id: 'started', header: 'Started', cell: (a) => <Time ms={a.started_at} /> },
    { id: 'heartbeat', header: 'Last heartbeat', cell: (a) => formatAgo(a.last_heartbeat_at, now) },
    {
      id: 'jobs',
      header: 'Jobs',
      numeric: true,
      cell: (a) => `${a.status === 'KILLED' ? 0 : a.current_jobs} / ${a.max_jobs === -1 ? '∞' : a.max_jobs}`,
    },
    {
      id: 'runs',
      header: 'Runs',
      cell: (a) => (
        <Link href={runsFiltersHref({ agent: a.id })} aria-label={`Runs of agent ${a.id}`}>
          Runs
        </Link>
      ),
    },
  ];
}

/** Every agent of the entity across its queues, live ones first, each linked to its runs (the global runs page). */
export function AgentsPage() {
  const { entity } = useSession();
  const agents = usePoll(res.agents(entity), 5000);
  const now = useNow(1000);
  useEffect(() => {
    document.title = 'Agents · Liftoff';
  }, []);
  const list = [...(agents.data ?? [])].sort(
    (a, b) => Number(a.status === 'KILLED') - Number(b.status === 'KILLED') || b.started_at - a.started_at,
  );
  return (
    <div className="page">
      <div className="page-head">
        <h1>Agents</h1>
        <p className="muted">The launch agents of {entity}, on every queue.</p>
      </div>
      {agents.error && <ErrorBanner>{agents.error.message}</ErrorBanner>}
      {!agents.data && !agents.error && <p className="muted">Loading…</p>}
      {agents.data && list.length === 0 && (
        <Empty title="No agent has registered yet">
          <p>Start one on any machine that can reach this server:</p>
          <Command text="liftoff launch-agent -q QUEUE" />
        </Empty>
      )}
      {list.length > 0 && (
        <DataTable
          label="Agents"
          columns={agentColumns(now)}
          rows={list}
          rowKey={(a) => a.id}
          rowAttrs={(a) => ({ 'data-agent': a.id })}
        />
      )}
      {list.length >= 1000 && (
        <p className="hint table-foot">The first 1,000 agents by id; list them all with “liftoff agents list”.</p>
      )}
    </div>
  );
}
