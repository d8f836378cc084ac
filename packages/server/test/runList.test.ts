import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { Kysely, SqliteDialect } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LiftoffClient, type RunListRow } from '@liftoff/core';
import { BACKENDS, pgAvailable } from '../../../test/helpers/postgres.js';
import { parseSort } from '../src/store/runColumns.js';
import { runsQuery, type RunListFilter } from '../src/store/runQuery.js';
import type { Database } from '../src/store/schema.js';
import { refusal, startBackendServer, type BackendServer } from './factory.js';
import { expectedOrder, fixtureRun, insertRunsSql, type FixtureRun } from './runFixtures.js';

const N = 150;
type Query = NonNullable<Parameters<LiftoffClient['listRuns']>[1]>;

/**
 * Issue 17's runs table API (runQuery.ts): config and metric columns, sort with missing values last, keyset paging
 * that neither repeats nor skips a run while runs are inserted, filters, hostile column names, limits and entity
 * isolation. Fixtures are inserted by bulk SQL (runFixtures.ts).
 */
for (const backend of BACKENDS) {
  describe.skipIf(backend === 'postgres' && !pgAvailable)(`runs list on ${backend}`, () => {
    let b: BackendServer;
    let c: LiftoffClient;
    const runs: FixtureRun[] = [];

    /** Every page of a query, `limit` at a time, following next_cursor; `between` runs after each page. */
    async function all(query: Query, limit: number, between?: (page: number) => Promise<void>) {
      const out: RunListRow[] = [];
      let cursor: string | undefined;
      for (let page = 0; ; page++) {
        const r = await c.listRuns('default', { ...query, limit, cursor });
        out.push(...r.runs);
        expect(r.runs.length).toBeLessThanOrEqual(limit);
        if (!r.next_cursor) return out;
        cursor = r.next_cursor;
        await between?.(page);
      }
    }

    beforeAll(async () => {
      b = await startBackendServer(backend);
      c = b.client;
      await c.createQueue('default', { name: 'other', resource: 'local-process' });
      for (let i = 0; i < N; i++) runs.push(fixtureRun(i, i % 10 === 9 ? 'other' : 'default'));
      await b.exec(insertRunsSql('default', runs));
    });
    afterAll(async () => b.close());

    it('lists newest first by default, as before, with a cursor to the next page', async () => {
      const r = await c.listRuns('default', { limit: 20 });
      expect(r.runs.map((x) => x.id)).toEqual(expectedOrder(runs, (x) => x.created_at, true).slice(0, 20));
      expect(r.next_cursor).toEqual(expect.any(String));
      expect(r.runs[0]).toMatchObject({ queue: expect.any(String), entity: 'default', columns: {} });
      const full = await c.listRuns('default', { limit: N });
      expect(full.runs).toHaveLength(N);
      expect(full.next_cursor).toBeNull();
    });

    const sorts: Array<[string, (r: FixtureRun) => unknown]> = [
      ['config.lr', (r) => r.run_config.lr],
      ['config.opt', (r) => r.run_config.opt],
      ['config.mixed', (r) => r.run_config.mixed],
      ['config.model.depth', (r) => (r.run_config.model as { depth: number }).depth],
      ['config.flag', (r) => r.run_config.flag],
      ['config.nulled', (r) => r.run_config.nulled],
      ['metric.loss', (r) => r.metrics.loss?.last],
      ['metric.loss.max', (r) => r.metrics.loss?.max],
      ['metric.loss.min', (r) => r.metrics.loss?.min],
      ['ended_at', (r) => r.ended_at],
      ['duration', (r) => (r.ended_at === null || r.started_at === null ? null : r.ended_at - r.started_at)],
      ['name', (r) => r.name],
      ['created_at', (r) => r.created_at],
    ];
    for (const [column, value] of sorts)
      for (const desc of [false, true])
        it(`sorts by ${desc ? '-' : ''}${column} across pages, missing values last`, async () => {
          const got = await all({ sort: `${desc ? '-' : ''}${column}` }, 17);
          expect(got.map((r) => r.id)).toEqual(expectedOrder(runs, value, desc));
        });

    it('gives each run its columns: numbers, strings, booleans, objects, metric summaries, null when missing', async () => {
      const columns = [
        'config.lr',
        'config.opt',
        'config.flag',
        'config.model',
        'config.nope',
        'metric.loss.max',
        'metric.loss',
        'metric.nope',
      ];
      const got = await all({ columns: columns.join(',') }, 50);
      expect(got).toHaveLength(N);
      for (const row of got) {
        const f = runs.find((r) => r.id === row.id) as FixtureRun;
        expect(row.name).toBe(f.name ?? null);
        expect(row.columns).toEqual({
          'config.lr': f.run_config.lr ?? null,
          'config.opt': f.run_config.opt,
          'config.flag': f.run_config.flag,
          'config.model': f.run_config.model,
          'config.nope': null,
          'metric.loss.max': f.metrics.loss?.max ?? null,
          'metric.loss': f.metrics.loss?.last ?? null,
          'metric.nope': null,
        });
      }
    });

    it('offers the config and metric keys of the newest runs for the column picker', async () => {
      const keys = await c.runKeys('default', { queue: 'other' });
      expect(keys.config).toEqual(['flag', 'lr', 'mixed', 'model.depth', 'nulled', 'opt']);
      expect(keys.metrics).toContain('loss');
      expect((await refusal(c.runKeys('default', { queue: 'nope' }))).code).toBe('NOT_FOUND');
    });

    it('filters by queue, state, id prefix and name substring (case-insensitive), with the sort kept', async () => {
      const other = await all({ queue: 'other', sort: 'config.lr' }, 4);
      const inOther = runs.filter((r) => r.queue === 'other');
      expect(other.map((r) => r.id)).toEqual(expectedOrder(inOther, (r) => r.run_config.lr, false));
      const done = await all({ state: 'failed,stopped', sort: '-metric.loss' }, 9);
      const failedOrStopped = runs.filter((r) => r.status === 'failed' || r.status === 'stopped');
      expect(done.map((r) => r.id)).toEqual(expectedOrder(failedOrStopped, (r) => r.metrics.loss?.last, true));
      const prefix = await all({ q: 'r001' }, 100);
      expect(prefix.map((r) => r.id).sort()).toEqual(runs.filter((r) => r.id.startsWith('r001')).map((r) => r.id));
      const named = await all({ q: 'RUN-12' }, 100);
      expect(named.map((r) => r.id).sort()).toEqual(
        runs.filter((r) => r.name?.toLowerCase().includes('run-12')).map((r) => r.id),
      );
      // LIKE's wildcards are matched literally: "%" names no run.
      expect((await c.listRuns('default', { q: '%' })).runs).toEqual([]);
      expect((await c.listRuns('default', { q: 'r_0' })).runs).toEqual([]);
    });

    it('pages through every run once while new runs are inserted before and after the cursor', async () => {
      let extra = 0;
      const inserted: FixtureRun[] = [];
      const seen = await all({ sort: '-created_at' }, 10, async () => {
        // One run newer than every page (never reached going down) and one older than all (reached later).
        const newer = { ...fixtureRun(N + extra), id: `x${extra}a`, created_at: 9_000_000 + extra };
        const older = { ...fixtureRun(N + extra), id: `x${extra}b`, created_at: 1_000 - extra };
        extra++;
        inserted.push(newer, older);
        await b.exec(insertRunsSql('default', [newer, older]));
      });
      const ids = seen.map((r) => r.id);
      expect(new Set(ids).size).toBe(ids.length);
      for (const r of runs) expect(ids).toContain(r.id);
      for (const r of inserted) expect([r.id, ids.includes(r.id)]).toEqual([r.id, r.id.endsWith('b')]);
      const bySort = await all({ sort: 'config.lr' }, 13, async (page) => {
        const late = { ...fixtureRun(3 * N + page), id: `y${page}` };
        await b.exec(insertRunsSql('default', [late]));
      });
      const sortedIds = bySort.map((r) => r.id);
      expect(new Set(sortedIds).size).toBe(sortedIds.length);
      for (const r of [...runs, ...inserted]) expect(sortedIds).toContain(r.id);
      await b.exec(
        `DELETE FROM run_metric_keys WHERE run_id LIKE 'x%' OR run_id LIKE 'y%'; DELETE FROM runs WHERE id LIKE 'x%' OR id LIKE 'y%'; DELETE FROM items WHERE id LIKE 'i-x%' OR id LIKE 'i-y%';`,
      );
    });

    it('refuses hostile or malformed columns, sorts and cursors with 400 (cursors: INVALID_CURSOR), and binds odd metric keys', async () => {
      const bad: Query[] = [
        { columns: "config.a'b" },
        { columns: 'config.a"); DROP TABLE runs; --' },
        { columns: 'config.' },
        { columns: 'config.a..b' },
        { columns: 'config.a.b.c.d.e.f.g.h.i' },
        { columns: 'metric.' },
        { columns: 'runs.id' },
        { columns: `metric.${'k'.repeat(201)}` },
        { columns: Array.from({ length: 21 }, (_, i) => `config.k${i}`).join(',') },
        { sort: 'created_at; DROP TABLE runs' },
        { sort: '--created_at' },
        { sort: 'config.x y' },
        { columns: 'created_at' },
        { state: 'finished,bogus' },
        { cursor: 'not-a-cursor' },
        {
          sort: 'config.x',
          cursor: Buffer.from(JSON.stringify(['config.x', 0, 0, 'a\u0000b', 'r1'])).toString('base64url'),
        },
        // A number past float range (JSON.parse makes it Infinity).
        { cursor: Buffer.from('["-created_at", 1e400, "r1"]').toString('base64url') },
        { cursor: Buffer.from(JSON.stringify(['-created_at', 'x', 'y'])).toString('base64url') },
      ];
      for (const query of bad) {
        const e = await refusal(c.listRuns('default', query)).catch(
          (x: Error) => new Error(`${x.message}: ${JSON.stringify(query)}`),
        );
        const code = query.cursor === undefined ? 'BAD_REQUEST' : 'INVALID_CURSOR';
        expect([(e as { code?: string }).code, e.message, query]).toEqual([code, expect.any(String), query]);
      }
      // A cursor of one sort is refused under another rather than resuming at a wrong place.
      const first = await c.listRuns('default', { sort: 'config.lr', limit: 5 });
      const e = await refusal(c.listRuns('default', { sort: '-config.lr', cursor: first.next_cursor ?? '' }));
      expect(e.message).toContain('another sort');
      // Quotes and SQL in a metric key are a key like any other: bound, so the run that has it gets its value.
      const odd = `it's "odd"); DROP TABLE runs; --`;
      await b.exec(
        `INSERT INTO run_metric_keys (run_id, key, seen, stored, stride, last_step, last_value, last_time, min_value, max_value) VALUES ('r0001', '${odd.replace(/'/g, "''")}', 1, 1, 1, 0, 42, 0, 42, 42);`,
      );
      const got = await c.listRuns('default', { columns: `metric.${odd}`, sort: `-metric.${odd}`, limit: 2 });
      expect(got.runs.map((r) => [r.id, r.columns[`metric.${odd}`]])).toEqual([
        ['r0001', 42],
        [expect.any(String), null],
      ]);
      expect((await c.listRuns('default', { limit: N })).runs).toHaveLength(N);
    });

    it.runIf(backend === 'sqlite')(
      'reads newest-first pages off an index, with or without a state filter',
      async () => {
        const sqlite = new BetterSqlite3(join(b.dataDir, 'liftoff.db'), { readonly: true });
        const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: sqlite }) });
        try {
          const ids = await db
            .selectFrom('queues')
            .select(['id', 'entity_id'])
            .where('name', '=', 'default')
            .executeTakeFirstOrThrow();
          const plan = (filter: Partial<RunListFilter>) => {
            const { query } = runsQuery(
              db,
              'sqlite',
              { entityId: ids.entity_id, ...filter },
              { columns: [], sort: parseSort(undefined), limit: 50 },
            );
            const c = query.compile();
            return (sqlite.prepare(`EXPLAIN QUERY PLAN ${c.sql}`).all(...c.parameters) as Array<{ detail: string }>)
              .map((r) => r.detail)
              .join(' | ');
          };
          for (const filter of [{ queueId: ids.id }, { queueId: ids.id, states: ['failed'] }, { states: ['failed'] }]) {
            const p = plan(filter);
            expect([filter, p]).toEqual([filter, expect.stringMatching(/USING INDEX runs_(queue_)?(status_)?created/)]);
            expect([filter, p]).not.toEqual([filter, expect.stringContaining('TEMP B-TREE')]);
          }
        } finally {
          await db.destroy();
        }
      },
    );

    it('takes limits of 1 to 1000 only', async () => {
      expect((await c.listRuns('default', { limit: 1 })).runs).toHaveLength(1);
      for (const limit of [0, -1, 1001, 1.5])
        expect((await refusal(c.listRuns('default', { limit }))).code).toBe('BAD_REQUEST');
    });

    it("answers another entity's runs list with 404, as an unknown entity, and its own without default's runs", async () => {
      await c.createUser('bob');
      await c.createTeam('blue');
      await c.addMember('blue', 'bob');
      const bob = new LiftoffClient({
        baseUrl: b.server.url,
        apiKey: (await c.createKey({ name: 'bob', role: 'admin', user: 'bob' })).key,
      });
      for (const query of [{}, { columns: 'config.lr', sort: 'config.lr' }])
        expect((await refusal(bob.listRuns('default', query))).code).toBe('NOT_FOUND');
      expect((await refusal(bob.listRuns('nosuch'))).code).toBe('NOT_FOUND');
      expect((await refusal(bob.runKeys('default'))).code).toBe('NOT_FOUND');
      expect((await bob.listRuns('blue', { q: 'r' })).runs).toEqual([]);
    });
  });
}
