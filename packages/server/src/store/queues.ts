import type { Kysely, Selectable } from 'kysely';
import { v7 as uuidv7 } from 'uuid';
import {
  ConflictError,
  NotFoundError,
  type PrioritizationMode,
  type Queue,
  type QueueSettings,
  type SecurityAllowance,
  type TemplateVariables,
  type UpdateQueueBody,
} from '@liftoff/core';
import { backlogCounts } from './backlog.js';
import { json, numOrNull } from './db.js';
import type { EntityRef } from './entities.js';
import type { ReadCaches } from '../caches.js';
import type { Database, QueuesTable } from './schema.js';

export type QueueRow = Selectable<QueuesTable>;

/** What an agent needs of its queue's switches with every claimed item and re-adopted run. */
export function queueSettingsOf(r: Pick<QueueRow, 'start_timeout_seconds' | 'allow'>): QueueSettings {
  return {
    start_timeout_seconds: numOrNull(r.start_timeout_seconds),
    allow: JSON.parse(r.allow) as SecurityAllowance[],
  };
}

/** The queue switches stored as they are sent (the others are converted in create and update). */
type PlainQueueSwitches = Pick<
  UpdateQueueBody,
  | 'start_timeout_seconds'
  | 'preemption_retries'
  | 'preemption_backoff_seconds'
  | 'allow'
  | 'locked_keys'
  | 'lost_retries'
  | 'max_log_bytes'
>;
function plainSwitches(u: PlainQueueSwitches) {
  const set: Partial<{
    start_timeout_seconds: number | null;
    preemption_retries: number;
    preemption_backoff_seconds: number;
    allow: string;
    locked_keys: string;
    lost_retries: number;
    max_log_bytes: number | null;
  }> = {};
  if (u.start_timeout_seconds !== undefined) set.start_timeout_seconds = u.start_timeout_seconds;
  if (u.preemption_retries !== undefined) set.preemption_retries = u.preemption_retries;
  if (u.preemption_backoff_seconds !== undefined) set.preemption_backoff_seconds = u.preemption_backoff_seconds;
  if (u.allow !== undefined) set.allow = json(u.allow);
  if (u.locked_keys !== undefined) set.locked_keys = json(u.locked_keys);
  if (u.lost_retries !== undefined) set.lost_retries = u.lost_retries;
  if (u.max_log_bytes !== undefined) set.max_log_bytes = u.max_log_bytes;
  return set;
}

export type NewQueue = {
  name: string;
  resource: string;
  resource_args: unknown;
  prioritization_mode?: PrioritizationMode;
  aging_seconds?: number | null;
  max_concurrency?: number | null;
  template_variables?: TemplateVariables;
} & PlainQueueSwitches;

/**
 * Queues of an entity: their definition, switches and backlog counts. Rows are cached by id and by entity and name
 * (caches.ts); updating or deleting a queue drops them on every replica. The claim path reads its own (dispatch.ts).
 */
