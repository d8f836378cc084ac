import { sql, type Selectable } from 'kysely';
import {
  ConflictError,
  ForbiddenError,
  RunLostError,
  LiftoffError,
  isTerminal,
  type ItemState,
  type ReportRunBody,
  type Run,
} from '@liftoff/core';
import type { DialectName } from './database.js';
import type { Db } from './db.js';
import { preemptRun, type PreemptionOutcome } from './preemption.js';
import { getRunIn, runNotFound, toRun } from './runs.js';
import type { RunsTable } from './schema.js';
import { dropUploadTokensIn } from './uploadTokens.js';

type RunRow = Selectable<RunsTable> & {
  queue_name: string;
  entity_name: string;
  entity_id: string;
  entity_limit: number | null;
};
export type ReportOutcome = {
  /**
   * `entity_limited`, when known: whether the run's entity has a concurrency limit (read with the run), so a run's
   * end wakes just its queue, or every queue of the entity, without another read (routes/runs.ts afterReports).
   */
  run: Run & { entity_id: string; queue_id?: string; entity_limited?: boolean };
  preemption: PreemptionOutcome | null;
};

/**
 * Agents' status reports of many runs in one transaction (a sync): one statement reads and, on PostgreSQL, locks
 * all their rows, in id order so that two such batches cannot deadlock each other; each report is then checked as
 * its single call checks it, and the plain ones (anything but a preemption) are written together: one UPDATE of
 * the runs and one of their items for the whole batch. Each run's answer is its new state or the refusal its single
 * report would get; a refusal is decided before that run is written, so the others go on.
 */
export async function reportsIn(
  trx: Db,
  dialect: DialectName,
  reports: ReadonlyArray<{ runId: string; body: ReportRunBody }>,
  now: number,
  visible: (entityId: string) => boolean = () => true,
): Promise<Array<ReportOutcome | LiftoffError>> {
  const rows = await lockedRuns(trx, dialect, [...new Set(reports.map((r) => r.runId))]);
  // A run of an entity the caller may not see is "not found", as an unknown id (checked on the rows just read).
  for (const [id, row] of rows) if (!visible(row.entity_id)) rows.delete(id);
  const pending: RunWrite[] = [];
  const out: Array<ReportOutcome | LiftoffError> = [];
  for (const { runId, body } of reports) {
    try {
      out.push(await applyReport(trx, dialect, rows.get(runId), runId, body, now, pending));
    } catch (e) {
      if (!(e instanceof LiftoffError)) throw e;
      out.push(e);
    }
    // A second report of the same run in one batch sees what the first one wrote: its answer became the row.
    const after = out[out.length - 1];
    const before = rows.get(runId);
    if (before && after && !(after instanceof LiftoffError)) rows.set(runId, rowAfter(before, after.run));
  }
  await writeRuns(trx, dialect, pending);
  return out;
}

/** One plain report's writes, held until the batch's checks are done. */
interface RunWrite {
  runId: string;
  itemId: string;
  changes: Pick<
    RunRow,
    'status' | 'started_at' | 'ended_at' | 'exit_code' | 'error_stage' | 'error_message' | 'warning' | 'outputs_link'
  >;
}

function rowAfter(row: RunRow, run: Run): RunRow {
  return {
    ...row,
    status: run.status,
    started_at: run.started_at,
    ended_at: run.ended_at,
    exit_code: run.exit_code,
    error_stage: run.error_stage,
    error_message: run.error_message,
    warning: run.warning ?? null,
    outputs_link: run.outputs_link ?? null,
  };
}

/**
 * The held writes, whatever their number: a run reported twice in the batch is written once, with its last state.
 * Each column is a CASE over the run ids, cast to the column's type (PostgreSQL types parameters by their use, and
 * a bare parameter in a CASE arm would be text). On PostgreSQL the runs' UPDATE, the items' UPDATE and the drop of
 * ended runs' upload tokens are one statement (data-modifying WITH): each statement is a round trip and a socket
 * write, the largest part of the server's CPU in the batched API loop. SQLite has no data-modifying WITH, and its
 * statements cost no round trip, so there they stay three.
 */
async function writeRuns(trx: Db, dialect: DialectName, writes: readonly RunWrite[]): Promise<void> {
  const last = new Map(writes.map((w) => [w.runId, w]));
  if (!last.size) return;
  const runs = [...last.values()];
  const runIds = runs.map((w) => w.runId);
  const byRun = <K extends keyof RunWrite['changes']>(column: K, type: 'text' | 'bigint' | 'integer') =>
    sql<RunWrite['changes'][K]>`CASE ${sql.ref('id')} ${sql.join(
      runs.map((w) => sql`WHEN ${w.runId} THEN CAST(${w.changes[column]} AS ${sql.raw(type)})`),
      sql` `,
    )} END`;
  const byItem = (value: (w: RunWrite) => string | number | null, type: 'text' | 'bigint') =>
    sql<never>`CASE ${sql.ref('id')} ${sql.join(
      runs.map((w) => sql`WHEN ${w.itemId} THEN CAST(${value(w)} AS ${sql.raw(type)})`),
      sql` `,
    )} END`;
  const updateRuns = (db: Db) =>
    db
      .updateTable('runs')
      .set({
        status: byRun('status', 'text'),
        started_at: byRun('started_at', 'bigint'),
        ended_at: byRun('ended_at', 'bigint'),
        exit_code: byRun('exit_code', 'integer'),
        error_stage: byRun('error_stage', 'text'),
        error_message: byRun('error_message', 'text'),
        warning: byRun('warning', 'text'),
        outputs_link: byRun('outputs_link', 'text'),
      })
      .where('id', 'in', runIds);
  // A run that ended takes its upload tokens with it (uploadTokens.ts).
  const ended = runs.filter((w) => isTerminal(w.changes.status as ItemState)).map((w) => w.runId);
  const itemsSet = {
    state: byItem((w) => w.changes.status, 'text'),
    ended_at: byItem((w) => w.changes.ended_at, 'bigint'),
  };
  const itemIds = runs.map((w) => w.itemId);
  if (dialect === 'postgres') {
    await trx
      .with('updated_runs', (db) => updateRuns(db as unknown as Db).returning('runs.id'))
      .with('dropped_tokens', (db) =>
        db
          .deleteFrom('run_upload_tokens')
          .where(ended.length ? sql<boolean>`run_id IN (${sql.join(ended)})` : sql<boolean>`false`)
          .returning('run_id'),
      )
      .updateTable('items')
      .set(itemsSet)
      .where('id', 'in', itemIds)
      .execute();
    return;
  }
  await updateRuns(trx).execute();
  await trx.updateTable('items').set(itemsSet).where('id', 'in', itemIds).execute();
  await dropUploadTokensIn(trx, ended);
}

