import { sql, type Kysely } from 'kysely';
import { LiftoffError, NotFoundError, type LogKind, type ReportRunBody, type Run } from '@liftoff/core';
import { HEARTBEAT_LOST, heartbeatIn, touchIn } from './agents.js';
import type { DialectName } from './database.js';
import { acksIn } from './acks.js';
import { retryDeadlocks } from './deadlocks.js';
import { reportsIn, type ReportOutcome } from './reports.js';
import type { Logs } from './logs.js';
import { lostAmongIn } from './runs.js';
import type { Db } from './db.js';
import type { Database } from './schema.js';

/** One entry's outcome: its value, or the refusal the single-item call would have thrown. */
export type EntryOutcome<T> = { ok: true; value: T } | { ok: false; error: LiftoffError };

/** One log append of a sync: `data` at byte `offset` of run `runId`'s agent-facing log (Logs.append). */
export interface SyncLogAppend {
  runId: string;
  offset: number;
  data: string;
  kind: LogKind;
}

export interface SyncInput {
  /** Log appends, applied first and in order, each answered on its own (Logs.appendIn). */
  logs?: { appends: SyncLogAppend[]; store: Logs; cap: number };
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
  logs: Array<EntryOutcome<{ size: number }>>;
  acks: Array<EntryOutcome<Run>>;
  reports: Array<EntryOutcome<ReportOutcome>>;
}

/**
 * The transactional half of an agent's sync (routes/sync.ts): its acks, its status reports and its heartbeat (or,
 * without one, the touch any request of a live agent is) in one transaction. Acks and reports go through the batched
 * forms of the single-item calls (acksIn, reportsIn: a few statements for the whole batch, the same checks per
 * entry). Each entry's refusal is decided before that entry is written and answered for it alone; the others still
 * commit. Any other error (the database's) fails the whole batch and nothing of it is kept. Log appends come first,
 * in the same transaction.
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
      // Log appends first: a run's last lines and the report that ends it may come in one sync, and the lines must be
      // in the log when the run is seen ended (the agent sends its final note with its final report). In this
      // transaction rather than one each: on PostgreSQL a BEGIN and a COMMIT less per append, and a refused append
      // wrote nothing (Logs.appendIn), so it is that entry's answer alone.
      const logs: Array<EntryOutcome<{ size: number }>> = [];
      for (const l of input.logs?.appends ?? []) {
        const { store, cap } = input.logs as NonNullable<SyncInput['logs']>;
        try {
          logs.push({
            ok: true,
            value: await store.appendIn(trx, l.runId, agentId, l.offset, l.data, l.kind, cap, now, input.visible),
          });
        } catch (e) {
          if (!(e instanceof LiftoffError)) throw e;
          logs.push({ ok: false, error: e });
        }
      }
      const acked = await acksIn(trx, dialect, input.acks, agentId, now, input.visible);
      const acks = input.acks.map((id) => outcomeOf(acked.get(id) ?? new NotFoundError(`Item "${id}" not found.`)));
      const reports = (await reportsIn(trx, dialect, input.reports, now, input.visible)).map(outcomeOf);
      let stopRuns: string[] = [];
      if (input.heartbeat) {
        const hb = input.heartbeat;
        const combined = dialect === 'postgres' ? await heartbeatAndLostPg(trx, agentId, hb, now) : undefined;
        if (combined) stopRuns = combined;
        else {
          await heartbeatIn(trx, agentId, hb.status, hb.current_jobs, now);
          stopRuns = await lostAmongIn(trx, agentId, hb.run_ids);
        }
      } else if (input.touch ?? true) await touchIn(trx, agentId, now);
      return { stopRuns, logs, acks, reports };
    }),
  );
}

const outcomeOf = <T>(v: T | LiftoffError): EntryOutcome<T> =>
  v instanceof LiftoffError ? { ok: false, error: v } : { ok: true, value: v };

/**
 * PostgreSQL: heartbeatIn and lostAmongIn in one statement (a data-modifying WITH), one round trip less for nearly
 * every sync, since an agent heartbeats whenever its job count changes. Answers the runs to stop, or undefined when
 * the heartbeat updated no row (an unknown agent, or one that said it stopped): heartbeatIn then says which.
 */
async function heartbeatAndLostPg(
  trx: Db,
  agentId: string,
  hb: NonNullable<SyncInput['heartbeat']>,
  now: number,
): Promise<string[] | undefined> {
  const { rows } = await sql<{ updated: string; lost: string[] }>`
    WITH hb AS (
      UPDATE agents SET status = ${hb.status}, current_jobs = ${hb.current_jobs}, last_heartbeat_at = ${now},
        status_reason = NULL
      WHERE id = ${agentId} AND (status <> 'KILLED' OR status_reason = ${HEARTBEAT_LOST})
      RETURNING id
    )
    SELECT (SELECT count(*) FROM hb) AS updated,
      ARRAY(SELECT id FROM runs WHERE agent_id = ${agentId} AND status = 'lost' AND id = ANY(${hb.run_ids ?? []}::text[])) AS lost
  `.execute(trx);
  const row = rows[0];
  return row && Number(row.updated) > 0 ? row.lost : undefined;
}
