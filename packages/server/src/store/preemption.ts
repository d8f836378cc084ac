import type { Selectable } from 'kysely';
import type { ReportRunBody } from '@liftoff/core';
import type { Db } from './db.js';
import type { RunsTable } from './schema.js';
import { dropUploadTokensIn } from './uploadTokens.js';

const HOUR_MS = 3_600_000;

/**
 * Wait before retry `n` (1, 2, …) after a preemption: the queue's backoff doubled per retry, so a spot pool that keeps
 * reclaiming nodes is not hammered. Capped at an hour, unless the queue asks for more than that to begin with (then
 * its own value, undoubled), so every allowed setting means what it says.
 */
export function preemptionBackoffMs(backoffSeconds: number, retry: number): number {
  const base = backoffSeconds * 1000;
  return Math.min(base * 2 ** (retry - 1), Math.max(base, HOUR_MS));
}

export interface PreemptionOutcome {
  /** The item went back to its queue (else it ended `failed`, its retries used up). */
  requeued: boolean;
  /** Set when the requeued item waits out a backoff; null when it is claimable at once. */
  notBefore: number | null;
}

/**
 * Ends a preempted run and decides its item's fate: back to `pending` (keeping priority and created_at, so its
 * place in line) after a backoff, or `failed` once the queue's `preemption_retries` requeues were spent. Runs in
 * the report's transaction, after the caller checked that the run is live and not being cancelled.
 */
export async function preemptRun(
  trx: Db,
  run: Selectable<RunsTable>,
  body: ReportRunBody,
  warning: string | null,
  now: number,
): Promise<PreemptionOutcome> {
  const q = await trx
    .selectFrom('items')
    .innerJoin('queues', 'queues.id', 'items.queue_id')
    .select(['items.preemptions', 'queues.preemption_retries', 'queues.preemption_backoff_seconds'])
    .where('items.id', '=', run.item_id)
    .executeTakeFirstOrThrow();
  const requeues = Number(q.preemptions);
  const retries = Number(q.preemption_retries);
  const count = requeues + 1;
  const requeued = requeues < retries;
  const reported = body.error_message ?? run.error_message;
  const exhausted = `preempted ${count} time${count > 1 ? 's' : ''}, retries exhausted (queue preemption_retries ${retries})`;
  await trx
    .updateTable('runs')
    .set({
      status: 'preempted',
      ended_at: now,
      exit_code: body.exit_code ?? run.exit_code,
      error_stage: body.error_stage ?? run.error_stage,
      error_message: requeued ? reported : reported ? `${reported}; ${exhausted}` : exhausted,
      warning,
    })
    .where('id', '=', run.id)
    .execute();
  // The preempted run has ended, requeued or not (a retry is a new run with tokens of its own).
  await dropUploadTokensIn(trx, [run.id]);
  if (!requeued) {
    await trx
      .updateTable('items')
      .set({ state: 'failed', ended_at: now, preemptions: count })
      .where('id', '=', run.item_id)
      .execute();
    return { requeued, notBefore: null };
  }
  const wait = preemptionBackoffMs(Number(q.preemption_backoff_seconds), count);
  const notBefore = wait > 0 ? now + wait : null;
  await trx
    .updateTable('items')
    .set({
      state: 'pending',
      claimed_by: null,
      claimed_at: null,
      lease_expires_at: null,
      ended_at: null,
      preemptions: count,
      not_before: notBefore,
    })
    .where('id', '=', run.item_id)
    .execute();
  return { requeued, notBefore };
}

/**
 * Makes requeued items whose backoff has passed claimable again, and returns their queues so their pollers are woken.
 * Claims then only need `not_before IS NULL` instead of comparing against the clock on every dispatch.
 */
export async function releaseDueBackoffs(trx: Db, now: number): Promise<string[]> {
  const rows = await trx
    .updateTable('items')
    .set({ not_before: null })
    .where('state', '=', 'pending')
    .where('not_before', 'is not', null)
    .where('not_before', '<=', now)
    .returning('queue_id')
    .execute();
  return rows.map((r) => r.queue_id);
}
