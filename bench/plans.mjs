// Reading the query plans the runs benchmarks report: a kysely handle on the benchmark's database (to compile the
// server's own queries) and `explain(compiled)`, the plan as one line, shared by runs.mjs and globalRuns.mjs.
import { createRequire } from 'node:module';
import { Kysely, PostgresDialect, SqliteDialect } from 'kysely';

const require = createRequire(import.meta.url);

/** PostgreSQL: the plan's nodes without costs, filters and sort keys, enough to see which index serves the page. */
export async function pgPlans(url) {
  const { default: pg } = await import('pg');
  const pool = new pg.Pool({ connectionString: url, max: 1 });
  const db = new Kysely({ dialect: new PostgresDialect({ pool }) });
  const explain = async ({ sql, parameters }) =>
    (await pool.query(`EXPLAIN ${sql}`, parameters)).rows
      .map((r) => r['QUERY PLAN'].trim())
      .filter((l) => !/^(Filter|Sort Key|Index Cond|Hash Cond|Join Filter|Recheck Cond|Output):/.test(l))
      .map((l) => l.replace(/^->\s*/, '').replace(/\s*\(cost=.*\)$/, ''))
      .join(' | ');
  return { db, explain };
}

/** SQLite (read only, beside the running server): EXPLAIN QUERY PLAN's details joined. */
export function sqlitePlans(dbFile) {
  const Database = require('better-sqlite3');
  const sqlite = new Database(dbFile, { readonly: true });
  const db = new Kysely({ dialect: new SqliteDialect({ database: sqlite }) });
  const explain = async ({ sql, parameters }) =>
    sqlite
      .prepare(`EXPLAIN QUERY PLAN ${sql}`)
      .all(...parameters)
      .map((r) => r.detail)
      .join(' | ');
  return { db, explain };
}
