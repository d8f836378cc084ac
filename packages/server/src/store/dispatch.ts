import { sql, type Kysely } from 'kysely';
import type { Item, QueueSettings, Run } from '@liftoff/core';
import type { DialectName } from './database.js';
import type { Db } from './db.js';
import { toItem } from './items.js';
import { lockForClaim, slotsInUse } from './limits.js';
import { effectivePriority, effectivePriorityOf } from './ordering.js';
import { queueSettingsOf, type QueueRow } from './queues.js';
import { ackIn } from './acks.js';
import { retryDeadlocks } from './deadlocks.js';
import type { Database } from './schema.js';

export type ClaimedItemRow = Item & { lease_expires_at: number; queue_settings: QueueSettings };
type ClaimableQueue = QueueRow & { entity_limit: number | null; entity_name: string };

/**
 * The claim path, all of it: an agent's poll claims pending items (claim → claimOne), then acknowledges each as it
 * starts it (ack), which creates the run. Every step is one conditional statement or one transaction, so two agents
 * or two server replicas can never both win the same item.
 */
export class Dispatch {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly dialect: DialectName,
  ) {}

  /**
   * Claims up to `max` pending items for an agent, spread over the given queues as round-robin would (one per queue
   * per round, in the given order) and returned in that interleaved order, each with a lease. Each queue's share is
   * claimed by one conditional UPDATE, which makes the claim atomic: an item already claimed is skipped, never shared.
   */
  async claim(agentId: string, queueIds: string[], max: number, leaseMs: number, now: number) {
    const rows = queueIds.length
      ? await this.db
          .selectFrom('queues')
          .innerJoin('entities', 'entities.id', 'queues.entity_id')
          .selectAll('queues')
          .select(['entities.max_concurrency as entity_limit', 'entities.name as entity_name'])
          .where('queues.id', 'in', queueIds)
          .execute()
      : [];
    const queues = new Map<string, ClaimableQueue>(rows.map((q) => [q.id, q]));
    const perQueue = new Map<string, ClaimedItemRow[]>();
    // A queue named twice in a poll gets one turn per round, as before.
    const order = [...new Set(queueIds)].filter((id) => queues.has(id));
    let active = order;
    let left = max;
    const claimFrom = async (id: string, want: number) => {
      const got = await this.claimFrom(agentId, queues.get(id) as ClaimableQueue, want, leaseMs, now);
      perQueue.set(id, [...(perQueue.get(id) ?? []), ...got]);
      left -= got.length;
      return got.length === want;
    };
    // Whole rounds of round-robin first, each queue's turns of them claimed at once: every queue still holding
    // items gets the same number; one that runs short is done. Then the last, partial round, one turn per queue
    // in order. That gives each queue exactly what one-at-a-time turns would have.
    while (left >= active.length && active.length) {
      const share = Math.floor(left / active.length);
      const stillActive: string[] = [];
      for (const id of active) if (await claimFrom(id, share)) stillActive.push(id);
      active = stillActive;
    }
    for (const id of active) {
      if (left === 0) break;
      await claimFrom(id, 1);
    }
    // Interleaved as the turns of round-robin: the first of each queue, then the second of each, ...
    const claimed: ClaimedItemRow[] = [];
    for (let turn = 0; claimed.length < max - left; turn++) {
      for (const id of order) {
        const item = perQueue.get(id)?.[turn];
        if (item) claimed.push(item);
      }
    }
    return claimed;
  }

  /** Up to `want` items of one queue, within its limits, in dispatch order. */
  private async claimFrom(
    agentId: string,
    queue: ClaimableQueue,
    want: number,
    leaseMs: number,
    now: number,
  ): Promise<ClaimedItemRow[]> {
    const queueLimit = queue.max_concurrency === null ? null : Number(queue.max_concurrency);
    const entityLimit = queue.entity_limit === null ? null : Number(queue.entity_limit);
    const agingMs = queue.aging_ms === null ? null : Number(queue.aging_ms);
    const take = async (db: Db, n: number) => {
      if (n <= 0) return [];
      const next = db
        .selectFrom('items')
        .select('id')
        .where('queue_id', '=', queue.id)
        .where('state', '=', 'pending')
        // Requeued items waiting out a backoff; the reaper clears not_before when it has passed.
        .where('not_before', 'is', null)
        .orderBy(effectivePriority(now, agingMs))
        .orderBy('id')
        .limit(n);
      const claim = { state: 'claimed', claimed_by: agentId, claimed_at: now, lease_expires_at: now + leaseMs };
      if (this.dialect === 'postgres') {
        // The ids are picked once, in a materialized CTE. As `id IN (SELECT ... LIMIT n FOR UPDATE SKIP LOCKED)`,
        // PostgreSQL may run the subquery again for later rows of the join (each run locking and skipping anew),
        // and the UPDATE then claimed more than n items: more than the agent has slots for.
        return db
          .with(
            (cte) => cte('picked').materialized(),
            () => next.forUpdate().skipLocked(),
          )
          .updateTable('items')
          .from('picked')
          .set(claim)
          .whereRef('items.id', '=', 'picked.id')
          .where('items.state', '=', 'pending')
          .returningAll('items')
          .execute();
      }
      return (
        db
          .updateTable('items')
          .set(claim)
          .where('id', n === 1 ? '=' : 'in', next)
          // SQLite plans `state = ?` beside `id IN (...)` as a scan of every pending item through the state index (a
          // claim then costs O(backlog)); the unary + keeps that index out, so the ids are looked up by key.
          .where(sql<string>`+${sql.ref('state')}`, '=', 'pending')
          .returningAll()
          .execute()
      );
    };
    const claimedRows =
      queueLimit === null && entityLimit === null
        ? await take(this.db, want)
        : // Under a limit, count and claim in one transaction that holds the limit's lock, so no two claimers
          // (agents or replicas) can both take the last slot.
          await this.db.transaction().execute(async (trx) => {
            await lockForClaim(trx, this.dialect, entityLimit === null ? null : queue.entity_id, queue.id);
            let n = want;
            if (queueLimit !== null) n = Math.min(n, queueLimit - (await slotsInUse(trx, { queueId: queue.id })));
            if (entityLimit !== null)
              n = Math.min(n, entityLimit - (await slotsInUse(trx, { entityId: queue.entity_id })));
            return take(trx, n);
          });
    // RETURNING comes in no promised order: put the rows back in the order the subquery chose them.
    const order = (r: { priority: number; created_at: number; id: string }) =>
      effectivePriorityOf({ priority: Number(r.priority), created_at: Number(r.created_at) }, now, agingMs);
    claimedRows.sort((a, b) => order(a) - order(b) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    return claimedRows.map((row) => ({
      ...toItem({ ...row, queue_name: queue.name, entity_name: queue.entity_name, entity_id: queue.entity_id }, null),
      lease_expires_at: now + leaseMs,
      queue_settings: queueSettingsOf(queue),
    }));
  }

  /** The agent confirms it is starting a claimed item: the run is created and the lease ends. */
  async ack(itemId: string, agentId: string, now: number): Promise<Run> {
    return retryDeadlocks(this.dialect, () =>
      this.db.transaction().execute(async (trx) => ackIn(trx, this.dialect, itemId, agentId, now)),
    );
  }
}
