import { Suspense, lazy, useState, type ReactNode } from 'react';
import type { RunListRow } from '../api.js';
import { MAX_TABLE_COLUMNS, readRunsView, runsViewHref, type RunsView } from '../runsView.js';
import { useNow } from '../hooks.js';
import { usePoll } from '../poll.js';
import { res } from '../resources.js';
import { Link, navigate, useUrl } from '../router.js';
import { DataTable, Pager, type TableColumn } from '../table.js';
import { Empty, ErrorBanner, StateBadge, Time } from '../ui.js';
import { formatDuration, formatValue, shortId } from '../util.js';

/** The compare view draws charts: it and uPlot are a chunk loaded when a comparison is opened. */
const RunCompare = lazy(() => import('./RunCompare.js').then((m) => ({ default: m.RunCompare })));

const PAGE = 50;

/** A column's value as a cell: numbers as the charts print them, other JSON as text, a dash when missing. */
function cell(v: unknown) {
  if (v === null || v === undefined) return <span className="muted">—</span>;
  if (typeof v === 'number') return formatValue(v);
  return typeof v === 'string' ? v : JSON.stringify(v);
}

/** A column whose header sorts the table on the server by `column` (ascending first, then descending). */
function sortColumn(
  view: RunsView,
  column: string,
  label: string,
  cell: (r: RunListRow) => ReactNode,
  extra: Partial<TableColumn<RunListRow>> = {},
): TableColumn<RunListRow> {
  const dir = view.sort === column ? 'ascending' : view.sort === `-${column}` ? 'descending' : 'none';
  const next = dir === 'ascending' ? `-${column}` : column;
  return {
    id: column,
    cell,
    ...extra,
    label,
    th: { 'aria-sort': dir, 'data-sort-column': column },
    header: (
      <button type="button" className="linklike" onClick={() => navigate(runsViewHref({ ...view, sort: next }))}>
        {label}
        <span aria-hidden="true">{dir === 'ascending' ? ' ▲' : dir === 'descending' ? ' ▼' : ''}</span>
      </button>
    ),
  };
}

const dash = <span className="muted">—</span>;

/** The queue page's runs columns: the fixed ones, then the chosen config and metric columns. */
function queueRunColumns(view: RunsView, now: number): TableColumn<RunListRow>[] {
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
    sortColumn(view, 'name', 'Name', (r) => r.name ?? dash),
    {
      id: 'status',
      header: 'Status',
      cell: (r) => (
        <>
          <StateBadge state={r.status} />
          {r.warning && (
            <span className="run-warning-mark" title={r.warning} data-warning>
              <span aria-hidden="true"> ⚠</span>
              <span className="sr-only">warning: {r.warning}</span>
            </span>
          )}
        </>
      ),
    },
    sortColumn(view, 'created_at', 'Created', (r) => <Time ms={r.created_at} />),
    {
      id: 'wait',
      header: <abbr title="From the push to the start">Queue wait</abbr>,
      label: 'Queue wait',
      numeric: true,
      cell: (r) => (r.queue_wait_ms === null || r.queue_wait_ms === undefined ? dash : formatDuration(r.queue_wait_ms)),
    },
    sortColumn(
      view,
      'duration',
      'Duration',
      (r) => (r.started_at === null ? '—' : formatDuration((r.ended_at ?? now) - r.started_at)),
      { numeric: true },
    ),
    { id: 'exit', header: 'Exit code', numeric: true, cell: (r) => r.exit_code ?? dash },
    {
      id: 'stage',
      header: 'Error stage',
      cell: (r) =>
        r.error_stage ? (
          <span className="error-stage" title={r.error_message ?? undefined}>
            {r.error_stage}
          </span>
        ) : (
          dash
        ),
    },
    ...view.columns.map((c) =>
      sortColumn(view, c, c, (r) => cell(r.columns[c]), {
        numeric: c.startsWith('metric.'),
        className: 'mono',
        td: { 'data-column': c },
      }),
    ),
  ];
}

