import type { Kysely, Selectable } from 'kysely';
import {
  ConflictError,
  ForbiddenError,
  NotFoundError,
  RunLostError,
  isTerminal,
  type ItemState,
  type ReportRunBody,
  type Run,
} from '@liftoff/core';
import { numOrNull, type Db } from './db.js';
import { lockRun } from './logs.js';
import { preemptRun, type PreemptionOutcome } from './preemption.js';
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

function toRun(r: Selectable<RunsTable> & { queue_name: string; entity_name: string }): Run {
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
  constructor(private readonly db: Kysely<Database>) {}

  async get(id: string): Promise<Run & { entity_id: string }> {
    return getRunIn(this.db, id);
  }

  async list(entityId: string, opts: { queueId?: string; limit: number }): Promise<Run[]> {
    let q = runQuery(this.db).where('entities.id', '=', entityId);
    if (opts.queueId) q = q.where('runs.queue_id', '=', opts.queueId);
    const rows = await q.orderBy('runs.created_at', 'desc').orderBy('runs.id').limit(opts.limit).execute();
    return rows.map(toRun);
  }

  async queueIdOf(runId: string): Promise<string> {
    const r = await this.db.selectFrom('runs').select('queue_id').where('id', '=', runId).executeTakeFirstOrThrow();
    return r.queue_id;
  }

  /** Those of `runIds` (runs an agent says it holds) that were declared lost while it held them: it must stop them. */
  async lostAmong(agentId: string, runIds: string[] | undefined): Promise<string[]> {
    return lostAmongIn(this.db, agentId, runIds);
  }

  /** Runs held by the agent that users asked to cancel. */
  async cancelsFor(agentId: string): Promise<string[]> {
    const rows = await this.db
      .selectFrom('runs')
      .select('id')
      .where('agent_id', '=', agentId)
      .where('status', '=', 'cancelling')
      .execute();
    return rows.map((r) => r.id);
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
    return this.db.transaction().execute(async (trx) => reportIn(trx, runId, body, now));
  }
}

/**
 * Runs.report inside the caller's transaction (a sync applies many in one). Every refusal is thrown before the
 * run or its item is written, so a caller may catch it and go on with its other entries in the same transaction.
 */
export async function reportIn(
  trx: Db,
  runId: string,
  body: ReportRunBody,
  now: number,
): Promise<{ run: Run; preemption: PreemptionOutcome | null }> {
  // The reaper may be declaring this run lost right now: one of the two goes first, never both half-way.
  await lockRun(trx, runId);
  const run = await trx.selectFrom('runs').selectAll().where('id', '=', runId).executeTakeFirst();
  if (!run) throw new NotFoundError(`Run "${runId}" not found.`);
  if (run.agent_id !== body.agent_id) throw new ForbiddenError(`Run "${runId}" is held by another agent.`);
  const current = run.status as ItemState;
  // Fencing: the lease was taken away, and the item may be running elsewhere; this agent must not write to it.
  if (current === 'lost') throw new RunLostError(runId);
  if (isTerminal(current)) {
    if (current === body.state) return { run: await getRunIn(trx, runId), preemption: null };
    throw new ConflictError(`Run "${runId}" has already ended (${current}).`);
  }
  const warning = body.warning === undefined ? run.warning : body.warning;
  if (body.state === 'preempted' && current !== 'cancelling') {
    const preemption = await preemptRun(trx, run, body, warning, now);
    return { run: await getRunIn(trx, runId), preemption };
  }
  // A cancel request wins over progress reports: the run stays `cancelling` until it ends, and a run preempted
  // while being cancelled ends `stopped` rather than being tried again.
  const reported: ItemState = body.state === 'preempted' ? 'stopped' : body.state;
  const next: ItemState = current === 'cancelling' && !isTerminal(reported) ? 'cancelling' : reported;
  const terminal = isTerminal(next);
  await trx
    .updateTable('runs')
    .set({
      status: next,
      started_at: body.state === 'running' && run.started_at === null ? now : run.started_at,
      ended_at: terminal ? now : null,
      exit_code: body.exit_code ?? run.exit_code,
      error_stage: body.error_stage ?? run.error_stage,
      error_message: body.error_message ?? run.error_message,
      warning,
    })
    .where('id', '=', runId)
    .execute();
  await trx
    .updateTable('items')
    .set({ state: next, ended_at: terminal ? now : null })
    .where('id', '=', run.item_id)
    .execute();
  return { run: await getRunIn(trx, runId), preemption: null };
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
