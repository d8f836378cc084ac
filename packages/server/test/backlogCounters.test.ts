import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import fc from 'fast-check';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LiftoffClient, LiftoffError, readCredentials, type PriorityName } from '@liftoff/core';
import { BACKENDS, pgAvailable } from '../../../test/helpers/postgres.js';
import { until } from '../../../test/helpers/procs.js';
import { startBackendServer, type BackendServer } from './factory.js';

/**
 * Issue 20: the backlog counters (migration 0012, kept by triggers) must equal COUNT(*) over the items after any
 * interleaving of pushes, claims, acks, reports (finished, failed, preempted), cancels, releases, agent stops and
 * re-registrations, expired leases and lost runs, and queue deletion; on PostgreSQL with two replicas writing at
 * once and the deltas folded while they write. Random workloads (fast-check, few bounded runs), each op batch sent
 * concurrently; a refusal (4xx: an item taken meanwhile) is part of the game, a 5xx (say a deadlock) fails.
 */
const ACTIVE = `('claimed', 'starting', 'running', 'cancelling')`;
const COMPARE = `
  SELECT 'truth' AS src, queue_id, priority,
    SUM(CASE WHEN state = 'pending' THEN 1 ELSE 0 END) AS p, SUM(CASE WHEN state IN ${ACTIVE} THEN 1 ELSE 0 END) AS a
  FROM items GROUP BY queue_id, priority
  UNION ALL
  SELECT 'counter' AS src, queue_id, priority, SUM(pending) AS p, SUM(active) AS a FROM (
    SELECT queue_id, priority, pending, active FROM queue_backlog
    UNION ALL SELECT queue_id, priority, pending, active FROM queue_backlog_deltas
  ) AS c GROUP BY queue_id, priority`;

type Row = { src: string; queue_id: string; priority: number; p: number | string; a: number | string };

const SPEC = { source: { type: 'git' as const, url: 'https://git.example.com/x.git' }, entry_point: ['true'] };
const PRIORITIES: PriorityName[] = ['critical', 'high', 'medium', 'low'];
const AGENTS = ['a0', 'a1', 'a2'];
const QUEUES = ['q1', 'q2'];
const LEASE_MS = 10_000;
const HEARTBEAT_MS = 10_000;
const LOST_MS = 100_000;

type Op =
  | { op: 'push'; queue: number; priority: number }
  | { op: 'poll'; agent: number; max: number }
  | { op: 'ack'; pick: number }
  | { op: 'report'; pick: number; state: 'running' | 'finished' | 'failed' | 'preempted' }
  | { op: 'cancel'; pick: number }
  | { op: 'release'; pick: number }
  | { op: 'stopped'; agent: number }
  | { op: 'register'; agent: number }
  | { op: 'advance'; ms: number }
  | { op: 'churnQueue' };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ op: fc.constant('push' as const), queue: fc.nat(1), priority: fc.nat(3) }) },
  {
    weight: 5,
    arbitrary: fc.record({ op: fc.constant('poll' as const), agent: fc.nat(2), max: fc.integer({ min: 1, max: 3 }) }),
  },
  { weight: 6, arbitrary: fc.record({ op: fc.constant('ack' as const), pick: fc.nat() }) },
  {
    weight: 4,
    arbitrary: fc.record({
      op: fc.constant('report' as const),
      pick: fc.nat(),
      state: fc.constantFrom('running' as const, 'finished' as const, 'failed' as const, 'preempted' as const),
    }),
  },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('cancel' as const), pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('release' as const), pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('stopped' as const), agent: fc.nat(2) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('register' as const), agent: fc.nat(2) }) },
  {
    weight: 1,
    arbitrary: fc.record({ op: fc.constant('advance' as const), ms: fc.constantFrom(LEASE_MS + 1, LOST_MS + 1) }),
  },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('churnQueue' as const) }) },
);

