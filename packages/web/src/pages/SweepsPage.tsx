import { useEffect } from 'react';
import type { Sweep } from '../api.js';
import { useSession } from '../hooks.js';
import { usePoll } from '../poll.js';
import { res } from '../resources.js';
import { Link } from '../router.js';
import { formatValue } from '../util.js';
import { SweepBadge } from '../sweeps/SweepBadge.js';
import { DataTable, type TableColumn } from '../table.js';
import { Command, Empty, ErrorBanner, Time } from '../ui.js';

const sweepHref = (id: string) => `/sweeps/${encodeURIComponent(id)}`;

const COLUMNS: TableColumn<Sweep>[] = [
  {
    id: 'name',
    header: 'Sweep',
    cell: (s) => (
      <>
        <Link href={sweepHref(s.id)} data-col="name">
          {s.name}
        </Link>
        <div className="sub mono">{s.id}</div>
      </>
    ),
  },
  {
    id: 'state',
    header: 'State',
    cell: (s) => (
      <>
        <SweepBadge state={s.state} />
        {s.reason && <div className="sub">{s.reason}</div>}
      </>
    ),
  },
  { id: 'method', header: 'Method', cell: (s) => s.method },
  {
    id: 'queue',
    header: 'Queue',
    cell: (s) => <Link href={`/queues/${encodeURIComponent(s.queue)}`}>{s.queue}</Link>,
  },
  { id: 'trials', header: 'Trials', numeric: true, cell: (s) => s.trial_count, td: { 'data-col': 'trials' } },
  {
    id: 'best',
    header: 'Best',
    numeric: true,
    cell: (s) =>
      s.best?.metric != null ? (
        <span className="mono" title={`trial ${s.best.number}`}>
          {formatValue(s.best.metric)}
        </span>
      ) : (
        <span className="muted">—</span>
      ),
  },
  { id: 'created', header: 'Created', cell: (s) => <Time ms={s.created_at} /> },
];

/** The entity's sweeps, newest first (as the API lists them), each linked to its page. */
export function SweepsPage() {
  const { entity } = useSession();
  const sweeps = usePoll(res.sweeps(entity), 5000);
  useEffect(() => {
    document.title = 'Sweeps · Liftoff';
  }, []);
  const list = sweeps.data ?? [];
  return (
    <div className="page">
      <div className="page-head">
        <h1>Sweeps</h1>
        <p className="muted">The hyperparameter searches of {entity}; the server pushes their trials to a queue.</p>
      </div>
      {sweeps.error && <ErrorBanner>{sweeps.error.message}</ErrorBanner>}
      {!sweeps.data && !sweeps.error && <p className="muted">Loading…</p>}
      {sweeps.data && list.length === 0 && (
        <Empty title="No sweep yet">
          <p>Create one from a W&amp;B sweep config:</p>
          <Command text="liftoff sweep create -q QUEUE --code . sweep.yaml" />
        </Empty>
      )}
      {list.length > 0 && (
        <DataTable
          label="Sweeps"
          columns={COLUMNS}
          rows={list}
          rowKey={(s) => s.id}
          rowAttrs={(s) => ({ 'data-sweep': s.id })}
        />
      )}
    </div>
  );
}
