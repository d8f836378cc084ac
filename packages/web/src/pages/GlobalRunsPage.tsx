import { useEffect, useState, type FormEvent } from 'react';
import { ITEM_STATES, isTerminal, type ItemState, type RunListRow } from '../api.js';
import { BulkCancel, CancelButton } from '../CancelRuns.js';
import { useNow, useSession } from '../hooks.js';
import { usePoll } from '../poll.js';
import { res } from '../resources.js';
import { Link, navigate, useUrl } from '../router.js';
import { apiFilters, readRunsFilters, runsFiltersHref, type RunsFilterView } from '../runsFilters.js';
import { DataTable, Pager, type TableColumn } from '../table.js';
import { Empty, ErrorBanner, StateBadge, Time } from '../ui.js';
import { formatDuration, localZone, shortId } from '../util.js';

const PAGE = 50;
const dash = <span className="muted">—</span>;

/** The columns of a runs list: shared by this page and nothing else yet; `now` ages the running ones. */
function runColumns(now: number, reload: () => void): TableColumn<RunListRow>[] {
  return [
    {
      id: 'run',
      header: 'Run',
      cell: (r) => (
        <Link href={`/runs/${r.id}`} className="mono" title={r.id}>
          {shortId(r.id)}
        </Link>
      ),
    },
    { id: 'name', header: 'Name', cell: (r) => r.name ?? dash },
    {
      id: 'queue',
      header: 'Queue',
      cell: (r) => <Link href={`/queues/${encodeURIComponent(r.queue)}/runs`}>{r.queue}</Link>,
    },
    { id: 'state', header: 'State', cell: (r) => <StateBadge state={r.status} /> },
    { id: 'created', header: 'Created', cell: (r) => <Time ms={r.created_at} /> },
    {
      id: 'wait',
      header: <abbr title="From the push to the start">Queue wait</abbr>,
      label: 'Queue wait',
      numeric: true,
      cell: (r) => (r.queue_wait_ms === null || r.queue_wait_ms === undefined ? dash : formatDuration(r.queue_wait_ms)),
    },
    {
      id: 'duration',
      header: 'Duration',
      numeric: true,
      cell: (r) => (r.started_at === null ? dash : formatDuration((r.ended_at ?? now) - r.started_at)),
    },
    { id: 'exit', header: 'Exit code', numeric: true, cell: (r) => r.exit_code ?? dash },
    {
      id: 'agent',
      header: 'Agent',
      cell: (r) => (
        <Link href={runsFiltersHref({ agent: r.agent_id })} className="mono" title={`Runs of agent ${r.agent_id}`}>
          {r.agent_id}
        </Link>
      ),
    },
    {
      id: 'actions',
      header: <span className="sr-only">Actions</span>,
      className: 'actions',
      cell: (r) =>
        isTerminal(r.status) || r.status === 'cancelling' ? null : (
          <CancelButton kind="run" id={r.id} name={r.name} onDone={reload} />
        ),
    },
  ];
}

/** The filter form: selects apply at once, text and times on submit (one history entry per search, not per key). */
function Filters({ view, queues }: { view: RunsFilterView; queues: string[] }) {
  const [q, setQ] = useState(view.q);
  const [agent, setAgent] = useState(view.agent);
  const [since, setSince] = useState(view.since);
  const [until, setUntil] = useState(view.until);
  // Back/forward changes the URL under the form: show what the URL says.
  useEffect(() => {
    setQ(view.q);
    setAgent(view.agent);
    setSince(view.since);
    setUntil(view.until);
  }, [view.q, view.agent, view.since, view.until]);
  const go = (change: Partial<RunsFilterView>) => navigate(runsFiltersHref({ ...view, ...change, cursor: '' }));
  const submit = (e: FormEvent) => {
    e.preventDefault();
    go({ q: q.trim(), agent: agent.trim(), since, until });
  };
  const state = view.state.length === 1 ? (view.state[0] ?? '') : view.state.length ? view.state.join(',') : '';
  return (
    <form className="filters" onSubmit={submit} role="search" aria-label="Filter runs">
      <label>
        State
        <select value={state} onChange={(e) => go({ state: e.target.value ? e.target.value.split(',') : [] })}>
          <option value="">Any</option>
          {view.state.length > 1 && <option value={state}>{state}</option>}
          {ITEM_STATES.filter((s) => s !== 'pending' && s !== 'claimed').map((s) => (
            <option key={s} value={s}>
              {s}
            </option>
          ))}
        </select>
      </label>
      <label>
        Queue
        <select value={view.queue} onChange={(e) => go({ queue: e.target.value })}>
          <option value="">Any</option>
          {[...new Set([...queues, ...(view.queue ? [view.queue] : [])])].map((n) => (
            <option key={n} value={n}>
              {n}
            </option>
          ))}
        </select>
      </label>
      <label>
        Agent
        <input value={agent} onChange={(e) => setAgent(e.target.value)} placeholder="agent id" size={12} />
      </label>
      <label>
        Search
        <input
          type="search"
          value={q}
          onChange={(e) => setQ(e.target.value)}
          placeholder="run name or id prefix"
          size={18}
        />
      </label>
      <label>
        Created since
        <input
          type="datetime-local"
          title={`Local time, ${localZone()}`}
          value={since}
          onChange={(e) => setSince(e.target.value)}
        />
      </label>
      <label>
        until
        <input
          type="datetime-local"
          title={`Local time, ${localZone()}`}
          value={until}
          onChange={(e) => setUntil(e.target.value)}
        />
      </label>
      <button type="submit" className="btn btn-small btn-primary">
        Apply
      </button>
      <button type="button" className="btn btn-small" onClick={() => navigate('/runs')}>
        Clear
      </button>
    </form>
  );
}