for (const backend of BACKENDS) {
  describe.skipIf(backend === 'postgres' && !pgAvailable)(`backlog counters on ${backend}`, () => {
    let b: BackendServer;
    let clock = Date.now();
    let clients: LiftoffClient[];
    let query: (sql: string) => Promise<Row[]>;
    let closeQuery: () => Promise<void>;
    const items: string[] = [];
    const claims: Array<{ item: string; agent: string }> = [];
    const runs: Array<{ run: string; item: string; agent: string }> = [];
    let churned = 0;

    beforeAll(async () => {
      const settings = {
        leaseMs: LEASE_MS,
        heartbeatIntervalMs: HEARTBEAT_MS,
        runLostAfterMs: LOST_MS,
        reapIntervalMs: 25,
      };
      b = await startBackendServer(backend, settings, { now: () => clock });
      const key = b.client;
      // Two replicas writing at once on PostgreSQL; SQLite has one server.
      const second = backend === 'postgres' ? await b.restart() : b.server;
      const apiKey = readCredentials(join(b.home, '.config', 'liftoff', 'credentials'))?.api_key ?? '';
      clients = [key, new LiftoffClient({ baseUrl: second.url, apiKey })];
      await key.createQueue('default', {
        name: 'q1',
        resource: 'local-process',
        prioritization_mode: 'V0',
        lost_retries: 1,
        preemption_retries: 2,
        preemption_backoff_seconds: 0,
      });
      await key.createQueue('default', {
        name: 'q2',
        resource: 'local-process',
        prioritization_mode: 'V0',
        max_concurrency: 2,
        preemption_retries: 1,
        preemption_backoff_seconds: 5,
      });
      for (const a of AGENTS) await register(key, a);
      if (backend === 'postgres') {
        const c = new pg.Client({ connectionString: b.databaseUrl });
        await c.connect();
        query = async (s) => (await c.query<Row>(s)).rows;
        closeQuery = () => c.end();
      } else {
        const db = new BetterSqlite3(join(b.dataDir, 'liftoff.db'), { readonly: true });
        query = async (s) => db.prepare(s).all() as Row[];
        closeQuery = async () => {
          db.close();
        };
      }
    });
    afterAll(async () => {
      await closeQuery?.();
      await b?.close();
    });

    const register = (c: LiftoffClient, id: string) =>
      c.registerAgent({ id, name: id, entity: 'default', hostname: 'h', queues: QUEUES, version: 't', max_jobs: 3 });
    /** One of the last few entries (older ones have mostly moved on, so ops on them would only be refused). */
    const pick = <T>(list: T[], i: number): T | undefined =>
      list.length ? list[list.length - 1 - (i % Math.min(list.length, 6))] : undefined;

    async function apply(o: Op, c: LiftoffClient): Promise<void> {
      switch (o.op) {
        case 'push': {
          const it = await c.push('default', QUEUES[o.queue] ?? 'q1', { spec: SPEC, priority: PRIORITIES[o.priority] });
          items.push(it.id);
          return;
        }
        case 'poll': {
          const agent = AGENTS[o.agent] ?? 'a0';
          const r = await c.poll(agent, { queues: QUEUES, max_items: o.max, wait_ms: 0 });
          for (const it of r.items) claims.push({ item: it.item_id, agent });
          return;
        }
        case 'ack': {
          const cl = pick(claims, o.pick);
          if (!cl) return;
          const run = await c.ackItem(cl.item, cl.agent);
          runs.push({ run: run.id, item: cl.item, agent: cl.agent });
          return;
        }
        case 'report': {
          const r = pick(runs, o.pick);
          if (r) await c.reportRun(r.run, { agent_id: r.agent, state: o.state });
          return;
        }
        case 'cancel': {
          const id = pick(items, o.pick);
          if (id) await c.cancelItem(id);
          return;
        }
        case 'release': {
          const cl = pick(claims, o.pick);
          if (cl) await c.releaseItem(cl.item, cl.agent);
          return;
        }
        case 'stopped':
          return c.agentStopped(AGENTS[o.agent] ?? 'a0');
        case 'register':
          await register(c, AGENTS[o.agent] ?? 'a0');
          return;
        case 'advance':
          // Leases expire, or agents go silent long enough to be KILLED and lose their runs: the reaper (every
          // 25 ms) does it while the other ops of the batch run.
          clock += o.ms;
          await new Promise((r) => setTimeout(r, 60));
          return;
        case 'churnQueue': {
          const name = `tmp${churned++}`;
          await c.createQueue('default', { name, resource: 'local-process' });
          const first = await c.push('default', name, { spec: SPEC });
          await c.push('default', name, { spec: SPEC });
          await c.cancelItem(first.id);
          await c.deleteQueue('default', name);
          return;
        }
      }
    }

    async function compare(): Promise<void> {
      const rows = await query(COMPARE);
      const table = (src: string) =>
        Object.fromEntries(
          rows
            .filter((r) => r.src === src && (Number(r.p) !== 0 || Number(r.a) !== 0))
            .map((r) => [`${r.queue_id}/${r.priority}`, [Number(r.p), Number(r.a)]]),
        );
      expect(table('counter')).toEqual(table('truth'));
    }

    it('match COUNT(*) after random concurrent workloads', async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.array(fc.array(opArb, { minLength: 4, maxLength: 8 }), { minLength: 6, maxLength: 12 }),
          async (batches) => {
            for (const batch of batches) {
              // Cancels go after the batch, one by one: a cancel racing its run's report can deadlock on PostgreSQL
              // today (Items.cancel locks the item then the run, Runs.report the run then the item), which is not
              // what this test is about. Everything else in the batch runs at once.
              const together = batch.filter((o) => o.op !== 'cancel');
              const results = await Promise.allSettled(
                together.map((o, i) => apply(o, clients[i % clients.length] as LiftoffClient)),
              );
              for (const o of batch.filter((x) => x.op === 'cancel'))
                results.push(...(await Promise.allSettled([apply(o, clients[0] as LiftoffClient)])));
              for (const r of results) {
                if (r.status === 'fulfilled') continue;
                const e = r.reason as unknown;
                // Refusals are expected (the item moved on meanwhile); anything else is a bug.
                if (!(e instanceof LiftoffError) || e.httpStatus >= 500) throw e;
              }
            }
            // Let a reaper tick that began during the last batch finish before comparing.
            await new Promise((r) => setTimeout(r, 60));
            await compare();
          },
        ),
        { numRuns: 4, endOnFailure: true },
      );
      // The queue views read the counters: they agree with a count too.
      for (const name of QUEUES) {
        const q = await clients[0]?.getQueue('default', name);
        const truth = await query(
          `SELECT 'x' AS src, '' AS queue_id, 0 AS priority, SUM(CASE WHEN i.state = 'pending' THEN 1 ELSE 0 END) AS p, SUM(CASE WHEN i.state IN ${ACTIVE} THEN 1 ELSE 0 END) AS a FROM items i JOIN queues q ON q.id = i.queue_id WHERE q.name = '${name}'`,
        );
        expect({ pending: q?.pending, running: q?.running }).toEqual({
          pending: Number(truth[0]?.p ?? 0),
          running: Number(truth[0]?.a ?? 0),
        });
      }
      if (backend === 'postgres') {
        // Folding moves every delta into the counters without changing a sum.
        await until(
          async () =>
            Number(
              (
                await query(
                  `SELECT 'x' AS src, '' AS queue_id, 0 AS priority, COUNT(*) AS p, 0 AS a FROM queue_backlog_deltas`,
                )
              )[0]?.p,
            ) === 0
              ? true
              : undefined,
          10_000,
        );
        await compare();
      }
    });
  });
}

