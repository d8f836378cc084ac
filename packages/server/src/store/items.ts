import { sql, type Kysely, type Selectable } from 'kysely';
import { v7 as uuidv7 } from 'uuid';
import {
  BadRequestError,
  ConflictError,
  NotFoundError,
  type Item,
  type ItemSummary,
  type ItemState,
  type LaunchSpec,
  type PendingReason,
  type PushBody,
} from '@liftoff/core';
import type { z } from 'zod';
import { json, numOrNull, type Db } from './db.js';
import { cancelItem } from './cancel.js';
import { backoffReason, explainPending } from './pending.js';
import { PendingInfo, backoffOf } from './pendingInfo.js';
import type { QueueRow, Queues } from './queues.js';
import { pageOf } from './cursor.js';
import { itemPageRead, type ItemOrder } from './itemPages.js';
import type { Database, ItemsTable } from './schema.js';
import type { DialectName } from './database.js';

/** The push body as the server validated it (defaults filled in). */
export type PushedBody = z.output<typeof PushBody>;

/** An item row joined with the names of its queue and entity (what itemQuery selects). */
export type ItemView = Selectable<ItemsTable> & { queue_name: string; entity_name: string; entity_id: string };

export function itemQuery(db: Db) {
  return db
    .selectFrom('items')
    .innerJoin('queues', 'queues.id', 'items.queue_id')
    .innerJoin('entities', 'entities.id', 'queues.entity_id')
    .selectAll('items')
    .select(['queues.name as queue_name', 'entities.name as entity_name', 'entities.id as entity_id']);
}

/** itemQuery without the spec column, with the spec's fields that summaries carry picked out by the database. */
function summaryQuery(db: Db, dialect: DialectName) {
  // JSON columns are text on both databases: SQLite's json_extract reads text; PostgreSQL casts it to json first.
  const field = (...path: string[]) =>
    dialect === 'postgres'
      ? sql<string | null>`(items.spec::json #>> ${`{${path.join(',')}}`})`
      : sql<string | null>`json_extract(items.spec, ${`$.${path.join('.')}`})`;
  return db
    .selectFrom('items')
    .innerJoin('queues', 'queues.id', 'items.queue_id')
    .innerJoin('entities', 'entities.id', 'queues.entity_id')
    .select([
      'items.id',
      'items.queue_id',
      'items.priority',
      'items.state',
      'items.created_at',
      'items.claimed_by',
      'items.claimed_at',
      'items.lease_expires_at',
      'items.ended_at',
      'items.run_id',
      'items.preemptions',
      'items.not_before',
      'items.lost_runs',
      'queues.name as queue_name',
      'entities.name as entity_name',
      'entities.id as entity_id',
      field('name').as('spec_name'),
      field('project').as('spec_project'),
      field('author').as('spec_author'),
      field('source', 'type').as('spec_source_type'),
    ]);
}

export function toItem(r: ItemView, position: number | null, pendingReason: PendingReason | null = null): Item {
  return {
    id: r.id,
    queue: r.queue_name,
    entity: r.entity_name,
    priority: Number(r.priority),
    state: r.state as ItemState,
    spec: JSON.parse(r.spec) as LaunchSpec,
    created_at: Number(r.created_at),
    claimed_by: r.claimed_by,
    claimed_at: numOrNull(r.claimed_at),
    ended_at: numOrNull(r.ended_at),
    run_id: r.run_id,
    position,
    pending_reason: pendingReason,
    preemptions: Number(r.preemptions),
    not_before: numOrNull(r.not_before),
    lost_runs: Number(r.lost_runs),
    pushed: r.pushed ? (JSON.parse(r.pushed) as PushedBody) : null,
  };
}

/**
 * The row of a newly pushed item: pending, unclaimed, with its push as sent (`pushed`, kept for re-runs). The one
 * place a new item's columns are spelled out (a push, a batched push, a sweep's trial: sweeps.ts).
 */