/**
 * Applies an agent's status report; terminal states are final and reports from other agents are refused. A
 * `preempted` report may requeue the item (see preemption.ts); `preemption` says what happened to it. Every refusal
 * is thrown before the run or its item is written. Inside the caller's transaction.
 */
export async function reportIn(
  trx: Db,
  dialect: DialectName,
  runId: string,
  body: ReportRunBody,
  now: number,
): Promise<ReportOutcome> {
  const pending: RunWrite[] = [];
  const outcome = await applyReport(
    trx,
    dialect,
    (await lockedRuns(trx, dialect, [runId])).get(runId),
    runId,
    body,
    now,
    pending,
  );
  await writeRuns(trx, dialect, pending);
  return outcome;
}

/**
 * The runs, with their queue's and entity's names. On PostgreSQL their rows stay locked until the transaction ends:
 * the reaper may be declaring one of them lost right now, and one of the two goes first, never both half-way. (On
 * SQLite the single connection runs one transaction at a time already.)
 */
async function lockedRuns(trx: Db, dialect: DialectName, ids: string[]): Promise<Map<string, RunRow>> {
  if (!ids.length) return new Map();
  const query = trx
    .selectFrom('runs')
    .innerJoin('queues', 'queues.id', 'runs.queue_id')
    .innerJoin('entities', 'entities.id', 'queues.entity_id')
    .selectAll('runs')
    .select([
      'queues.name as queue_name',
      'entities.name as entity_name',
      'entities.id as entity_id',
      'entities.max_concurrency as entity_limit',
    ])
    .where('runs.id', 'in', ids)
    .orderBy('runs.id');
  // NO KEY UPDATE: the lock an UPDATE of the row takes, so inserts referencing the run (log chunks) are not blocked.
  const rows = await (dialect === 'postgres' ? query.modifyEnd(sql`FOR NO KEY UPDATE OF runs`) : query).execute();
  return new Map(rows.map((r) => [r.id, r]));
}

async function applyReport(
  trx: Db,
  dialect: DialectName,
  run: RunRow | undefined,
  runId: string,
  body: ReportRunBody,
  now: number,
  pending: RunWrite[],
): Promise<ReportOutcome> {
  if (!run) throw runNotFound(runId);
  if (run.agent_id !== body.agent_id) throw new ForbiddenError(`Run "${runId}" is held by another agent.`);
  const current = run.status as ItemState;
  // Fencing: the lease was taken away, and the item may be running elsewhere; this agent must not write to it.
  if (current === 'lost') throw new RunLostError(runId);
  const asRun = (r: RunRow) => ({
    ...toRun(r),
    entity_id: r.entity_id,
    queue_id: r.queue_id,
    entity_limited: r.entity_limit !== null,
  });
  if (isTerminal(current)) {
    if (current === body.state) return { run: asRun(run), preemption: null };
    throw new ConflictError(`Run "${runId}" has already ended (${current}).`);
  }
  const warning = body.warning === undefined ? run.warning : body.warning;
  if (body.state === 'preempted' && current !== 'cancelling') {
    // The preemption path reads and writes the run and item itself: what is held for them is written first.
    await writeRuns(trx, dialect, pending.splice(0));
    const preemption = await preemptRun(trx, run, body, warning, now);
    return { run: await getRunIn(trx, runId), preemption };
  }
  // A cancel request wins over progress reports: the run stays `cancelling` until it ends, and a run preempted
  // while being cancelled ends `stopped` rather than being tried again.
  const reported: ItemState = body.state === 'preempted' ? 'stopped' : body.state;
  const next: ItemState = current === 'cancelling' && !isTerminal(reported) ? 'cancelling' : reported;
  const terminal = isTerminal(next);
  const changes = {
    status: next,
    started_at: body.state === 'running' && run.started_at === null ? now : run.started_at,
    ended_at: terminal ? now : null,
    exit_code: body.exit_code ?? run.exit_code,
    error_stage: body.error_stage ?? run.error_stage,
    error_message: body.error_message ?? run.error_message,
    warning,
    outputs_link: body.outputs_link ?? run.outputs_link,
  };
  pending.push({ runId, itemId: run.item_id, changes });
  // The run is what was read plus what is written: built here rather than read back.
  return { run: asRun({ ...run, ...changes }), preemption: null };
}
