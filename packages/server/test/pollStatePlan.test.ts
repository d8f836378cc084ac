import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { Kysely, SqliteDialect } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pollStateQuery } from '../src/store/agents.js';
import { openSqlite } from '../src/store/database.js';
import type { Database } from '../src/store/schema.js';

// Every poll makes this read, so its cost must not grow with how many runs the agent has had. What it returns on
// both databases (cancels, lost runs among the held ones) is tested through the API in lease.test.ts and
// cancelRaces.test.ts; this checks on SQLite that the runs are reached by an index on the agent and the state.
describe('the poll state read', () => {
  let dir: string;
  let sqlite: BetterSqlite3.Database;
  let db: Kysely<Database>;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'liftoff-poll-plan-'));
    const file = join(dir, 'liftoff.db');
    // Migrated as the server migrates it, so the indexes are the ones a server has.
    await (await openSqlite(file)).db.destroy();
    sqlite = new BetterSqlite3(file, { readonly: true });
    db = new Kysely<Database>({ dialect: new SqliteDialect({ database: sqlite }) });
  });

  afterAll(async () => {
    await db.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  const planOf = (held: string[]) => {
    const compiled = pollStateQuery(db, 'agent-1', held).compile();
    return (
      sqlite.prepare(`EXPLAIN QUERY PLAN ${compiled.sql}`).all(...compiled.parameters) as Array<{ detail: string }>
    )
      .map((r) => r.detail)
      .join(' | ');
  };

  it.each([
    ['no held runs', []],
    ['held runs', ['r1', 'r2', 'r3']],
  ])('finds the runs by agent and state with %s', (_, held) => {
    const plan = planOf(held);
    expect(plan).toMatch(
      /SEARCH runs USING (COVERING )?INDEX runs_(agent|status) \((agent_id=\? AND status=\?|status=\? AND agent_id=\?)\)/,
    );
    // By the agent alone is every run it ever had.
    expect(plan).not.toMatch(/\(agent_id=\?\)/);
  });
});
