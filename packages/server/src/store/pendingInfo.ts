import type { Kysely, Selectable } from 'kysely';
import { backlogCounts, pendingUpTo } from './backlog.js';
import { slotsInUse } from './limits.js';
import { effectivePriority, effectivePriorityOf } from './ordering.js';
import type { Backoff, DispatchSituation, ServingAgent } from './pending.js';
import type { QueueRow } from './queues.js';
import type { Database, ItemsTable } from './schema.js';

/** Items behind one at its priority counted at most, before a position falls back to counting those ahead. */
const BEHIND_LIMIT = 1_000;

/**
 * The reads behind "where is my item and why is it waiting": its place in the dispatch order, the agents and limits
 * that decide whether its queue can start anything, and the backoff of requeued items. pending.ts turns them into
 * reasons. None of this is on the claim path.
 */
export class PendingInfo {
  constructor(private readonly db: Kysely<Database>) {}

  /**
   * 1-based place in the dispatch order (see ordering.ts). Without aging, from the backlog counters: the pending
   * items of the same or better priority, less those of the same priority behind this one, counted on the dispatch
   * index up to BEHIND_LIMIT (an item at the back, which is what users look at after a push, costs almost nothing).
   * An item deeper in a long line, or in a queue with aging (its order moves with the clock), is counted as before.
   */
  async position(
    row: { queue_id: string; priority: number; id: string; created_at: number },
    queue: Pick<QueueRow, 'aging_ms'>,
    now: number,
  ): Promise<number> {
    const agingMs = queue.aging_ms === null ? null : Number(queue.aging_ms);
    if (!agingMs) {
      const counts = (await backlogCounts(this.db, [row.queue_id])).get(row.queue_id);
      const behind = await this.behind(row.queue_id, Number(row.priority), row.id, BEHIND_LIMIT);
      if (behind < BEHIND_LIMIT) return Math.max(1, pendingUpTo(counts, Number(row.priority)) - behind);
    }
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

  /** Pending items of the queue at exactly this priority and after `id` in line, counted up to `limit`. */
  private async behind(queueId: string, priority: number, id: string, limit: number): Promise<number> {
    const r = await this.db
      .selectFrom((eb) =>
        eb
          .selectFrom('items')
          .select('id')
          .where('queue_id', '=', queueId)
          .where('state', '=', 'pending')
          .where('priority', '=', priority)
          .where('id', '>', id)
          .limit(limit)
          .as('b'),
      )
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .executeTakeFirst();
    return Number(r?.n ?? 0);
  }

  /**
   * Positions of pending items of a queue. Given the listed items (`listed`, a newest-first page) in a queue
   * without aging: from the counters and one read of the pending items from the oldest listed one on, which are
   * the listed ones themselves (a newest-first page holds every newer item), so the cost follows the page, not the
   * backlog. Otherwise (aging, or no page given): one read of the whole backlog ranked here.
   */
  async ranks(
    queueId: string,
    queue: Pick<QueueRow, 'aging_ms'>,
    now: number,
    listed?: Array<{ id: string; priority: number }>,
  ): Promise<Map<string, number>> {
    const agingMs = queue.aging_ms === null ? null : Number(queue.aging_ms);
    if (!agingMs && listed) return this.pageRanks(queueId, listed);
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

  private async pageRanks(queueId: string, listed: Array<{ id: string; priority: number }>) {
    const out = new Map<string, number>();
    if (!listed.length) return out;
    const oldest = listed.reduce((m, r) => (r.id < m ? r.id : m), listed[0]?.id ?? '');
    const priorities = [...new Set(listed.map((r) => Number(r.priority)))];
    const counts = (await backlogCounts(this.db, [queueId])).get(queueId);
    const newer = await this.db
      .selectFrom('items')
      .select(['id', 'priority'])
      .where('queue_id', '=', queueId)
      .where('state', '=', 'pending')
      .where('priority', 'in', priorities)
      .where('id', '>=', oldest)
      .execute();
    const byPriority = new Map<number, string[]>();
    for (const n of newer) {
      const ids = byPriority.get(Number(n.priority)) ?? [];
      ids.push(n.id);
      byPriority.set(Number(n.priority), ids);
    }
    for (const ids of byPriority.values()) ids.sort();
    for (const r of listed) {
      const p = Number(r.priority);
      const ids = byPriority.get(p) ?? [];
      // Ids after this one at its priority: binary search for the first id greater than it.
      let lo = 0;
      let hi = ids.length;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if ((ids[mid] ?? '') <= r.id) lo = mid + 1;
        else hi = mid;
      }
      out.set(r.id, Math.max(1, pendingUpTo(counts, p) - (ids.length - lo)));
    }
    return out;
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
