import { useState } from 'react';
import { ITEM_STATES, isTerminal, priorityName, type ItemState, type ItemSummary, type Queue } from '../api.js';
import { CancelButton } from '../CancelRuns.js';
import { useNow, useSession } from '../hooks.js';
import { usePoll } from '../poll.js';
import { res } from '../resources.js';
import { Link } from '../router.js';
import { DataTable, Pager, type TableColumn } from '../table.js';
import { Command, Empty, ErrorBanner, StateBadge } from '../ui.js';
import { formatAgo, formatTime, shortId } from '../util.js';

const ITEMS_PAGE = 100;

function itemColumns(now: number, reload: () => void): TableColumn<ItemSummary>[] {
  return [
    {
      id: 'item',
      header: 'Item',
      cell: (it) => (
        <>
          <Link href={`/items/${it.id}`} className="mono" title={it.id}>
            {shortId(it.id)}
          </Link>
          {it.name && <div className="sub">{it.name}</div>}
        </>
      ),
    },
    { id: 'state', header: 'State', cell: (it) => <StateBadge state={it.state} /> },
    {
      id: 'priority',
      header: 'Priority',
      cell: (it) => <span className={`prio prio-${priorityName(it.priority)}`}>{priorityName(it.priority)}</span>,
    },
    {
      id: 'position',
      header: 'Position',
      numeric: true,
      cell: (it) => <span data-col="position">{it.position ?? <span className="muted">—</span>}</span>,
    },
    {
      id: 'reason',
      header: 'Why pending',
      className: 'reason',
      cell: (it) =>
        it.pending_reason ? (
          <span className={`reason-${it.pending_reason.code}`} data-col="reason" data-reason={it.pending_reason.code}>
            {it.pending_reason.message}
          </span>
        ) : (
          <span className="muted" data-col="reason">
            —
          </span>
        ),
    },
    { id: 'author', header: 'Submitted by', cell: (it) => it.author ?? <span className="muted">—</span> },
    {
      id: 'created',
      header: 'Created',
      cell: (it) => <span title={formatTime(it.created_at)}>{formatAgo(it.created_at, now)}</span>,
    },
    {
      id: 'run',
      header: 'Run',
      cell: (it) =>
        it.run_id ? (
          <Link href={`/runs/${it.run_id}`} className="mono" title={it.run_id}>
            {shortId(it.run_id)}
          </Link>
        ) : (
          <span className="muted">—</span>
        ),
    },
    {
      id: 'actions',
      header: <span className="sr-only">Actions</span>,
      className: 'actions',
      cell: (it) =>
        !isTerminal(it.state) && it.state !== 'cancelling' ? (
          <CancelButton kind="item" id={it.id} name={it.name} onDone={reload} />
        ) : null,
    },
  ];
}

/**
 * A queue's items, a page at a time: newest first, or with the Pending filter the queue's order (what runs next
 * first), from either end, so the head and the tail of a deep queue are each one click away.
 */
export function ItemsTab({ queue, onLaunch }: { queue: Queue; onLaunch: () => void }) {
  const { entity } = useSession();
  const [filter, setFilter] = useState<ItemState | ''>('');
  const [at, setAt] = useState<{ cursor?: string; from: 'start' | 'end' }>({ from: 'start' });
  const order = filter === 'pending' ? 'queue' : 'newest';
  const items = usePoll(
    res.itemPage(entity, queue.name, {
      state: filter || undefined,
      order,
      from: at.from,
      cursor: at.cursor,
      limit: ITEMS_PAGE,
    }),
  );
  const now = useNow(5000);
  const rows = items.data?.items;
  const next = items.data?.next_cursor;
  const prev = items.data?.prev_cursor;
  const moved = at.cursor !== undefined || at.from === 'end';

  return (
    <section aria-label="Items">
      <div className="toolbar">
        <label htmlFor="state-filter">State</label>
        <select
          id="state-filter"
          value={filter}
          onChange={(e) => {
            setFilter(e.target.value as ItemState | '');
            setAt({ from: 'start' });
          }}
        >
          <option value="">All states</option>
          {ITEM_STATES.filter((s) => s !== 'preempted').map((s) => (
            <option key={s} value={s}>
              {s}
            </option>
          ))}
        </select>
      </div>
      {items.error && <ErrorBanner>{items.error.message}</ErrorBanner>}
      {rows && rows.length === 0 && !moved && (
        <Empty title={filter ? `No ${filter} items` : 'No items on this queue yet'}>
          {!filter && (
            <>
              <p>Launch a job with the button above, or from a terminal:</p>
              <Command text={`liftoff launch -q ${queue.name} --code DIR -E "python3 train.py"`} />
            </>
          )}
        </Empty>
      )}
      {rows && rows.length > 0 && (
        <DataTable
          label="Items"
          columns={itemColumns(now, items.reload)}
          rows={rows}
          rowKey={(it) => it.id}
          rowAttrs={(it) => ({ 'data-item': it.id })}
        />
      )}
      {!items.data && !items.error && <p className="muted">Loading…</p>}
      {rows && (rows.length > 0 || moved) && (
        <Pager
          label="Items pages"
          ends="both"
          note={order === 'queue' ? 'In queue order: what runs next first.' : 'Newest first.'}
          onFirst={prev ? () => setAt({ from: 'start' }) : undefined}
          onPrev={prev ? () => setAt({ from: 'start', cursor: prev }) : undefined}
          onNext={next ? () => setAt({ from: 'start', cursor: next }) : undefined}
          onLast={next ? () => setAt({ from: 'end' }) : undefined}
        />
      )}
      {filter === '' && rows && rows.length > 0 && (
        <p className="hint table-foot">
          <button type="button" className="linklike" onClick={onLaunch}>
            Launch another job
          </button>
        </p>
      )}
    </section>
  );
}