export class Queues {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly caches: ReadCaches,
  ) {}

  async create(entity: EntityRef, q: NewQueue, now: number): Promise<Queue> {
    if (await this.find(entity.id, q.name)) {
      throw new ConflictError(`Queue "${q.name}" already exists in entity "${entity.name}".`);
    }
    // The row comes back from the INSERT (no re-read); a new queue has nothing in its backlog yet.
    const row = await this.db
      .insertInto('queues')
      .values({
        id: uuidv7(),
        entity_id: entity.id,
        name: q.name,
        resource: q.resource,
        resource_args: json(q.resource_args),
        created_at: now,
        prioritization_mode: q.prioritization_mode ?? 'DISABLED',
        aging_ms: q.aging_seconds ? q.aging_seconds * 1000 : null,
        max_concurrency: q.max_concurrency ?? null,
        template_variables: json(q.template_variables ?? {}),
        ...plainSwitches(q),
      })
      .returningAll()
      .executeTakeFirstOrThrow();
    return toQueue(row, entity.name);
  }

  async update(entity: EntityRef, name: string, u: UpdateQueueBody): Promise<Queue> {
    const q = await this.require(entity, name);
    const set: Partial<{ prioritization_mode: string; aging_ms: number | null; max_concurrency: number | null }> &
      ReturnType<typeof plainSwitches> = plainSwitches(u);
    if (u.prioritization_mode !== undefined) set.prioritization_mode = u.prioritization_mode;
    if (u.aging_seconds !== undefined) set.aging_ms = u.aging_seconds === null ? null : u.aging_seconds * 1000;
    if (u.max_concurrency !== undefined) set.max_concurrency = u.max_concurrency;
    if (!Object.keys(set).length) return this.get(entity, name);
    // The row comes back from the UPDATE (no re-read); the write drops the queue cache on every replica.
    const row = await this.caches.write(this.db, ['queues'], (trx) =>
      trx.updateTable('queues').set(set).where('id', '=', q.id).returningAll().executeTakeFirst(),
    );
    if (!row) return this.get(entity, name); // deleted meanwhile: answered as not found
    return toQueue(row, entity.name, (await this.counts([row.id])).get(row.id));
  }

  async find(entityId: string, name: string): Promise<QueueRow | undefined> {
    const cache = this.caches.queues;
    const generation = cache.current;
    const row = await cache.read(`name:${entityId}/${name}`, () =>
      this.db
        .selectFrom('queues')
        .selectAll()
        .where('entity_id', '=', entityId)
        .where('name', '=', name)
        .executeTakeFirst(),
    );
    if (row) cache.put(`id:${row.id}`, row, generation);
    return row;
  }

  async require(entity: EntityRef, name: string): Promise<QueueRow> {
    const q = await this.find(entity.id, name);
    if (!q) {
      throw new NotFoundError(
        `Queue "${name}" not found in entity "${entity.name}". List queues with "liftoff queue list".`,
      );
    }
    return q;
  }

  async row(id: string): Promise<QueueRow> {
    const row = await this.caches.queues.read(`id:${id}`, () =>
      this.db.selectFrom('queues').selectAll().where('id', '=', id).executeTakeFirst(),
    );
    if (!row) throw new NotFoundError(`Queue with id "${id}" not found.`);
    return row;
  }

  async get(entity: EntityRef, name: string): Promise<Queue> {
    const q = await this.require(entity, name);
    const counts = await this.counts([q.id]);
    return toQueue(q, entity.name, counts.get(q.id));
  }

  async list(entity: EntityRef): Promise<Queue[]> {
    const rows = await this.db
      .selectFrom('queues')
      .selectAll()
      .where('entity_id', '=', entity.id)
      .orderBy('name')
      .execute();
    const counts = await this.counts(rows.map((r) => r.id));
    return rows.map((r) => toQueue(r, entity.name, counts.get(r.id)));
  }

  /** Deletes a queue with no items in flight; its pending items end as `stopped`. */
  async delete(entity: EntityRef, name: string, now: number): Promise<void> {
    const q = await this.require(entity, name);
    await this.caches.write(this.db, ['queues'], async (trx) => {
      const busy = await trx
        .selectFrom('items')
        .select('id')
        .where('queue_id', '=', q.id)
        .where('state', 'in', ['claimed', 'starting', 'running', 'cancelling'])
        .executeTakeFirst();
      if (busy) {
        throw new ConflictError(
          `Queue "${name}" has items in flight; cancel them or wait for them to end before deleting it.`,
        );
      }
      await trx
        .updateTable('items')
        .set({ state: 'stopped', ended_at: now, not_before: null })
        .where('queue_id', '=', q.id)
        .where('state', '=', 'pending')
        .execute();
      // Its counters stay (at zero, its items having ended): deleting them here could deadlock with a fold of
      // PostgreSQL's deltas (backlog.ts), and queue ids are never reused.
      await trx.deleteFrom('queues').where('id', '=', q.id).execute();
    });
  }

  /** The switches of a run's queue, for an agent re-adopting the run (RunDetail). */
  async settingsOfRun(runId: string): Promise<QueueSettings> {
    const q = await this.db
      .selectFrom('runs')
      .innerJoin('queues', 'queues.id', 'runs.queue_id')
      .select(['queues.start_timeout_seconds', 'queues.allow'])
      .where('runs.id', '=', runId)
      .executeTakeFirstOrThrow();
    return queueSettingsOf(q);
  }

  /** Queues whose pollers should re-check after a slot was freed in `queueId` (its entity's when limited). */
  async sharingLimits(queueId: string): Promise<string[]> {
    const q = await this.db
      .selectFrom('queues')
      .innerJoin('entities', 'entities.id', 'queues.entity_id')
      .select(['queues.entity_id', 'entities.max_concurrency as entity_limit'])
      .where('queues.id', '=', queueId)
      .executeTakeFirst();
    if (!q) return [];
    if (q.entity_limit === null) return [queueId];
    const rows = await this.db.selectFrom('queues').select('id').where('entity_id', '=', q.entity_id).execute();
    return rows.map((r) => r.id);
  }

  /** Pending and running per queue from the backlog counters (backlog.ts): no count over the backlog. */
  private async counts(queueIds: string[]) {
    const out = new Map<string, { pending: number; running: number }>();
    for (const [id, c] of await backlogCounts(this.db, queueIds))
      out.set(id, { pending: c.pending, running: c.active });
    return out;
  }
}

function toQueue(r: QueueRow, entity: string, c?: { pending: number; running: number }): Queue {
  return {
    prioritization_mode: r.prioritization_mode as PrioritizationMode,
    aging_seconds: r.aging_ms === null ? null : Math.round(Number(r.aging_ms) / 1000),
    max_concurrency: numOrNull(r.max_concurrency),
    template_variables: JSON.parse(r.template_variables) as TemplateVariables,
    ...queueSettingsOf(r),
    preemption_retries: Number(r.preemption_retries),
    preemption_backoff_seconds: Number(r.preemption_backoff_seconds),
    locked_keys: JSON.parse(r.locked_keys) as string[],
    lost_retries: Number(r.lost_retries),
    max_log_bytes: numOrNull(r.max_log_bytes),
    id: r.id,
    entity,
    name: r.name,
    resource: r.resource as Queue['resource'],
    resource_args: JSON.parse(r.resource_args) as Queue['resource_args'],
    created_at: Number(r.created_at),
    pending: c?.pending ?? 0,
    running: c?.running ?? 0,
  };
}
