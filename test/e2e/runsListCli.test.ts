import BetterSqlite3 from 'better-sqlite3';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunListRow } from '@liftoff/core';
import { fixtureRun, insertRunsSql, type FixtureRun } from '../../packages/server/test/runFixtures.js';
import { cleanupAll, cli, startServer, type TestServer } from '../helpers/procs.js';

const N = 60;

/** `liftoff runs list` with columns, sort, filters and paging (docs/runs.md), against the API's own answers. */
describe('liftoff runs list', () => {
  let server: TestServer;
  const runs: FixtureRun[] = [];
  /** The run ids of the table rows printed (the first column of every line after the header). */
  const ids = (output: string) =>
    output
      .split('\n')
      .filter((l) => /^r\d{4}\s/.test(l))
      .map((l) => l.split(/\s+/)[0]);

  beforeAll(async () => {
    server = await startServer();
    for (let i = 0; i < N; i++) runs.push(fixtureRun(i));
    const db = new BetterSqlite3(join(server.dataDir, 'liftoff.db'));
    try {
      db.exec(insertRunsSql('default', runs));
    } finally {
      db.close();
    }
  });
  afterAll(cleanupAll);

  it('prints the chosen columns in the API order, one page, and the cursor of the next', async () => {
    const query = { columns: 'config.lr,config.opt,metric.loss', sort: '-metric.loss', limit: 7 };
    const api = await server.client.listRuns('default', query);
    const first = await cli(
      ['runs', 'list', '--columns', query.columns, '--sort', query.sort, '--limit', '7'],
      server.env,
    );
    expect(first.code).toBe(0);
    const header = first.output.split('\n')[0] ?? '';
    expect(header).toMatch(/^RUN\s+QUEUE\s+STATUS.*CREATED\s+NAME\s+CONFIG\.LR\s+CONFIG\.OPT\s+METRIC\.LOSS/);
    expect(ids(first.output)).toEqual(api.runs.map((r) => r.id));
    const row = first.output.split('\n').find((l) => l.startsWith(api.runs[0]?.id ?? '?')) ?? '';
    expect(row).toContain(String(api.runs[0]?.columns['metric.loss']));
    expect(row).toContain(String(api.runs[0]?.columns['config.opt']));
    const cursor = /more runs: add --cursor (\S+)/.exec(first.output)?.[1];
    expect(cursor).toBe(api.next_cursor);
    const second = await cli(
      ['runs', 'list', '--columns', query.columns, '--sort', query.sort, '--limit', '7', '--cursor', cursor ?? ''],
      server.env,
    );
    const apiSecond = await server.client.listRuns('default', { ...query, cursor: api.next_cursor ?? '' });
    expect(ids(second.output)).toEqual(apiSecond.runs.map((r) => r.id));
  });

  it('--all --json gives every page as one array; --state and --search filter', async () => {
    const all = await cli(
      [
        'runs',
        'list',
        '--all',
        '--json',
        '--limit',
        '4',
        '--state',
        'failed,stopped',
        '--sort',
        'config.lr',
        '--columns',
        'config.lr',
      ],
      server.env,
    );
    expect(all.code).toBe(0);
    const got = JSON.parse(all.output) as RunListRow[];
    const api = await server.client.listRuns('default', { state: 'failed,stopped', sort: 'config.lr', limit: 1000 });
    expect(got.map((r) => r.id)).toEqual(api.runs.map((r) => r.id));
    expect(got.length).toBe(runs.filter((r) => r.status === 'failed' || r.status === 'stopped').length);
    expect(got.every((r) => 'config.lr' in r.columns)).toBe(true);
    const found = await cli(['runs', 'list', '--search', 'run-1', '--all'], server.env);
    expect(ids(found.output).sort()).toEqual(
      runs.filter((r) => r.name?.toLowerCase().includes('run-1')).map((r) => r.id),
    );
    expect(found.output).not.toContain('more runs');
  });

  it('refuses a column outside the syntax with one line saying what to write', async () => {
    const bad = await cli(['runs', 'list', '--columns', "config.a'b"], server.env);
    expect(bad.code).not.toBe(0);
    expect(bad.output).toMatch(/^liftoff: error: Column "config\.a'b" is not a config key .*config\.<key>/);
    expect(bad.output).not.toMatch(/\n\s+at /);
  });
});
