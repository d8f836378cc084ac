import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { Kysely, SqliteDialect } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LiftoffClient, type ItemSummary } from '@liftoff/core';
import { parseSort } from '../src/store/runColumns.js';
import { runsQuery, type RunListFilter } from '../src/store/runQuery.js';
import type { Database } from '../src/store/schema.js';
import { BACKENDS, pgAvailable } from '../../../test/helpers/postgres.js';
import { refusal, startBackendServer, type BackendServer } from './factory.js';
import { fixtureRun, insertAgentsSql, insertPendingItemsSql, insertRunsSql, type FixtureRun } from './runFixtures.js';

const DEEP = 2_500;
type ItemQuery = NonNullable<Parameters<LiftoffClient['listItems']>[2]>;
const forged = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');

/**
 * Issue 18's cursors on every list (docs/api.md): a queue's items newest first and, pending, in queue order from
 * either end; the agents list; the global runs list's time range, agent filter and search. Paging neither repeats
 * nor skips while rows are added, forged cursors are refused by name, and other entities' lists are 404s.
 */
for (const backend of BACKENDS) {
  describe.skipIf(backend === 'postgres' && !pgAvailable)(`list cursors on ${backend}`, () => {
    let b: BackendServer;
    let c: LiftoffClient;

    /** Every page of a queue's items, following next_cursor (or prev_cursor with `back`); `between` after each. */
    async function walk(queue: string, query: ItemQuery, between?: () => Promise<void>, back = false) {
      const out: ItemSummary[][] = [];
      let cursor = query.cursor;
      for (;;) {
        const page = await c.listItems('default', queue, { ...query, cursor });
        out.push(page.items);
        const next = back ? page.prev_cursor : page.next_cursor;
        if (!next) return back ? out.reverse().flat() : out.flat();
        cursor = next;
        await between?.();
      }
    }

    beforeAll(async () => {
      b = await startBackendServer(backend);
      c = b.client;
      await c.createQueue('default', { name: 'deep', resource: 'local-process' });
      await c.createQueue('default', { name: 'aging', resource: 'local-process', aging_seconds: 60 });
      await c.createQueue('default', { name: 'other', resource: 'local-process' });
      // Priorities cycle, so queue order (priority, then push order) is not push order.
      await b.exec(insertPendingItemsSql('default', 'deep', DEEP, { priority: (i) => [2, 0, 3, 1][i % 4] ?? 2 }));
    });
    afterAll(async () => b.close());

    it('pages pending items in queue order from the head, and from the tail back, every position once', async () => {
      const expected = Array.from({ length: DEEP }, (_, i) => ({ i, p: [2, 0, 3, 1][i % 4] ?? 2 }))
        .sort((x, y) => x.p - y.p || x.i - y.i)
        .map((x) => `p-${String(x.i).padStart(6, '0')}`);
      const head = await c.listItems('default', 'deep', { state: 'pending', order: 'queue', limit: 100 });
      expect(head.items.map((i) => i.id)).toEqual(expected.slice(0, 100));
      expect(head.items.map((i) => i.position)).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
      expect(head.prev_cursor).toBeNull();
      const tail = await c.listItems('default', 'deep', { state: 'pending', order: 'queue', from: 'end', limit: 100 });
      expect(tail.items.map((i) => i.id)).toEqual(expected.slice(-100));
      expect(tail.items.at(-1)?.position).toBe(DEEP);
      expect(tail.next_cursor).toBeNull();
      const forward = await walk('deep', { state: 'pending', order: 'queue', limit: 333 });
      expect(forward.map((i) => i.id)).toEqual(expected);
      expect(forward.map((i) => i.position)).toEqual(expected.map((_, i) => i + 1));
      const backward = await walk(
        'deep',
        { state: 'pending', order: 'queue', from: 'end', limit: 400 },
        undefined,
        true,
      );
      expect(backward.map((i) => i.id)).toEqual(expected);
      // Back from the second page: the first page again.
      const second = await c.listItems('default', 'deep', {
        state: 'pending',
        order: 'queue',
        limit: 100,
        cursor: head.next_cursor ?? '',
      });
      const again = await c.listItems('default', 'deep', {
        state: 'pending',
        order: 'queue',
        limit: 100,
        cursor: second.prev_cursor ?? '',
      });
      expect(again.items.map((i) => i.id)).toEqual(expected.slice(0, 100));
    });

    it('pages newest first without repeats or gaps while items are pushed and claimed meanwhile', async () => {
      const before = (await walk('deep', { limit: 1000 })).map((i) => i.id);
      expect(before).toEqual([...before].sort().reverse());
      let n = 0;
      const seen = await walk('deep', { limit: 97 }, async () => {
        // Pushes land meanwhile (their UUIDv7 ids sort below the bulk p- ids): no row twice, no existing one skipped.
        await c.push('default', 'deep', {
          spec: {
            source: { type: 'git', url: 'https://git.example.com/x.git' },
            entry_point: ['true'],
            name: `late-${n++}`,
          },
        });
      });
      const ids = seen.map((i) => i.id);
      expect(new Set(ids).size).toBe(ids.length);
      expect(ids.filter((id) => id.startsWith('p-'))).toEqual(before.filter((id) => id.startsWith('p-')));
      // Queue order while the head is taken and new low-priority items join the tail: each old item exactly once.
      let k = 0;
      const line = await walk('deep', { state: 'pending', order: 'queue', limit: 250 }, async () => {
        await b.exec(insertPendingItemsSql('default', 'deep', 1, { prefix: `z${k++}-`, priority: () => 3 }));
        await b.exec(`UPDATE items SET state = 'stopped' WHERE id = 'p-00000${k}'`);
      });
      const lineIds = line.map((i) => i.id);
      expect(new Set(lineIds).size).toBe(lineIds.length);
      for (const id of before.filter((x) => x.startsWith('p-') && x > 'p-000009')) expect(lineIds).toContain(id);
      for (let j = 0; j < k; j++) expect(lineIds).toContain(`z${j}-000000`);
    });

    it('keeps an aging queue in one order across pages: the one of the first page’s instant', async () => {
      const now = Date.now();
      // Older items age to a better priority: the pushed priority alone is not the order.
      await b.exec(
        insertPendingItemsSql('default', 'aging', 300, {
          prefix: 'a-',
          priority: (i) => (i % 2 ? 3 : 1),
          createdAt: (i) => now - (300 - i) * 20_000,
        }),
      );
      const all = await walk('aging', { state: 'pending', order: 'queue', limit: 1000 });
      const paged = await walk('aging', { state: 'pending', order: 'queue', limit: 37 });
      expect(paged.map((i) => i.id)).toEqual(all.map((i) => i.id));
      expect(all.map((i) => i.id)).not.toEqual([...all.map((i) => i.id)].sort());
      expect(paged.map((i) => i.position)).toEqual(all.map((_, i) => i + 1));
    });

    it('pages the agents by id, every agent once', async () => {
      const ids = Array.from({ length: 130 }, (_, i) => `agent-${String(i).padStart(3, '0')}`);
      await b.exec(insertAgentsSql('default', [...ids].reverse()));
      const first = await c.listAgents('default', { limit: 50 });
      expect(first.agents.map((a) => a.id)).toEqual(ids.slice(0, 50));
      expect(first.next_cursor).toEqual(expect.any(String));
      expect((await c.listAllAgents('default')).map((a) => a.id)).toEqual(ids);
      const last = await c.listAgents('default', { limit: 100, cursor: first.next_cursor ?? '' });
      expect(last.agents.map((a) => a.id)).toEqual(ids.slice(50));
      expect(last.next_cursor).toBeNull();
    });

    it('filters the global runs by time range, agent, queue and state, searches names and ids, with queue wait', async () => {
      const runs: FixtureRun[] = Array.from({ length: 60 }, (_, i) => ({
        ...fixtureRun(i, i % 3 ? 'deep' : 'other'),
        id: `run-${String(i).padStart(3, '0')}`,
        created_at: 5_000_000 + i * 1000,
        started_at: 5_000_000 + i * 1000 + 250,
      }));
      await b.exec(insertRunsSql('default', runs));
      await b.exec(
        `UPDATE runs SET agent_id = 'agent-b' WHERE id LIKE 'run-%' AND CAST(substr(id, 5) AS INTEGER) % 4 = 0`,
      );
      const ids = async (query: Parameters<LiftoffClient['listRuns']>[1]) => {
        const out: string[] = [];
        let cursor: string | undefined;
        do {
          const page = await c.listRuns('default', { ...query, limit: 7, cursor });
          out.push(...page.runs.map((r) => r.id));
          cursor = page.next_cursor ?? undefined;
        } while (cursor);
        return out;
      };
      const want = (keep: (r: FixtureRun, i: number) => boolean) =>
        runs
          .filter(keep)
          .map((r) => r.id)
          .reverse();
      expect(await ids({ since: 5_010_000, until: 5_020_000 })).toEqual(want((_, i) => i >= 10 && i < 20));
      expect(await ids({ since: new Date(5_030_000).toISOString() })).toEqual(want((_, i) => i >= 30));
      expect(await ids({ agent: 'agent-b', since: 5_000_000 })).toEqual(want((_, i) => i % 4 === 0));
      expect(await ids({ agent: 'agent-b', queue: 'other', state: 'failed,finished', since: 5_000_000 })).toEqual(
        want((r, i) => i % 4 === 0 && r.queue === 'other' && (r.status === 'failed' || r.status === 'finished')),
      );
      expect(await ids({ q: 'run-04' })).toEqual(want((_, i) => i >= 40 && i < 50));
      expect(await ids({ q: 'Run-1', since: 5_000_000 })).toEqual(want((r) => Boolean(r.name?.startsWith('Run-1'))));
      const one = (await c.listRuns('default', { q: 'run-007' })).runs[0];
      expect(one).toMatchObject({ id: 'run-007', queue: 'deep', agent_id: 'bulk-agent', exit_code: null });
      // Bulk items are pushed at the run's created_at (runFixtures): the wait is the 250 ms to its start.
      expect([one?.queued_at, one?.queue_wait_ms]).toEqual([5_007_000, 250]);
      // Names JSON stores escaped (a quote) or as they are (an accent) are found all the same.
      const odd = [
        { ...fixtureRun(0, 'other'), id: 'odd-1', name: 'say "hi" now', created_at: 6_000_000 },
        { ...fixtureRun(1, 'other'), id: 'odd-2', name: 'Café au lait', created_at: 6_000_001 },
      ];
      await b.exec(insertRunsSql('default', odd));
      expect(await ids({ q: 'y "hi" n' })).toEqual(['odd-1']);
      expect(await ids({ q: 'fé au' })).toEqual(['odd-2']);
      expect(await ids({ q: 'CAFé' })).toEqual(['odd-2']);
      for (const bad of [{ since: 'yesterday' }, { until: '12:00' }])
        expect((await refusal(c.listRuns('default', bad))).code).toBe('BAD_REQUEST');
    });

    it('refuses forged, foreign and malformed cursors with INVALID_CURSOR, and order=queue without state=pending', async () => {
      const items = await c.listItems('default', 'deep', { limit: 5 });
      const runs = await c.listRuns('default', { limit: 5 });
      const agents = await c.listAgents('default', { limit: 5 });
      const itemsQueue = { state: 'pending', order: 'queue' } as const;
      const bad: Array<() => Promise<unknown>> = [
        () => c.listItems('default', 'deep', { cursor: 'not-a-cursor' }),
        () => c.listItems('default', 'deep', { cursor: forged(['items:newest', 'after']) }),
        () => c.listItems('default', 'deep', { cursor: forged(['items:newest', 'sideways', 'p-1']) }),
        () => c.listItems('default', 'deep', { cursor: forged(['items:newest', 'after', 'a\u0000b']) }),
        () => c.listItems('default', 'deep', { cursor: forged(['items:newest', 'after', 42]) }),
        () => c.listItems('default', 'deep', { cursor: forged(['items:newest', 'after', 'x'.repeat(300)]) }),
        () =>
          c.listItems('default', 'deep', {
            ...itemsQueue,
            // A number past float range (JSON.parse makes it Infinity), and one past the integers that are exact.
            cursor: Buffer.from('["items:queue", "after", 1e400, 0, "x"]').toString('base64url'),
          }),
        () =>
          c.listItems('default', 'deep', { ...itemsQueue, cursor: forged(['items:queue', 'after', 2 ** 60, 0, 'x']) }),
        () => c.listItems('default', 'deep', { ...itemsQueue, cursor: forged(['items:queue', 'after', 1, 0.5, 'x']) }),
        () =>
          c.listItems('default', 'deep', { ...itemsQueue, cursor: forged(['items:queue', 'after', 1, "0'; --", 'x']) }),
        // A cursor of one list or order under another.
        () => c.listItems('default', 'deep', { ...itemsQueue, cursor: items.next_cursor ?? '' }),
        () => c.listItems('default', 'deep', { cursor: agents.next_cursor ?? '' }),
        () => c.listAgents('default', { cursor: items.next_cursor ?? '' }),
        () => c.listAgents('default', { cursor: forged(['agents:id', 'after', { id: 1 }]) }),
        () => c.listRuns('default', { cursor: items.next_cursor ?? '' }),
        () => c.listRuns('default', { sort: 'name', cursor: runs.next_cursor ?? '' }),
      ];
      for (const [i, p] of bad.entries()) expect([i, (await refusal(p())).code]).toEqual([i, 'INVALID_CURSOR']);
      const e = await refusal(c.listItems('default', 'deep', { order: 'queue' }));
      expect([e.code, e.message]).toEqual(['BAD_REQUEST', expect.stringContaining('state=pending')]);
      expect((await c.listItems('default', 'deep', { limit: 5 })).items).toHaveLength(5);
    });

    it.runIf(backend === 'sqlite')(
      'reads a filtered page of the global runs off an index, newest first without sorting',
      async () => {
        const sqlite = new BetterSqlite3(join(b.dataDir, 'liftoff.db'), { readonly: true });
        const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: sqlite }) });
        try {
          const { id: entityId } = await db
            .selectFrom('entities')
            .select('id')
            .where('name', '=', 'default')
            .executeTakeFirstOrThrow();
          const plan = (filter: Partial<RunListFilter>) => {
            const { query } = runsQuery(
              db,
              'sqlite',
              { entityId, ...filter },
              { columns: [], sort: parseSort(undefined), limit: 50 },
            );
            const compiled = query.compile();
            return (
              sqlite.prepare(`EXPLAIN QUERY PLAN ${compiled.sql}`).all(...compiled.parameters) as Array<{
                detail: string;
              }>
            )
              .map((r) => r.detail)
              .join(' | ');
          };
          const cases: Array<[Partial<RunListFilter>, RegExp]> = [
            [{}, /SCAN runs USING INDEX runs_created/],
            [{ states: ['failed'] }, /USING INDEX runs_status_created/],
            [{ agent: 'agent-b' }, /USING INDEX runs_agent_created/],
            [{ since: 5_010_000, until: 5_020_000 }, /USING INDEX runs_created \(created_at>\? AND created_at<\?\)/],
          ];
          for (const [filter, index] of cases) {
            const p = plan(filter);
            expect([filter, p]).toEqual([filter, expect.stringMatching(index)]);
            expect([filter, p]).not.toEqual([filter, expect.stringContaining('TEMP B-TREE')]);
          }
        } finally {
          await db.destroy();
        }
      },
    );

    it("answers another entity's lists with 404, as unknown ones", async () => {
      await c.createUser('carol');
      await c.createTeam('green');
      await c.addMember('green', 'carol');
      const carol = new LiftoffClient({
        baseUrl: b.server.url,
        apiKey: (await c.createKey({ name: 'carol', role: 'admin', user: 'carol' })).key,
      });
      const first = await c.listItems('default', 'deep', { limit: 5 });
      for (const p of [
        () => carol.listItems('default', 'deep'),
        () => carol.listItems('default', 'deep', { cursor: first.next_cursor ?? '' }),
        () => carol.listAgents('default'),
        () => carol.listRuns('default', { agent: 'agent-b' }),
        () => carol.listItems('nosuch', 'deep'),
      ])
        expect((await refusal(p())).code).toBe('NOT_FOUND');
      expect((await carol.listAgents('green')).agents).toEqual([]);
      expect((await carol.listRuns('green', { agent: 'agent-b' })).runs).toEqual([]);
    });
  });
}
