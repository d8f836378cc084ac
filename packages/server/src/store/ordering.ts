import { sql, type RawBuilder } from 'kysely';

/**
 * Dispatch order: priority (0 critical … 3 low), then FIFO (item ids are UUIDv7, so time-ordered).
 *
 * Aging, when a queue sets `aging_ms`: a pending item's effective priority is its priority minus one level per
 * `aging_ms` it has waited, never better than critical (0). A low item pushed with aging 600 s is served like a
 * critical one after 30 minutes; among equal effective priorities the older item goes first.
 */
export function effectivePriority(now: number, agingMs: number | null): RawBuilder<number> {
  if (!agingMs) return sql<number>`${sql.ref('priority')}`;
  // CAST makes the division integral on SQLite, which may bind numbers as REAL.
  const aged = sql`${sql.ref('priority')} - CAST((${now} - ${sql.ref('created_at')}) / ${agingMs} AS INTEGER)`;
  return sql<number>`(CASE WHEN ${aged} < 0 THEN 0 ELSE ${aged} END)`;
}

export function effectivePriorityOf(
  item: { priority: number; created_at: number },
  now: number,
  agingMs: number | null,
): number {
  if (!agingMs) return item.priority;
  return Math.max(0, item.priority - Math.floor((now - item.created_at) / agingMs));
}
