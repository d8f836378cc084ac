import { sql, type Kysely } from 'kysely';
import type { DialectName } from './database.js';
import type { Db } from './db.js';
import type { Database } from './schema.js';

/** A queue's backlog from its counters: pending and active items, and pending ones per priority. */
export interface BacklogCounts {
  pending: number;
  /** Claimed, starting, running and cancelling (what queue views call `running`). */
  active: number;
  pendingByPriority: Map<number, number>;
}

const empty = (): BacklogCounts => ({ pending: 0, active: 0, pendingByPriority: new Map() });

/**
 * Reads the backlog counters the triggers of migration 0012 keep (backlogSchema.ts): the counter rows plus, on
 * PostgreSQL, the deltas not yet folded into them, in one statement (one snapshot, so a fold running meanwhile is
 * seen either wholly or not at all). Costs a few index lookups however deep the queue is.
 */
export async function backlogCounts(db: Db, queueIds: string[]): Promise<Map<string, BacklogCounts>> {
  const out = new Map<string, BacklogCounts>();
  if (!queueIds.length) return out;
  const ids = sql.join(queueIds);
  const { rows } = await sql<{ queue_id: string; priority: number; pending: number; active: number }>`
    SELECT queue_id, priority, SUM(pending) AS pending, SUM(active) AS active FROM (
      SELECT queue_id, priority, pending, active FROM queue_backlog WHERE queue_id IN (${ids})
      UNION ALL
      SELECT queue_id, priority, pending, active FROM queue_backlog_deltas WHERE queue_id IN (${ids})
    ) AS b GROUP BY queue_id, priority`.execute(db);
  for (const r of rows) {
    const c = out.get(r.queue_id) ?? empty();
    const pending = Number(r.pending);
    c.pending += pending;
    c.active += Number(r.active);
    if (pending) c.pendingByPriority.set(Number(r.priority), pending);
    out.set(r.queue_id, c);
  }
  return out;
}

/** Pending items of priority `priority` or better (a lower number), from the counters. */
export function pendingUpTo(c: BacklogCounts | undefined, priority: number): number {
  let n = 0;
  for (const [p, count] of c?.pendingByPriority ?? []) if (p <= priority) n += count;
  return n;
}

/** Deltas folded per statement; a tick that finds more leaves the rest to the next (readers add them meanwhile). */
const FOLD_BATCH = 50_000;
/** Advisory lock key of the fold ("LIFW"), so replicas do not fold at once. */
const FOLD_LOCK = 0x4c494657;

/**
 * PostgreSQL: folds the deltas into the counters. One statement deletes a batch of deltas and adds their sums to
 * the counter rows, so every snapshot sees each change exactly once (in a delta or in a counter). Deltas of
 * transactions still open are not visible to the DELETE and wait for the next fold. Returns the deltas folded.
 */
export async function foldBacklogDeltas(db: Kysely<Database>, dialect: DialectName): Promise<number> {
  if (dialect !== 'postgres') return 0;
  const folded = await db.transaction().execute(async (trx) => {
    const { rows } = await sql<{ ok: boolean }>`SELECT pg_try_advisory_xact_lock(${FOLD_LOCK}) AS ok`.execute(trx);
    if (!rows[0]?.ok) return 0;
    const r = await sql<{ n: number }>`
      WITH moved AS (
        DELETE FROM queue_backlog_deltas
        WHERE id IN (SELECT id FROM queue_backlog_deltas ORDER BY id LIMIT ${FOLD_BATCH})
        RETURNING queue_id, priority, pending, active
      ), sums AS (
        SELECT queue_id, priority, SUM(pending) AS pending, SUM(active) AS active, COUNT(*) AS n
        FROM moved GROUP BY queue_id, priority
      ), folded AS (
        INSERT INTO queue_backlog (queue_id, priority, pending, active)
        SELECT queue_id, priority, pending, active FROM sums ORDER BY queue_id, priority
        ON CONFLICT (queue_id, priority) DO UPDATE
          SET pending = queue_backlog.pending + EXCLUDED.pending, active = queue_backlog.active + EXCLUDED.active
      )
      SELECT COALESCE(SUM(n), 0) AS n FROM sums`.execute(trx);
    return Number(r.rows[0]?.n ?? 0);
  });
  // The folded rows are dead tuples the readers' index scan would still walk until autovacuum comes by (measured:
  // 100k of them made the view's read 15 ms instead of 0.4 ms). The table is small, so vacuuming it is cheap.
  if (folded > 0) await sql`VACUUM (SKIP_LOCKED) queue_backlog_deltas`.execute(db);
  return folded;
}
