import { sql, type Kysely } from 'kysely';
import { ConflictError, NotFoundError, isTerminal, type ItemState } from '@liftoff/core';
import type { DialectName } from './database.js';
import type { Db } from './db.js';
import type { Database } from './schema.js';

/** PostgreSQL's answer to a deadlock: another transaction won, this one was rolled back and may run again. */
const DEADLOCK = '40P01';
const ATTEMPTS = 3;

/** The item changed between the unlocked first read and the locked one: run again, knowing its run now. */
class RunAppeared extends Error {}

/**
 * Cancels an item: pending or claimed-but-unstarted items end `stopped` at once; started ones become `cancelling`
 * and the returned agent id must be told to stop the run.
 *
 * Lock order, on PostgreSQL: the run's row, then the item's, as a status report and the reaper's lost-run path
 * take them, so a cancel racing either waits instead of deadlocking. The state is decided on the item as read under
 * its lock: an ack committing meanwhile (claimed → starting, a new run) is seen, and never overwritten by `stopped`.
 */
export async function cancelItem(
  db: Kysely<Database>,
  dialect: DialectName,
  itemId: string,
  now: number,
): Promise<{ notifyAgent: string | null }> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await db.transaction().execute((trx) => cancelIn(trx, dialect, itemId, now));
    } catch (e) {
      const retry = e instanceof RunAppeared || (e as { code?: unknown }).code === DEADLOCK;
      if (!retry || attempt >= ATTEMPTS) throw e;
    }
  }
}

async function cancelIn(trx: Db, dialect: DialectName, itemId: string, now: number) {
  const postgres = dialect === 'postgres';
  const first = await trx.selectFrom('items').select('run_id').where('id', '=', itemId).executeTakeFirst();
  if (!first) throw new NotFoundError(`Item "${itemId}" not found.`);
  if (first.run_id && postgres)
    await sql`SELECT id FROM runs WHERE id = ${first.run_id} FOR NO KEY UPDATE`.execute(trx);
  const read = trx.selectFrom('items').selectAll().where('id', '=', itemId);
  const item = await (postgres ? read.modifyEnd(sql`FOR NO KEY UPDATE`) : read).executeTakeFirstOrThrow();
  // Acked since the first read: its run must be locked first, so start over.
  if (item.run_id !== first.run_id) throw new RunAppeared();
  const state = item.state as ItemState;
  if (isTerminal(state)) throw new ConflictError(`Item "${itemId}" has already ended (${state}).`);
  if (state === 'pending' || state === 'claimed') {
    await trx
      .updateTable('items')
      .set({ state: 'stopped', ended_at: now, lease_expires_at: null, not_before: null })
      .where('id', '=', itemId)
      .execute();
    return { notifyAgent: null };
  }
  if (item.run_id) await trx.updateTable('runs').set({ status: 'cancelling' }).where('id', '=', item.run_id).execute();
  await trx.updateTable('items').set({ state: 'cancelling' }).where('id', '=', itemId).execute();
  return { notifyAgent: item.claimed_by };
}
