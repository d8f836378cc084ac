import { sql } from 'kysely';
import { randomBytes } from 'node:crypto';
import { ConflictError, NotFoundError, type LiftoffError, type Run } from '@liftoff/core';
import type { DialectName } from './database.js';
import type { Db } from './db.js';
import { getRunIn } from './runs.js';

/** Run ids are short enough to type: 8 characters of [a-z0-9]. */
const newRunId = (): string =>
  randomBytes(6)
    .toString('base64url')
    .toLowerCase()
    .replace(/[^a-z0-9]/g, 'x');

export type AckedRun = Run & { entity_id: string };

/**
 * The agent confirms it is starting claimed items: each gets its run, and its lease ends. One read of the items,
 * one INSERT of all new runs and one UPDATE of all their items, whatever the batch size (a sync acks a poll's
 * worth at once). Each item's answer is its run or the refusal its single ack would get; refusals are decided
 * before anything is written, so the caller's transaction goes on with the others. An item of an entity the caller
 * may not see (`visible`) is "not found", as an unknown id: checked on the rows read here, with no read of its own.
 * Inside the caller's transaction.
 */
export async function acksIn(
  trx: Db,
  dialect: DialectName,
  itemIds: readonly string[],
  agentId: string,
  now: number,
  visible: (entityId: string) => boolean = () => true,
): Promise<Map<string, AckedRun | LiftoffError>> {
  const out = new Map<string, AckedRun | LiftoffError>();
  const ids = [...new Set(itemIds)];
  if (!ids.length) return out;
  const read = trx
    .selectFrom('items')
    .innerJoin('queues', 'queues.id', 'items.queue_id')
    .innerJoin('entities', 'entities.id', 'queues.entity_id')
    .select([
      'items.id',
      'items.queue_id',
      'items.state',
      'items.claimed_by',
      'items.run_id',
      'queues.name as queue_name',
      'entities.name as entity_name',
      'entities.id as entity_id',
      // The run's name, for its row (the search index, migration 0023); the spec is read as json, which is cheaper
      // to parse than jsonb.
      dialect === 'postgres'
        ? sql<string | null>`items.spec::json ->> 'name'`.as('name')
        : sql<string | null>`json_extract(items.spec, '$.name')`.as('name'),
    ])
    .where('items.id', 'in', ids)
    .orderBy('items.id');
  // Locked (PostgreSQL), in id order: a cancel committing meanwhile is seen here, and never overwritten by the
  // `starting` below; NO KEY, so the new runs' foreign keys to these items do not wait on it.
  const items = await (dialect === 'postgres' ? read.modifyEnd(sql`FOR NO KEY UPDATE OF items`) : read).execute();
  const byId = new Map(items.map((i) => [i.id, i]));
  const starting: Array<{ itemId: string; runId: string }> = [];
  for (const id of ids) {
    const item = byId.get(id);
    if (!item || !visible(item.entity_id)) out.set(id, new NotFoundError(`Item "${id}" not found.`));
    // A retried ack (the first answer was lost) gets the same run back instead of an error.
    else if (item.claimed_by === agentId && item.run_id && item.state === 'starting')
      out.set(id, await getRunIn(trx, item.run_id));
    else if (item.state !== 'claimed' || item.claimed_by !== agentId)
      out.set(
        id,
        new ConflictError(
          `Item "${id}" is no longer claimed by this agent (state ${item.state}); it was cancelled or its lease expired.`,
        ),
      );
    else starting.push({ itemId: id, runId: newRunId() });
  }
  if (!starting.length) return out;
  const newRuns = starting.map(({ itemId, runId }) => ({
    id: runId,
    item_id: itemId,
    queue_id: (byId.get(itemId) as (typeof items)[number]).queue_id,
    agent_id: agentId,
    status: 'starting' as const,
    exit_code: null,
    error_stage: null,
    error_message: null,
    created_at: now,
    started_at: null,
    ended_at: null,
    name: (byId.get(itemId) as (typeof items)[number]).name,
  }));
  const runIdOf = sql<string>`CASE ${sql.ref('id')} ${sql.join(
    starting.map((s) => sql`WHEN ${s.itemId} THEN ${s.runId}`),
    sql` `,
  )} END`;
  const startingIds = starting.map((s) => s.itemId);
  const itemsSet = { state: 'starting', run_id: runIdOf, lease_expires_at: null };
  if (dialect === 'postgres') {
    // One statement (data-modifying WITH): each is a round trip on PostgreSQL (see reports.ts writeRuns).
    await trx
      .with('new_runs', (db) => db.insertInto('runs').values(newRuns).returning('id'))
      .updateTable('items')
      .set(itemsSet)
      .where('id', 'in', startingIds)
      .execute();
  } else {
    await trx.insertInto('runs').values(newRuns).execute();
    await trx.updateTable('items').set(itemsSet).where('id', 'in', startingIds).execute();
  }
  // The new runs are exactly what was inserted: built here rather than read back.
  for (const { queue_id: _q, name: _n, ...row } of newRuns) {
    const item = byId.get(row.item_id) as (typeof items)[number];
    out.set(row.item_id, {
      ...row,
      queue: item.queue_name,
      entity: item.entity_name,
      entity_id: item.entity_id,
      log_size: 0,
      warning: null,
      outputs_link: null,
    });
  }
  return out;
}

/** One item's ack (the single-item call of agent protocol 1), inside the caller's transaction. */
export async function ackIn(
  trx: Db,
  dialect: DialectName,
  itemId: string,
  agentId: string,
  now: number,
): Promise<AckedRun> {
  const answer = (await acksIn(trx, dialect, [itemId], agentId, now)).get(itemId);
  if (!answer || answer instanceof Error) throw answer ?? new NotFoundError(`Item "${itemId}" not found.`);
  return answer;
}