/** Checkboxes of the config and metric keys the queue's newest runs have, and of the columns already chosen. */
function ColumnPicker({ entity, queue, view }: { entity: string; queue: string; view: RunsView }) {
  const keys = usePoll(res.runKeys(entity, queue), 30_000);
  const offered = [
    ...new Set([
      ...(keys.data?.config ?? []).map((k) => `config.${k}`),
      ...(keys.data?.metrics ?? []).map((k) => `metric.${k}`),
      ...view.columns,
    ]),
  ];
  const toggle = (c: string) => {
    const columns = view.columns.includes(c) ? view.columns.filter((x) => x !== c) : [...view.columns, c];
    navigate(runsViewHref({ ...view, columns: columns.slice(0, MAX_TABLE_COLUMNS) }));
  };
  return (
    <details className="column-picker">
      <summary className="btn btn-small">Columns{view.columns.length ? ` (${view.columns.length})` : ''}</summary>
      {keys.error && <p className="field-error">{keys.error.message}</p>}
      {offered.length === 0 && <p className="muted small">No config or metric keys in this queue’s runs yet.</p>}
      <fieldset>
        <legend className="sr-only">Columns to show</legend>
        {offered.map((c) => (
          <label key={c} className="check">
            <input type="checkbox" checked={view.columns.includes(c)} onChange={() => toggle(c)} />{' '}
            <span className="mono small">{c}</span>
          </label>
        ))}
      </fieldset>
    </details>
  );
}

/**
 * The queue page's runs: a page of the runs list API (docs/runs.md) with the chosen config and metric columns, sorted
 * on the server by the header clicked, paged by cursor; columns, sort and the runs compared live in the URL.
 */
export function RunsTable({ entity, queue }: { entity: string; queue: string }) {
  const location = useUrl();
  const view = readRunsView(location);
  const now = useNow(1000);
  // Cursors of the pages before this one (the first page has none): "Previous" pops, "Next" pushes.
  const [cursors, setCursors] = useState<string[]>([]);
  const [pagesOf, setPagesOf] = useState(view.sort);
  if (pagesOf !== view.sort) {
    setPagesOf(view.sort);
    setCursors([]);
  }
  const cursor = cursors.at(-1);
  const columnsParam = view.columns.join(',');
  const page = usePoll(res.runList(entity, { queue, columns: columnsParam, sort: view.sort, cursor, limit: PAGE }));
  const [selected, setSelected] = useState<string[]>([]);
  const toggle = (id: string) => setSelected((s) => (s.includes(id) ? s.filter((x) => x !== id) : [...s, id]));
  const rows: RunListRow[] = page.data?.runs ?? [];

  return (
    <section>
      {view.compare.length >= 2 && (
        <Suspense fallback={<p className="muted">Loading the comparison…</p>}>
          <RunCompare ids={view.compare} onClose={() => navigate(runsViewHref({ ...view, compare: [] }))} />
        </Suspense>
      )}
      <div className="toolbar">
        <ColumnPicker entity={entity} queue={queue} view={view} />
        <button
          type="button"
          className="btn btn-small btn-primary"
          disabled={selected.length < 2}
          onClick={() => navigate(runsViewHref({ ...view, compare: selected }))}
        >
          Compare{selected.length ? ` (${selected.length})` : ''}
        </button>
      </div>
      {page.error && <ErrorBanner>{page.error.message}</ErrorBanner>}
      {!page.data && !page.error && <p className="muted">Loading…</p>}
      {page.data && rows.length === 0 && cursors.length === 0 && (
        <Empty title="No runs yet">
          <p>A run starts when an agent takes an item off this queue.</p>
        </Empty>
      )}
      {rows.length > 0 && (
        <DataTable
          label="Runs"
          columns={queueRunColumns(view, now)}
          rows={rows}
          rowKey={(r) => r.id}
          rowAttrs={(r) => ({ 'data-run': r.id })}
          selection={{
            selected: new Set(selected),
            selectable: () => true,
            label: (id) => `Select run ${id}`,
            toggle,
            toggleAll: (ids) =>
              setSelected((s) => (ids.every((id) => s.includes(id)) ? [] : [...new Set([...s, ...ids])])),
          }}
        />
      )}
      <Pager
        label="Runs pages"
        onPrev={cursors.length ? () => setCursors((c) => c.slice(0, -1)) : undefined}
        onNext={page.data?.next_cursor ? () => setCursors((c) => [...c, page.data?.next_cursor ?? '']) : undefined}
      />
    </section>
  );
}
