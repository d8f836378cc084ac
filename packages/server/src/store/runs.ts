import type { Kysely, Selectable } from 'kysely';
import { NotFoundError, type ItemState, type ReportRunBody, type Run, type RunListResponse } from '@liftoff/core';
import type { DialectName } from './database.js';
import { numOrNull, type Db } from './db.js';
import type { PreemptionOutcome } from './preemption.js';
import { reportIn } from './reports.js';
import { parseColumns, parseSort } from './runColumns.js';
import { listRuns, type RunListFilter } from './runQuery.js';
import type { Database, RunsTable } from './schema.js';

const ACTIVE_RUN_STATES: ItemState[] = ['starting', 'running', 'cancelling'];

function runQuery(db: Db) {
  return db
    .selectFrom('runs')
    .innerJoin('queues', 'queues.id', 'runs.queue_id')
    .innerJoin('entities', 'entities.id', 'queues.entity_id')
    .selectAll('runs')
    .select(['queues.name as queue_name', 'entities.name as entity_name', 'entities.id as entity_id']);
}

export function toRun(r: Selectable<RunsTable> & { queue_name: string; entity_name: string }): Run {
  return {
    id: r.id,
    item_id: r.item_id,
    queue: r.queue_name,
    entity: r.entity_name,
    agent_id: r.agent_id,
    status: r.status as ItemState,
    exit_code: numOrNull(r.exit_code),
    error_stage: r.error_stage as Run['error_stage'],
    error_message: r.error_message,
    created_at: Number(r.created_at),
    started_at: numOrNull(r.started_at),
    ended_at: numOrNull(r.ended_at),
    log_size: Number(r.log_size),
    warning: r.warning,
    outputs_link: r.outputs_link ?? null,
  };
}

/** What an unknown run id gets; a foreign one gets exactly the same (routes/runs.ts). */
export const runNotFound = (id: string): NotFoundError =>
  new NotFoundError(`Run "${id}" not found. List runs with "liftoff runs list".`);

/** A run by id, read through `db` (so inside the caller's transaction when it passes one). */
export async function getRunIn(db: Db, id: string): Promise<Run & { entity_id: string }> {
  const r = await runQuery(db).where('runs.id', '=', id).executeTakeFirst();
  if (!r) throw runNotFound(id);
  return { ...toRun(r), entity_id: r.entity_id };
}

/** Runs: one per started item attempt, with the status its agent reports. Creating one is dispatch.ts (ack). */
export class Runs {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly dialect: DialectName,
  ) {}

  async get(id: string): Promise<Run & { entity_id: string }> {
    return getRunIn(this.db, id);
  }

  /** One page of the runs list (runQuery.ts): filtered, with the chosen columns, sorted, after the cursor. */
  async list(
    filter: RunListFilter,
    opts: { columns?: string; sort?: string; cursor?: string; limit: number },
  ): Promise<RunListResponse> {
    return listRuns(this.db, this.dialect, filter, {
      columns: parseColumns(opts.columns),
      sort: parseSort(opts.sort),
      cursor: opts.cursor,
      limit: opts.limit,
    });
  }

  async queueIdOf(runId: string): Promise<string> {
    const r = await this.db.selectFrom('runs').select('queue_id').where('id', '=', runId).executeTakeFirstOrThrow();
    return r.queue_id;
  }

  /** Those of `runIds` (runs an agent says it holds) that were declared lost while it held them: it must stop them. */
  async lostAmong(agentId: string, runIds: string[] | undefined): Promise<string[]> {
    return lostAmongIn(this.db, agentId, runIds);
  }

  async activeOf(agentId: string): Promise<Run[]> {
    const rows = await runQuery(this.db)
      .where('runs.agent_id', '=', agentId)
      .where('runs.status', 'in', ACTIVE_RUN_STATES)
      .execute();
    return rows.map(toRun);
  }

  /**
   * Applies an agent's status report; terminal states are final and reports from other agents are refused. A
   * `preempted` report may requeue the item (see preemption.ts); `preemption` says what happened to it.
   */
  async report(
    runId: string,
    body: ReportRunBody,
    now: number,
  ): Promise<{ run: Run; preemption: PreemptionOutcome | null }> {
    return this.db.transaction().execute(async (trx) => reportIn(trx, this.dialect, runId, body, now));
  }
}

/** Runs.lostAmong through `db` (inside the caller's transaction when it passes one). */
export async function lostAmongIn(db: Db, agentId: string, runIds: string[] | undefined): Promise<string[]> {
  const ids = runIds ?? [];
  const lost: string[] = [];
  // In slices: SQLite takes at most 32,766 bound parameters per statement, and an agent may hold 100,000 runs.
  for (let i = 0; i < ids.length; i += 1000) {
    const rows = await db
      .selectFrom('runs')
      .select('id')
      .where('agent_id', '=', agentId)
      .where('status', '=', 'lost')
      .where('id', 'in', ids.slice(i, i + 1000))
      .execute();
    lost.push(...rows.map((r) => r.id));
  }
  return lost;
}
