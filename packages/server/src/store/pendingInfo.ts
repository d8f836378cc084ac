import type { Kysely, Selectable } from 'kysely';
import { slotsInUse } from './limits.js';
import { effectivePriority, effectivePriorityOf } from './ordering.js';
import type { Backoff, DispatchSituation, ServingAgent } from './pending.js';
import type { QueueRow } from './queues.js';
import type { Database, ItemsTable } from './schema.js';

/**
 * The reads behind "where is my item and why is it waiting": its place in the dispatch order, the agents and limits
 * that decide whether its queue can start anything, and the backoff of requeued items. pending.ts turns them into
 * reasons. None of this is on the claim path.
 */
export class PendingInfo {
  constructor(private readonly db: Kysely<Database>) {}

  /** 1-based place in the dispatch order (see ordering.ts), counting aging when the queue has it. */
  async position(
    row: { queue_id: string; priority: number; id: string; created_at: number },
    queue: Pick<QueueRow, 'aging_ms'>,
    now: number,
  ): Promise<number> {
    const agingMs = queue.aging_ms === null ? null : Number(queue.aging_ms);
    const mine = effectivePriorityOf(
      { priority: Number(row.priority), created_at: Number(row.created_at) },
      now,
      agingMs,
    );
    const eff = effectivePriority(now, agingMs);
    const r = await this.db
      .selectFrom('items')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('queue_id', '=', row.queue_id)
      .where('state', '=', 'pending')
      .where((eb) => eb.or([eb(eff, '<', mine), eb.and([eb(eff, '=', mine), eb('id', '<', row.id)])]))
      .executeTakeFirst();
    return Number(r?.n ?? 0) + 1;
  }

  /**
   * Positions of every pending item of a queue, from one read of the backlog ranked here (by effective priority,
   * then id): one query however many items are listed, instead of a count per item.
   */
  async ranks(queueId: string, queue: Pick<QueueRow, 'aging_ms'>, now: number): Promise<Map<string, number>> {
    const agingMs = queue.aging_ms === null ? null : Number(queue.aging_ms);
    const rows = await this.db
      .selectFrom('items')
      .select(['id', 'priority', 'created_at'])
      .where('queue_id', '=', queueId)
      .where('state', '=', 'pending')
      .execute();
    const ranked = rows
      .map((r) => ({
        id: r.id,
        eff: effectivePriorityOf({ priority: Number(r.priority), created_at: Number(r.created_at) }, now, agingMs),
      }))
      .sort((a, b) => a.eff - b.eff || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    return new Map(ranked.map((r, i) => [r.id, i + 1]));
  }

  /** What decides whether a queue's next item can start: the agents serving it and the limits over it. */
  async situation(entityId: string, queue: QueueRow): Promise<DispatchSituation> {
    const entity = await this.db
      .selectFrom('entities')
      .select(['name', 'max_concurrency'])
      .where('id', '=', entityId)
      .executeTakeFirstOrThrow();
    const queueLimit = queue.max_concurrency === null ? null : Number(queue.max_concurrency);
    const entityLimit = entity.max_concurrency === null ? null : Number(entity.max_concurrency);
    return {
      agents: await this.agentsServing(entityId, queue.name),
      queueLimit:
        queueLimit === null ? null : { limit: queueLimit, inUse: await slotsInUse(this.db, { queueId: queue.id }) },
      entityLimit:
        entityLimit === null
          ? null
          : { entity: entity.name, limit: entityLimit, inUse: await slotsInUse(this.db, { entityId }) },
    };
  }

  /** When requeued items were requeued: the end of the (preempted) run each still points at. */
  async requeueTimes(rows: Array<Pick<Selectable<ItemsTable>, 'run_id'>>): Promise<Map<string, number>> {
    const ids = rows.flatMap((r) => (r.run_id ? [r.run_id] : []));
    if (!ids.length) return new Map();
    const runs = await this.db.selectFrom('runs').select(['id', 'ended_at']).where('id', 'in', ids).execute();
    return new Map(runs.flatMap((r) => (r.ended_at === null ? [] : [[r.id, Number(r.ended_at)] as const])));
  }

  /** Live and dead agents of the entity whose queue list includes `queueName`. */
  private async agentsServing(entityId: string, queueName: string): Promise<ServingAgent[]> {
    const rows = await this.db
      .selectFrom('agents')
      .select(['queues', 'status', 'max_jobs', 'current_jobs', 'last_heartbeat_at'])
      .where('entity_id', '=', entityId)
      .execute();
    return rows
      .filter((r) => (JSON.parse(r.queues) as string[]).includes(queueName))
      .map((r) => ({
        alive: r.status !== 'KILLED',
        maxJobs: Number(r.max_jobs),
        currentJobs: Number(r.current_jobs),
        lastSeen: Number(r.last_heartbeat_at),
      }));
  }
}

/** The backoff of a requeued item, from its row, its queue and when it was requeued (PendingInfo.requeueTimes). */
export function backoffOf(
  row: Pick<Selectable<ItemsTable>, 'run_id' | 'preemptions' | 'not_before'>,
  queue: Pick<QueueRow, 'preemption_retries'>,
  requeuedAt: Map<string, number>,
): Backoff {
  return {
    preemptions: Number(row.preemptions),
    retries: Number(queue.preemption_retries),
    notBefore: Number(row.not_before),
    requeuedAt: row.run_id ? (requeuedAt.get(row.run_id) ?? null) : null,
  };
}