/** Undoes migration 0012, so the next start runs it over rows written without counters (as before the upgrade). */
/** And 0023 (run search), 0022 (sweeps), 0021 (artifact garbage), 0020 (log lines), 0019 (cursor indexes), 0018 (upload tokens), 0017, 0015, 0014. */
const UNDO_0023: Record<string, string> = {
  sqlite: `DROP TRIGGER runs_search_insert; DROP TRIGGER runs_search_delete; DROP TRIGGER runs_search_update;
    DROP TABLE run_search_text; DROP TABLE run_search_rows; ALTER TABLE runs DROP COLUMN name;
    DELETE FROM kysely_migration WHERE name = '0023_run_search'`,
  postgres: `DROP INDEX IF EXISTS runs_search_trgm; ALTER TABLE runs DROP COLUMN name;
    DELETE FROM kysely_migration WHERE name = '0023_run_search'`,
};
const UNDO_0022 = `DROP TABLE sweep_trials; DROP TABLE sweeps; DROP TABLE controller_leases;
    DELETE FROM kysely_migration WHERE name = '0022_sweeps'`;
const UNDO_0021 = `DROP TABLE artifact_garbage; DELETE FROM kysely_migration WHERE name = '0021_artifact_garbage';
    ${UNDO_0022}`;
const UNDO_0020 = `DROP INDEX log_chunks_lines; ALTER TABLE log_chunks DROP COLUMN newlines;
    DELETE FROM kysely_migration WHERE name = '0020_log_lines'; ${UNDO_0021}`;
const UNDO_0019 = `DROP INDEX runs_agent_created; DROP INDEX agents_entity_id;
    DELETE FROM kysely_migration WHERE name = '0019_list_cursors'; ${UNDO_0020}`;
