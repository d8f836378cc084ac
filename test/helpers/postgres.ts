import { randomBytes } from 'node:crypto';
import pg from 'pg';

/**
 * A real PostgreSQL for the tests (scripts/services/postgres.sh installs and starts one). Each suite gets a fresh
 * database created here and dropped afterwards, so suites never see each other's rows.
 */
export const PG_URL = process.env.LIFTOFF_TEST_PG_URL ?? 'postgres://liftoff:liftoff@127.0.0.1:5432/liftoff';

async function probe(): Promise<string | null> {
  const client = new pg.Client({ connectionString: PG_URL, connectionTimeoutMillis: 3_000 });
  try {
    await client.connect();
    await client.query('SELECT 1');
    return null;
  } catch (e) {
    return (e as Error).message;
  } finally {
    await client.end().catch(() => undefined);
  }
}

const problem = await probe();
if (problem) {
  const why = `PostgreSQL is not reachable at ${PG_URL} (${problem}); run "bash scripts/services/postgres.sh" or set LIFTOFF_TEST_PG_URL.`;
  if (process.env.LIFTOFF_REQUIRE_SERVICES === '1')
    throw new Error(`${why} LIFTOFF_REQUIRE_SERVICES=1 makes this a failure.`);
  console.warn(`\n*** SKIPPING the PostgreSQL tests: ${why}\n`);
}
/** True when the PostgreSQL tests can run; false means they are skipped (loudly, above). */
export const pgAvailable = problem === null;

/** Backends the server suite runs on: always SQLite, PostgreSQL when available. */
export const BACKENDS = ['sqlite', 'postgres'] as const;
export type Backend = (typeof BACKENDS)[number];

/** Creates an empty database; returns its URL and a function dropping it (closing its connections first). */
export async function freshPgDatabase(): Promise<{ url: string; drop: () => Promise<void> }> {
  const name = `liftoff_t_${randomBytes(5).toString('hex')}`;
  const admin = new pg.Client({ connectionString: PG_URL });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(PG_URL);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    async drop() {
      const c = new pg.Client({ connectionString: PG_URL });
      await c.connect();
      try {
        // FORCE closes connections a test left open. An autovacuum worker in the database belongs to the bootstrap
        // superuser, which FORCE may not terminate (42501): a plain DROP makes autovacuum leave (it may still fail
        // on the test's own connections, 55006), then FORCE again.
        for (let attempt = 0; ; attempt++) {
          try {
            await c.query(`DROP DATABASE IF EXISTS ${name}${attempt % 2 === 0 ? ' WITH (FORCE)' : ''}`);
            return;
          } catch (e) {
            const code = (e as { code?: string }).code;
            if (attempt >= 5 || (code !== '42501' && code !== '55006')) throw e;
            await new Promise((r) => setTimeout(r, 200));
          }
        }
      } finally {
        await c.end();
      }
    },
  };
}