export function pendingItemRow(
  id: string,
  queueId: string,
  e: { spec: LaunchSpec; priority: number; pushed?: PushedBody | z.input<typeof PushBody> | undefined },
  now: number,
) {
  return {
    id,
    queue_id: queueId,
    priority: e.priority,
    state: 'pending',
    spec: json(e.spec),
    created_at: now,
    claimed_by: null,
    claimed_at: null,
    lease_expires_at: null,
    ended_at: null,
    run_id: null,
    pushed: e.pushed ? json(e.pushed) : null,
  };
}

/** Items users push, look at and cancel. Claiming and starting them is dispatch.ts. */
export class Items {
  private readonly pending: PendingInfo;
  constructor(
    private readonly db: Kysely<Database>,
    private readonly queues: Queues,
    private readonly dialect: DialectName = 'sqlite',
  ) {
    this.pending = new PendingInfo(db);
  }

  /** `pushed`: the push body as sent (Item.pushed), kept for re-runs. */
  /** A new pending item; its row as stored (RETURNING: the push answers with it, no read back). */
  async push(
    queueId: string,
    spec: LaunchSpec,
    priority: number,
    now: number,
    pushed?: PushedBody,
  ): Promise<Selectable<ItemsTable>> {
    return this.db
      .insertInto('items')
      .values(pendingItemRow(uuidv7(), queueId, { spec, priority, pushed }, now))
      .returningAll()
      .executeTakeFirstOrThrow();
  }

  /**
   * Many items into one queue in one transaction (a batched push: all or none), in order: ids are UUIDv7, so the
   * items keep the order they were sent in among equal priorities.
   */
  async pushMany(
    queueId: string,
    entries: Array<{ spec: LaunchSpec; priority: number; pushed?: PushedBody }>,
    now: number,
  ): Promise<string[]> {
    const rows = entries.map((e) => pendingItemRow(uuidv7(), queueId, e, now));
    // One statement is atomic by itself: no BEGIN and COMMIT (two more round trips on PostgreSQL) around it.
    if (rows.length <= 500) {
      await this.db.insertInto('items').values(rows).execute();
      return rows.map((r) => r.id);
    }
    await this.db.transaction().execute(async (trx) => {
      // In slices: 12 columns a row, and SQLite binds at most 32,766 parameters per statement.
      for (let i = 0; i < rows.length; i += 500)
        await trx
          .insertInto('items')
          .values(rows.slice(i, i + 500))
          .execute();
    });
    return rows.map((r) => r.id);
  }

  /**
   * One item. `explain` (the default) adds a pending item's position and reason, which costs a count over the
   * queue's backlog; the push path skips it so that pushing stays flat however deep the queue is.
   */
  async get(
    id: string,
    now = Date.now(),
    { explain = true }: { explain?: boolean } = {},
  ): Promise<Item & { entity_id: string; queue_id: string }> {
    const row = await itemQuery(this.db).where('items.id', '=', id).executeTakeFirst();
    if (!row) throw new NotFoundError(`Item "${id}" not found.`);
    const ids = { entity_id: row.entity_id, queue_id: row.queue_id };
    if (row.state !== 'pending' || !explain) return { ...toItem(row, null), ...ids };
    const queue = await this.queues.row(row.queue_id);
    const position = await this.pending.position(row, queue, now);
    const reason =
      row.not_before === null
        ? explainPending(queue.name, position, await this.pending.situation(row.entity_id, queue))
        : backoffReason(backoffOf(row, queue, await this.pending.requeueTimes([row])));
    return { ...toItem(row, position, reason), ...ids };
  }

