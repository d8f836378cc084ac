import { sql, type Kysely } from 'kysely';
import type { ArtifactStore } from '../artifacts/types.js';
import type { DialectName } from './database.js';
import { deleteRunMetrics } from './metrics.js';
import type { Database } from './schema.js';
import { dropUploadTokensIn } from './uploadTokens.js';

/** Only ended items are ever pruned; pending, claimed, starting, running and cancelling ones never are. */
export const PRUNABLE_STATES = ['finished', 'failed', 'stopped', 'lost'] as const;

export interface RetentionPolicy {
  /** Prune items that ended longer ago than this (null: no age limit). */
  maxAgeMs: number | null;
  /** Keep at most this many ended items per queue, the most recently ended (null: no count limit). */
  keepPerQueue: number | null;
}

const BATCH = 500;
/** Advisory lock key of the pruner, so replicas do not prune the same rows at once. */
const PRUNE_LOCK = 0x4c494655;

/** Artifact-store keys deleted per sweep: one store call (S3 DeleteObjects takes up to 1,000) and one statement. */
const GARBAGE_BATCH = 1000;

/**
 * Deletes ended items beyond the policy together with their runs, logs, metrics and outputs, at most one batch per call so a large
 * backlog is worked off over several ticks without long transactions. Returns how many items went.
 */
export async function pruneEnded(
  db: Kysely<Database>,
  dialect: DialectName,
  now: number,
  policy: RetentionPolicy,
): Promise<number> {
  if (policy.maxAgeMs === null && policy.keepPerQueue === null) return 0;
  return db.transaction().execute(async (trx) => {
    if (dialect === 'postgres') {
      const { rows } = await sql<{ ok: boolean }>`SELECT pg_try_advisory_xact_lock(${PRUNE_LOCK}) AS ok`.execute(trx);
      if (!rows[0]?.ok) return 0;
    }
    const victims = new Set<string>();
    if (policy.maxAgeMs !== null) {
      const rows = await trx
        .selectFrom('items')
        .select('id')
        .where('state', 'in', PRUNABLE_STATES)
        .where('ended_at', '<', now - policy.maxAgeMs)
        .limit(BATCH)
        .execute();
      for (const r of rows) victims.add(r.id);
    }
    if (policy.keepPerQueue !== null) {
      const queues = await trx.selectFrom('queues').select('id').execute();
      for (const q of queues) {
        if (victims.size >= BATCH) break;
        const rows = await trx
          .selectFrom('items')
          .select('id')
          .where('queue_id', '=', q.id)
          .where('state', 'in', PRUNABLE_STATES)
          .orderBy('ended_at', 'desc')
          .orderBy('id', 'desc')
          .limit(BATCH)
          .offset(policy.keepPerQueue)
          .execute();
        for (const r of rows) victims.add(r.id);
      }
    }
    if (!victims.size) return 0;
    const ids = [...victims];
    const runIds = (await trx.selectFrom('runs').select('id').where('item_id', 'in', ids).execute()).map((r) => r.id);
    if (runIds.length) {
      await dropRunOutputs(trx, runIds, now);
      await trx.deleteFrom('log_chunks').where('run_id', 'in', runIds).execute();
      await deleteRunMetrics(trx, runIds);
      // Ended runs hold none (their end dropped them); deleted here all the same, so no row outlives its run.
      await dropUploadTokensIn(trx, runIds);
      await trx.deleteFrom('runs').where('id', 'in', runIds).execute();
    }
    // The state condition again: an item can only be here if it had ended, but never trust a stale read.
    const r = await trx.deleteFrom('items').where('id', 'in', ids).where('state', 'in', PRUNABLE_STATES).execute();
    return r.reduce((n, x) => n + Number(x.numDeletedRows), 0);
  });
}

/**
 * Drops the output records of `runIds` and queues their chunks' artifact-store keys for sweepArtifactGarbage. The
 * bytes cannot go in this transaction (the store is not the database), and deleting them first would leave listed
 * outputs without bytes if the transaction then failed; queued here, they are deleted only once it has committed.
 */
async function dropRunOutputs(trx: Kysely<Database>, runIds: string[], now: number): Promise<void> {
  const outputIds = trx.selectFrom('run_outputs').select('id').where('run_id', 'in', runIds);
  await trx
    .insertInto('artifact_garbage')
    .columns(['key', 'queued_at'])
    .expression(
      trx
        .selectFrom('run_output_chunks')
        .select(['key', sql<number>`${now}`.as('queued_at')])
        .where('output_id', 'in', outputIds),
    )
    .onConflict((oc) => oc.column('key').doNothing())
    .execute();
  await trx.deleteFrom('run_output_chunks').where('output_id', 'in', outputIds).execute();
  await trx.deleteFrom('run_outputs').where('run_id', 'in', runIds).execute();
  await trx.deleteFrom('run_output_commits').where('run_id', 'in', runIds).execute();
}

/**
 * Deletes queued artifact-store keys from the store, then their queue rows: at most one batch per call, like the
 * pruner. A store that fails keeps the rows, so the next sweep tries again. Returns how many keys went.
 */
export async function sweepArtifactGarbage(db: Kysely<Database>, artifacts: ArtifactStore): Promise<number> {
  const keys = (
    await db.selectFrom('artifact_garbage').select('key').orderBy('key').limit(GARBAGE_BATCH).execute()
  ).map((r) => r.key);
  if (!keys.length) return 0;
  await artifacts.delete(keys);
  await db.deleteFrom('artifact_garbage').where('key', 'in', keys).execute();
  return keys.length;
}