const UNDO_0018 = `DROP TABLE run_upload_tokens; DELETE FROM kysely_migration WHERE name = '0018_run_upload_tokens';
    ${UNDO_0019}`;
const UNDO_0017 = `ALTER TABLE runs DROP COLUMN outputs_link; DELETE FROM kysely_migration WHERE name = '0017_run_outputs_link';
    ${UNDO_0018}`;
const UNDO_0015 = `DROP INDEX runs_queue_created; DROP INDEX runs_created; DROP INDEX runs_queue_status_created;
    DROP INDEX runs_status_created; CREATE INDEX runs_queue ON runs (queue_id, created_at);
    DELETE FROM kysely_migration WHERE name = '0015_runs_list'; ${UNDO_0017}`;
const UNDO_0014 = `DROP TABLE run_outputs; DROP TABLE run_output_chunks; DROP TABLE run_output_commits;
    DROP TABLE artifact_chunks; DELETE FROM kysely_migration WHERE name = '0014_outputs'; ${UNDO_0015}`;
/** Back to the schema before 0012 (and the migrations after it, which kysely would otherwise find out of order). */
const UNDO_0012: Record<string, string> = {
  sqlite: `DROP TRIGGER items_backlog_insert; DROP TRIGGER items_backlog_delete; DROP TRIGGER items_backlog_update;
    DROP TABLE queue_backlog; DROP TABLE queue_backlog_deltas;
    DELETE FROM kysely_migration WHERE name = '0012_backlog_counters';
    ALTER TABLE items DROP COLUMN pushed; DELETE FROM kysely_migration WHERE name = '0013_item_pushed';
    DROP TABLE job_aliases; DROP TABLE job_versions; DROP TABLE jobs; DELETE FROM kysely_migration WHERE name = '0016_jobs';
    ${UNDO_0014}; ${UNDO_0023.sqlite}`,
  postgres: `DROP TRIGGER items_backlog ON items; DROP FUNCTION liftoff_backlog_delta();
    DROP TABLE queue_backlog; DROP TABLE queue_backlog_deltas;
    DELETE FROM kysely_migration WHERE name = '0012_backlog_counters';
    ALTER TABLE items DROP COLUMN pushed; DELETE FROM kysely_migration WHERE name = '0013_item_pushed';
    DROP TABLE job_aliases; DROP TABLE job_versions; DROP TABLE jobs; DELETE FROM kysely_migration WHERE name = '0016_jobs';
    ${UNDO_0014}; ${UNDO_0023.postgres}`,
};

for (const backend of BACKENDS) {
  describe.skipIf(backend === 'postgres' && !pgAvailable)(`migration 0012 on ${backend}`, () => {
    let b: BackendServer;
    afterAll(async () => {
      await b?.close();
    });

    it('initialises the counters from the items already there', async () => {
      b = await startBackendServer(backend);
      await b.exec(UNDO_0012[backend] ?? '');
      // A backlog written by a version without counters: 5 pending (two priorities), 2 active, 3 ended.
      const states = [
        'pending',
        'pending',
        'pending',
        'pending',
        'pending',
        'claimed',
        'running',
        'finished',
        'failed',
        'stopped',
      ];
      const spec = JSON.stringify({ ...SPEC, args: [], run_config: {}, env: {}, resource_args: {} });
      const values = states
        .map(
          (st, i) =>
            `('00000000-0000-7000-8000-00000000000${i}', (SELECT id FROM queues WHERE name = 'default'), ${i < 2 ? 1 : 2}, '${st}', '${spec}', ${i})`,
        )
        .join(', ');
      await b.exec(`INSERT INTO items (id, queue_id, priority, state, spec, created_at) VALUES ${values}`);
      await b.server.close();
      const restarted = await b.restart();
      const apiKey = readCredentials(join(b.home, '.config', 'liftoff', 'credentials'))?.api_key ?? '';
      const c = new LiftoffClient({ baseUrl: restarted.url, apiKey });
      expect(await c.getQueue('default', 'default')).toMatchObject({ pending: 5, running: 2 });
      // Positions come from the counters too: the two high-priority items first, then the medium ones in order.
      expect((await c.getItem('00000000-0000-7000-8000-000000000001')).position).toBe(2);
      expect((await c.getItem('00000000-0000-7000-8000-000000000004')).position).toBe(5);
    });
  });
}