  /**
   * A page of a queue's items as summaries: the spec column is never read into this process (the few fields lists
   * show are picked out of it by the database), so a list of items with large specs stays small. Newest first
   * (`newest`, by id: UUIDv7, so time-ordered), or the queue's order for pending items (`queue`: what runs next
   * first, itemPages.ts), paged by keyset cursor in either direction.
   */
  async list(
    queueId: string,
    opts: { state?: ItemState; order?: ItemOrder; from?: 'start' | 'end'; cursor?: string; limit: number },
    now = Date.now(),
  ): Promise<{ items: ItemSummary[]; next_cursor: string | null; prev_cursor: string | null }> {
    const queue = await this.queues.row(queueId);
    const order = opts.order ?? 'newest';
    if (order === 'queue' && opts.state !== 'pending')
      throw new BadRequestError('order=queue lists pending items only: add state=pending, or use order=newest.');
    const read = itemPageRead(this.dialect, order, queue, opts, now);
    let q = summaryQuery(this.db, this.dialect).where('items.queue_id', '=', queueId);
    if (opts.state) q = q.where('items.state', '=', opts.state);
    if (read.where) q = q.where(read.where);
    for (const p of read.parts) q = q.orderBy(p.expr, p.desc === (read.direction === 'before') ? 'asc' : 'desc');
    const rows = await q.limit(opts.limit + 1).execute();
    const { page, next_cursor, prev_cursor } = pageOf(rows, {
      limit: opts.limit,
      direction: read.direction,
      started: read.started,
      list: read.list,
      keyOf: read.keyOf,
    });
    const pending = page.filter((r) => r.state === 'pending');
    const positions =
      order === 'queue'
        ? await this.queuePositions(page, queue, read.asOf)
        : pending.length
          ? await this.pending.ranks(queueId, queue, now, pending)
          : new Map<string, number>();
    const situation = pending[0] ? await this.pending.situation(pending[0].entity_id, queue) : undefined;
    const requeuedAt = await this.pending.requeueTimes(pending.filter((r) => r.not_before !== null));
    const items = page.map((r) => {
      const position = positions.get(r.id) ?? null;
      const reason =
        position === null || !situation
          ? null
          : r.not_before !== null
            ? backoffReason(backoffOf(r, queue, requeuedAt))
            : explainPending(queue.name, position, situation);
      const { spec: _spec, pushed: _pushed, ...item } = toItem({ ...r, spec: 'null', pushed: null }, position, reason);
      return {
        ...item,
        name: r.spec_name,
        project: r.spec_project,
        author: r.spec_author,
        source_type: r.spec_source_type as ItemSummary['source_type'],
      };
    });
    return { items, next_cursor, prev_cursor };
  }

  /**
   * Positions of a page in queue order: the first row's place in line (PendingInfo.position, from the counters),
   * then one more per row, which is what the order is. `asOf`: the clock the order was taken at (aging queues).
   */
  private async queuePositions(
    page: Array<{ id: string; queue_id: string; priority: number; created_at: number }>,
    queue: QueueRow,
    asOf: number,
  ): Promise<Map<string, number>> {
    const first = page[0];
    if (!first) return new Map();
    const at = await this.pending.position(
      { ...first, priority: Number(first.priority), created_at: Number(first.created_at) },
      queue,
      asOf,
    );
    return new Map(page.map((r, i) => [r.id, at + i]));
  }

  /** An agent hands back an item it claimed but never started (e.g. it is shutting down). */
  async release(itemId: string, agentId: string): Promise<string> {
    const r = await this.db
      .updateTable('items')
      .set({ state: 'pending', claimed_by: null, claimed_at: null, lease_expires_at: null })
      .where('id', '=', itemId)
      .where('state', '=', 'claimed')
      .where('claimed_by', '=', agentId)
      .returning('queue_id')
      .executeTakeFirst();
    if (!r) throw new ConflictError(`Item "${itemId}" is not claimed by this agent.`);
    return r.queue_id;
  }

  /**
   * Cancels an item: pending or claimed-but-unstarted items end `stopped` at once; started ones become
   * `cancelling` and the returned agent id must be told to stop the run.
   */
  async cancel(itemId: string, now: number): Promise<{ notifyAgent: string | null }> {
    return cancelItem(this.db, this.dialect, itemId, now);
  }
}
