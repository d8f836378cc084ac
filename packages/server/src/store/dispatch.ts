import type { Kysely } from 'kysely';
import { randomBytes } from 'node:crypto';
import { ConflictError, NotFoundError, type Item, type QueueSettings, type Run } from '@liftoff/core';
import type { DialectName } from './database.js';
import type { Db } from './db.js';
import { itemQuery, toItem } from './items.js';
import { lockForClaim, slotsInUse } from './limits.js';
import { effectivePriority } from './ordering.js';
import { queueSettingsOf, type QueueRow } from './queues.js';
import { getRunIn } from './runs.js';
import type { Database } from './schema.js';

export type ClaimedItemRow = Item & { lease_expires_at: number; queue_settings: QueueSettings };
type ClaimableQueue = QueueRow & { entity_limit: number | null };

/** Run ids are short enough to type: 8 characters of [a-z0-9]. */
const newRunId = (): string =>
  randomBytes(6)
    .toString('base64url')
    .toLowerCase()
    .replace(/[^a-z0-9]/g, 'x');

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
   * Claims up to `max` pending items for an agent, one per queue per round in the given order (round-robin), each
   * with a lease. The conditional UPDATE makes the claim atomic: an item already claimed is skipped, never shared.
   */
  async claim(agentId: string, queueIds: string[], max: number, leaseMs: number, now: number) {
    const claimed: ClaimedItemRow[] = [];
    const exhausted = new Set<string>();
    const queues = new Map<string, ClaimableQueue>();
    const rows = queueIds.length
      ? await this.db
          .selectFrom('queues')
          .innerJoin('entities', 'entities.id', 'queues.entity_id')
          .selectAll('queues')
          .select('entities.max_concurrency as entity_limit')
          .where('queues.id', 'in', queueIds)
          .execute()
      : [];
    for (const q of rows) queues.set(q.id, q);
    while (claimed.length < max && exhausted.size < queueIds.length) {
      for (const queueId of queueIds) {
        if (claimed.length >= max) break;
        if (exhausted.has(queueId)) continue;
        const queue = queues.get(queueId);
        const id = queue ? await this.claimOne(agentId, queue, leaseMs, now) : undefined;
        if (!id || !queue) {
          exhausted.add(queueId);
          continue;
        }
        const row = await itemQuery(this.db).where('items.id', '=', id).executeTakeFirstOrThrow();
        claimed.push({
          ...toItem(row, null),
          lease_expires_at: now + leaseMs,
          queue_settings: queueSettingsOf(queue),
        });
      }
    }
    return claimed;
  }

  private async claimOne(
    agentId: string,
    queue: ClaimableQueue,
    leaseMs: number,
    now: number,
  ): Promise<string | undefined> {
    const queueLimit = queue.max_concurrency === null ? null : Number(queue.max_concurrency);
    const entityLimit = queue.entity_limit === null ? null : Number(queue.entity_limit);
    const take = async (db: Db) => {
      const next = db
        .selectFrom('items')
        .select('id')
        .where('queue_id', '=', queue.id)
        .where('state', '=', 'pending')
        // Requeued items waiting out a backoff; the reaper clears not_before when it has passed.
        .where('not_before', 'is', null)
        .orderBy(effectivePriority(now, queue.aging_ms === null ? null : Number(queue.aging_ms)))
        .orderBy('id')
        .limit(1);
      const row = await db
        .updateTable('items')
        .set({ state: 'claimed', claimed_by: agentId, claimed_at: now, lease_expires_at: now + leaseMs })
        .where('id', '=', this.dialect === 'postgres' ? next.forUpdate().skipLocked() : next)
        .where('state', '=', 'pending')
        .returning('id')
        .executeTakeFirst();
      return row?.id;
    };
    if (queueLimit === null && entityLimit === null) return take(this.db);
    // Under a limit, count and claim in one transaction that holds the limit's lock, so no two claimers (agents
    // or replicas) can both take the last slot.
    return this.db.transaction().execute(async (trx) => {
      await lockForClaim(trx, this.dialect, entityLimit === null ? null : queue.entity_id, queue.id);
      if (queueLimit !== null && (await slotsInUse(trx, { queueId: queue.id })) >= queueLimit) return undefined;
      if (entityLimit !== null && (await slotsInUse(trx, { entityId: queue.entity_id })) >= entityLimit)
        return undefined;
      return take(trx);
    });
  }

  /** The agent confirms it is starting a claimed item: the run is created and the lease ends. */
  async ack(itemId: string, agentId: string, now: number): Promise<Run> {
    return this.db.transaction().execute(async (trx) => ackIn(trx, itemId, agentId, now));
  }
}

/**
 * Dispatch.ack inside the caller's transaction (a sync acks many in one). Refusals are thrown before anything is
 * written, so the caller may catch one and go on in the same transaction.
 */
export async function ackIn(trx: Db, itemId: string, agentId: string, now: number): Promise<Run> {
  const item = await trx.selectFrom('items').selectAll().where('id', '=', itemId).executeTakeFirst();
  if (!item) throw new NotFoundError(`Item "${itemId}" not found.`);
  // A retried ack (the first answer was lost) gets the same run back instead of an error.
  if (item.claimed_by === agentId && item.run_id && item.state === 'starting') return getRunIn(trx, item.run_id);
  if (item.state !== 'claimed' || item.claimed_by !== agentId) {
    throw new ConflictError(
      `Item "${itemId}" is no longer claimed by this agent (state ${item.state}); it was cancelled or its lease expired.`,
    );
  }
  const runId = newRunId();
  await trx
    .insertInto('runs')
    .values({
      id: runId,
      item_id: itemId,
      queue_id: item.queue_id,
      agent_id: agentId,
      status: 'starting',
      exit_code: null,
      error_stage: null,
      error_message: null,
      created_at: now,
      started_at: null,
      ended_at: null,
    })
    .execute();
  await trx
    .updateTable('items')
    .set({ state: 'starting', run_id: runId, lease_expires_at: null })
    .where('id', '=', itemId)
    .execute();
  return getRunIn(trx, runId);
}
