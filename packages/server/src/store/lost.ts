import type { Db } from './db.js';
import { dropUploadTokensIn } from './uploadTokens.js';

/** Run states an agent holds: a run in one of these whose agent went silent is what the lease takes away. */
const LIVE_RUN_STATES = ['starting', 'running', 'cancelling'];

/** How many runs one reaper tick declares lost at most; the rest wait for the next tick (a second later). */
const BATCH = 200;

export interface LostRun {
  runId: string;
  queueId: string;
  /** The item went back to `pending` for another attempt (else it ended `lost` too). */
  requeued: boolean;
}

/**
 * The run lease: ends `lost` every live run whose agent has not been heard from (heartbeat or poll) since
 * `silentSince`, freeing its slot. Its item goes back to `pending` (a new attempt, no backoff: another agent takes
 * it) while its queue's `lost_retries` allow, unless a user was cancelling it; otherwise the item ends `lost`.
 * Each run's UPDATE is conditional on it still being live, so a report that got there first wins (runs.ts takes
 * the same row lock before it reads).
 */
export async function loseSilentRuns(trx: Db, now: number, silentSince: number): Promise<LostRun[]> {
  const candidates = await trx
    .selectFrom('runs')
    .innerJoin('agents', 'agents.id', 'runs.agent_id')
    .innerJoin('items', 'items.id', 'runs.item_id')
    .innerJoin('queues', 'queues.id', 'runs.queue_id')
    .select([
      'runs.id',
      'runs.item_id',
      'runs.queue_id',
      'runs.status',
      'runs.error_message',
      'agents.name as agent_name',
      'agents.last_heartbeat_at',
      'items.lost_runs',
      'queues.lost_retries',
    ])
    .where('runs.status', 'in', LIVE_RUN_STATES)
    .where('agents.last_heartbeat_at', '<', silentSince)
    .limit(BATCH)
    .execute();
  const lost: LostRun[] = [];
  for (const c of candidates) {
    const count = Number(c.lost_runs) + 1;
    const retries = Number(c.lost_retries);
    const requeued = c.status !== 'cancelling' && count <= retries;
    const silent = `agent "${c.agent_name}" was not heard from after ${new Date(Number(c.last_heartbeat_at)).toISOString()}: the run was declared lost`;
    const fate = requeued
      ? `; item requeued (lost retry ${count} of ${retries})`
      : retries > 0 && c.status !== 'cancelling'
        ? `; lost retries exhausted (queue lost_retries ${retries})`
        : '';
    const updated = await trx
      .updateTable('runs')
      .set({
        status: 'lost',
        ended_at: now,
        error_stage: 'agent',
        error_message: c.error_message ? `${c.error_message}; ${silent}${fate}` : `${silent}${fate}`,
      })
      .where('id', '=', c.id)
      .where('status', 'in', LIVE_RUN_STATES)
      .executeTakeFirst();
    if (!Number(updated.numUpdatedRows)) continue;
    await dropUploadTokensIn(trx, [c.id]);
    await trx
      .updateTable('items')
      .set(
        requeued
          ? {
              state: 'pending',
              claimed_by: null,
              claimed_at: null,
              lease_expires_at: null,
              ended_at: null,
              not_before: null,
              lost_runs: count,
            }
          : { state: 'lost', ended_at: now, lost_runs: count },
      )
      .where('id', '=', c.item_id)
      .where('run_id', '=', c.id)
      .execute();
    lost.push({ runId: c.id, queueId: c.queue_id, requeued });
  }
  return lost;
}
