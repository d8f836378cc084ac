import { sql, type RawBuilder } from 'kysely';
import type { ITEM_ORDERS } from '@liftoff/core';
import { beyond, decodeKeyCursor, type Direction, type KeyPart } from './cursor.js';
import type { DialectName } from './database.js';
import { effectivePriorityOf } from './ordering.js';
import type { QueueRow } from './queues.js';

export type ItemOrder = (typeof ITEM_ORDERS)[number];

/**
 * How one page of a queue's items is read (Items.list): the key parts of its order, the cursor's condition, the
 * direction of travel.
 * - `newest`: by id descending (UUIDv7 ids are time-ordered), served by the primary key and items_dispatch.
 * - `queue` (pending items only): dispatch order (ordering.ts), the effective priority then the id. Without aging
 *   that is (priority, id): a range of items_dispatch (queue_id, state, priority, id), so the 10,000th item costs
 *   what the first does. With aging the effective priority moves with the clock, so the order is taken at one
 *   instant, `asOf`: the first page's time, carried in its cursors, so that paging on never repeats or skips an item
 *   because time passed.
 */
export function itemPageRead(
  dialect: DialectName,
  order: ItemOrder,
  queue: Pick<QueueRow, 'aging_ms'>,
  opts: { from?: 'start' | 'end'; cursor?: string },
  now: number,
) {
  const agingMs = queue.aging_ms === null ? null : Number(queue.aging_ms);
  const types = order === 'queue' ? (['int', 'int', 'str'] as const) : (['str'] as const);
  const list = `items:${order}`;
  const cursor = opts.cursor === undefined ? undefined : decodeKeyCursor(opts.cursor, list, [...types]);
  // The queue order's cursors lead with the instant the order was taken at; it is no part of the comparison.
  const asOf = order === 'queue' && cursor ? (cursor.key[0] as number) : now;
  const parts: KeyPart[] =
    order === 'queue'
      ? [
          { expr: effective(asOf, agingMs), desc: false, type: 'int' },
          { expr: sql`items.id`, desc: false, type: 'str' },
        ]
      : [{ expr: sql`items.id`, desc: true, type: 'str' }];
  const direction: Direction = cursor ? cursor.direction : opts.from === 'end' ? 'before' : 'after';
  const key = cursor ? (order === 'queue' ? cursor.key.slice(1) : cursor.key) : undefined;
  return {
    list,
    parts,
    direction,
    asOf,
    /** Whether rows lie on the far side of where the read starts (it starts at a cursor). */
    started: cursor !== undefined,
    where: key ? beyond(dialect, parts, key, direction) : undefined,
    keyOf: (r: { id: string; priority: number; created_at: number }): Array<string | number> =>
      order === 'queue'
        ? [
            asOf,
            effectivePriorityOf({ priority: Number(r.priority), created_at: Number(r.created_at) }, asOf, agingMs),
            r.id,
          ]
        : [r.id],
  };
}

/** ordering.ts's effective priority over the items table by name (the list joins queues, which has created_at too). */
function effective(now: number, agingMs: number | null): RawBuilder<unknown> {
  if (!agingMs) return sql`items.priority`;
  const aged = sql`items.priority - CAST((${now} - items.created_at) / ${agingMs} AS INTEGER)`;
  return sql`(CASE WHEN ${aged} < 0 THEN 0 ELSE ${aged} END)`;
}
