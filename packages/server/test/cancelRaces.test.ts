import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { LiftoffClient } from '@liftoff/core';
import { pgAvailable } from '../../../test/helpers/postgres.js';
import { startBackendServer, type BackendServer } from './factory.js';

const spec = { source: { type: 'git' as const, url: 'https://git.example.com/x.git' }, entry_point: ['true'] };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Cancels racing an agent's acks and status reports of the same item, on PostgreSQL, where these run side by side
 * and take row locks of items and runs (SQLite runs one transaction at a time, so no such race exists there). A
 * second connection plays the other side of each race: it takes the locks the racing call takes, in its order,
 * and holds them while the API call under test runs into them; it moves on only once that call waits on a lock,
 * so the interleaving is the one under test every time.
 */
describe.skipIf(!pgAvailable)('cancels racing acks and reports on postgres', () => {
  let b: BackendServer;
  let c: LiftoffClient;
  let other: pg.Client | undefined;
  beforeAll(async () => {
    b = await startBackendServer('postgres');
    c = b.client;
    await c.registerAgent({
      id: 'racer',
      name: 'racer',
      entity: 'default',
      hostname: 'h',
      queues: ['default'],
      version: 't',
      max_jobs: 10,
      protocol_version: 2,
    });
  });
  afterEach(async () => {
    await other?.end().catch(() => undefined);
    other = undefined;
  });
  afterAll(async () => {
    await b?.close();
  });

  const connect = async () => {
    other = new pg.Client({ connectionString: b.databaseUrl });
    await other.connect();
    return other;
  };
  /** Until another session of this database waits on a row lock (the API call under test reached it). */
  const untilSomeoneWaits = async (db: pg.Client) => {
    for (;;) {
      const r = await db.query(
        `SELECT count(*)::int AS n FROM pg_stat_activity
         WHERE datname = current_database() AND pid <> pg_backend_pid() AND wait_event_type = 'Lock'`,
      );
      if ((r.rows[0] as { n: number }).n > 0) return;
      await sleep(20);
    }
  };
  const claimed = async () => {
    const item = await c.push('default', 'default', { spec });
    const got = await c.poll('racer', { queues: ['default'], max_items: 1, wait_ms: 0 });
    expect(got.items.map((i) => i.item_id)).toEqual([item.id]);
    return item.id;
  };

  it('takes the run, then the item, as a status report does: a cancel waits instead of deadlocking', async () => {
    const itemId = await claimed();
    const run = (await c.ackItem(itemId, 'racer')).id;
    await c.reportRun(run, { agent_id: 'racer', state: 'running' });
    const db = await connect();
    // A report of the run in progress: its run row is locked, its item row is next.
    await db.query('BEGIN');
    await db.query('SELECT id FROM runs WHERE id = $1 FOR NO KEY UPDATE', [run]);
    const cancel = c.cancelItem(itemId);
    await untilSomeoneWaits(db);
    // Taking the item lock cancel took first (if it did) is a deadlock: one of the two would be rolled back.
    await db.query("UPDATE items SET state = 'running' WHERE id = $1", [itemId]);
    await db.query('COMMIT');
    await cancel;
    expect((await c.getRun(run)).status).toBe('cancelling');
    expect((await c.getItem(itemId)).state).toBe('cancelling');
  });

  it('acks under the item lock: an ack waiting on a cancel sees it, and never revives the item', async () => {
    const itemId = await claimed();
    const db = await connect();
    // A cancel in progress: the item row is locked, and it is about to end the unstarted item.
    await db.query('BEGIN');
    await db.query('SELECT id FROM items WHERE id = $1 FOR NO KEY UPDATE', [itemId]);
    const ack = c.sync('racer', { acks: [{ item_id: itemId }] });
    await untilSomeoneWaits(db);
    await db.query("UPDATE items SET state = 'stopped', ended_at = 1 WHERE id = $1", [itemId]);
    await db.query('COMMIT');
    const answer = (await ack).acks[0];
    expect(answer?.error?.code).toBe('CONFLICT');
    const item = await c.getItem(itemId);
    expect(item.state).toBe('stopped');
    expect(item.run_id).toBeNull();
  });

  it('starts over when the item was acked meanwhile, so the new run is locked before the item', async () => {
    const itemId = await claimed();
    const db = await connect();
    // An ack in progress holds the item; the cancel's first read still sees no run.
    await db.query('BEGIN');
    await db.query('SELECT id FROM items WHERE id = $1 FOR NO KEY UPDATE', [itemId]);
    const cancel = c.cancelItem(itemId);
    await untilSomeoneWaits(db);
    // The ack commits: a run for the item, which is starting now.
    await db.query(
      `INSERT INTO runs (id, item_id, queue_id, agent_id, status, created_at)
       SELECT 'appeared', id, queue_id, 'racer', 'starting', 1 FROM items WHERE id = $1`,
      [itemId],
    );
    await db.query("UPDATE items SET state = 'starting', run_id = 'appeared', lease_expires_at = NULL WHERE id = $1", [
      itemId,
    ]);
    await db.query('COMMIT');
    // Ending the item `stopped` here would strand a started run; the cancel asks the run to stop instead.
    expect((await cancel).state).toBe('cancelling');
    expect((await c.getRun('appeared')).status).toBe('cancelling');
  });
});
