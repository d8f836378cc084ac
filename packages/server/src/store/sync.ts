import type { Kysely } from 'kysely';
import { LiftoffError, NotFoundError, type ReportRunBody, type Run } from '@liftoff/core';
import { heartbeatIn, touchIn } from './agents.js';
import type { DialectName } from './database.js';
import { acksIn } from './acks.js';
import { retryDeadlocks } from './deadlocks.js';
import { reportsIn, type ReportOutcome } from './reports.js';
import { lostAmongIn } from './runs.js';
import type { Database } from './schema.js';

/** One entry's outcome: its value, or the refusal the single-item call would have thrown. */
export type EntryOutcome<T> = { ok: true; value: T } | { ok: false; error: LiftoffError };

export interface SyncInput {
  heartbeat?: { status: 'POLLING' | 'RUNNING'; current_jobs: number; run_ids?: string[] | undefined };
  /** Items claimed by the agent that it is starting. */
  acks: string[];
  /**
   * Without a heartbeat: whether to write the touch (Agents.touchDue). A touch within a tenth of a heartbeat interval
   * of the last one says nothing new; skipping it saved one statement in ten of the batched API loop on PostgreSQL.
   */
  touch?: boolean;
  reports: Array<{ runId: string; body: ReportRunBody }>;
  /** Whether the caller may see an entity's items and runs; the others' are answered "not found". */
  visible?: (entityId: string) => boolean;
}

export interface SyncOutcome {
  stopRuns: string[];
  acks: Array<EntryOutcome<Run>>;
  reports: Array<EntryOutcome<ReportOutcome>>;
}

/**
 * The transactional half of an agent's sync (routes/sync.ts): its acks, its status reports and its heartbeat (or,
 * without one, the touch any request of a live agent is) in one transaction. Acks and reports go through the batched
 * forms of the single-item calls (acksIn, reportsIn: a few statements for the whole batch, the same checks per
 * entry). Each entry's refusal is decided before that entry is written and answered for it alone; the others still
 * commit. Any other error (the database's) fails the whole batch and nothing of it is kept. Log appends are not
 * here: each is its own transaction (logs.ts).
 */
export async function applySync(
  db: Kysely<Database>,
  dialect: DialectName,
  agentId: string,
  input: SyncInput,
  now: number,
): Promise<SyncOutcome> {
  // A deadlock rolls the whole batch back; running it again is safe (nothing of it was kept).
  return retryDeadlocks(dialect, () =>
    db.transaction().execute(async (trx) => {
      const acked = await acksIn(trx, dialect, input.acks, agentId, now, input.visible);
      const acks = input.acks.map((id) => outcomeOf(acked.get(id) ?? new NotFoundError(`Item "${id}" not found.`)));
      const reports = (await reportsIn(trx, dialect, input.reports, now, input.visible)).map(outcomeOf);
      let stopRuns: string[] = [];
      if (input.heartbeat) {
        const hb = input.heartbeat;
        await heartbeatIn(trx, agentId, hb.status, hb.current_jobs, now);
        stopRuns = await lostAmongIn(trx, agentId, hb.run_ids);
      } else if (input.touch ?? true) await touchIn(trx, agentId, now);
      return { stopRuns, acks, reports };
    }),
  );
}

const outcomeOf = <T>(v: T | LiftoffError): EntryOutcome<T> =>
  v instanceof LiftoffError ? { ok: false, error: v } : { ok: true, value: v };