/**
 * Runs across every queue of the entity (docs/runs.md "Global runs page"): filters and the page's cursor live in
 * the URL; Previous goes back through the cursors this tab followed (after a reload, to the first page).
 */
export function GlobalRunsPage() {
  const { entity } = useSession();
  const location = useUrl();
  const view = readRunsFilters(location);
  const now = useNow(1000);
  const filters = apiFilters(view);
  const key = JSON.stringify(filters);
  // The cursors of the pages before this one, for the filters they were followed under.
  const [trail, setTrail] = useState<{ key: string; cursors: string[] }>({ key, cursors: [] });
  const cursors = trail.key === key ? trail.cursors : [];
  const page = usePoll(res.runList(entity, { ...filters, cursor: view.cursor || undefined, limit: PAGE }));
  const queues = usePoll(res.queues(entity), 30_000);
  const [selected, setSelected] = useState<Set<string>>(new Set());
  const rows = page.data?.runs ?? [];
  const cancellable = (id: string) => {
    const r = rows.find((x) => x.id === id);
    return Boolean(r && !isTerminal(r.status) && r.status !== 'cancelling');
  };
  useEffect(() => {
    document.title = 'Runs · Liftoff';
  }, []);

  const toPage = (cursor: string, trailNext: string[]) => {
    setTrail({ key, cursors: trailNext });
    navigate(runsFiltersHref({ ...view, cursor }));
  };
  const next = page.data?.next_cursor;
  const filtered = Boolean(
    view.state.length || view.queue || view.agent || view.q || view.since || view.until || view.cursor,
  );

  return (
    <div className="page">
      <div className="page-head">
        <h1>Runs</h1>
        <p className="muted">Every queue of {entity}, newest first.</p>
      </div>
      <Filters view={view} queues={(queues.data ?? []).map((q) => q.name)} />
      <div className="toolbar">
        <BulkCancel
          ids={[...selected].filter(cancellable)}
          onDone={() => {
            setSelected(new Set());
            page.reload();
          }}
        />
      </div>
      {page.error && <ErrorBanner>{page.error.message}</ErrorBanner>}
      {!page.data && !page.error && <p className="muted">Loading…</p>}
      {page.data && rows.length === 0 && (
        <Empty title={filtered ? 'No runs match these filters' : 'No runs yet'}>
          {filtered && <Link href="/runs">Show every run</Link>}
        </Empty>
      )}
      {rows.length > 0 && (
        <DataTable
          label="Runs"
          columns={runColumns(now, page.reload)}
          rows={rows}
          rowKey={(r) => r.id}
          rowAttrs={(r) => ({ 'data-run': r.id, 'data-state': r.status as ItemState })}
          selection={{
            selected,
            selectable: cancellable,
            label: (id) => `Select run ${id}`,
            toggle: (id) =>
              setSelected((s) => {
                const n = new Set(s);
                if (!n.delete(id)) n.add(id);
                return n;
              }),
            toggleAll: (ids) =>
              setSelected((s) => (ids.every((id) => s.has(id)) ? new Set() : new Set([...s, ...ids]))),
          }}
        />
      )}
      <Pager
        label="Runs pages"
        ends="first"
        onFirst={view.cursor ? () => toPage('', []) : undefined}
        onPrev={view.cursor ? () => toPage(cursors.at(-1) ?? '', cursors.slice(0, -1)) : undefined}
        onNext={next ? () => toPage(next, [...cursors, view.cursor]) : undefined}
      />
    </div>
  );
}
