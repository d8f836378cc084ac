import { sql, type Kysely } from 'kysely';
import { HEARTBEAT_LOST, requeueClaimsOf } from './agents.js';
import type { DialectName } from './database.js';
import { SLOT_STATES } from './limits.js';
import { loseSilentRuns, type LostRun } from './lost.js';
import { releaseDueBackoffs } from './preemption.js';
import type { Database } from './schema.js';

export interface ReapResult {
  /** Queues that got items back (expired leases, dead agents' claims, ended backoffs) and should wake their pollers. */
  queueIds: string[];
  killedAgents: string[];
  /** Runs declared lost this tick (their agent silent since `lostSince`); their queues are in `queueIds`. */
  lostRuns: LostRun[];
}

/** Advisory lock key of the reaper ("LIFT" in ASCII). */
const REAPER_LOCK = 0x4c494654;

/**
 * Returns expired leases to their queues, makes requeued items whose backoff has passed claimable, marks agents
 * silent since `silentSince` as KILLED (heartbeat lost), handing their unstarted claims back, and declares the runs
 * of agents silent since `lostSince` (earlier still) lost (lost.ts). Every statement is conditional, so replicas may
 * run it concurrently.
 */
export async function reap(
  db: Kysely<Database>,
  dialect: DialectName,
  now: number,
  silentSince: number,
  lostSince: number,
): Promise<ReapResult> {
  return db.transaction().execute(async (trx) => {
    // Replicas reap on the same tick; one at a time avoids lock waits and deadlocks between their UPDATEs (the
    // statements would stay correct without it). The lock ends with the transaction.
    if (dialect === 'postgres') {
      const { rows } = await sql<{ ok: boolean }>`SELECT pg_try_advisory_xact_lock(${REAPER_LOCK}) AS ok`.execute(trx);
      if (!rows[0]?.ok) return { queueIds: [], killedAgents: [], lostRuns: [] };
    }
    const expired = await trx
      .updateTable('items')
      .set({ state: 'pending', claimed_by: null, claimed_at: null, lease_expires_at: null })
      .where('state', '=', 'claimed')
      .where('lease_expires_at', '<', now)
      .returning('queue_id')
      .execute();
    const dead = await trx
      .updateTable('agents')
      .set({ status: 'KILLED', status_reason: HEARTBEAT_LOST })
      .where('status', '!=', 'KILLED')
      .where('last_heartbeat_at', '<', silentSince)
      .returning('id')
      .execute();
    const deadIds = dead.map((d) => d.id);
    const requeued = await requeueClaimsOf(trx, deadIds);
    const dueBackoffs = await releaseDueBackoffs(trx, now);
    const lostRuns = await loseSilentRuns(trx, now, lostSince);
    // Runs of a dead agent stop holding concurrency slots (limits.ts), so queues they held may dispatch again.
    const freed = deadIds.length
      ? await trx
          .selectFrom('items')
          .select('queue_id')
          .distinct()
          .where('claimed_by', 'in', deadIds)
          .where('state', 'in', SLOT_STATES)
          .execute()
      : [];
    return {
      queueIds: [
        ...new Set([
          ...expired.map((e) => e.queue_id),
          ...requeued,
          ...dueBackoffs,
          ...freed.map((f) => f.queue_id),
          ...lostRuns.map((l) => l.queueId),
        ]),
      ],
      killedAgents: deadIds,
      lostRuns,
    };
  });
}
