import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import pg from 'pg';
import { LiftoffClient, LiftoffError, readCredentials } from '@liftoff/core';
import { startServer, type RunningServer, type ServerSettings } from '@liftoff/server';
import { freshPgDatabase, type Backend } from '../../../test/helpers/postgres.js';

export interface BackendServer {
  server: RunningServer;
  client: LiftoffClient;
  home: string;
  dataDir: string;
  databaseUrl: string | undefined;
  /** Runs one SQL statement directly on the backing database (for tests that tamper with it). */
  exec(sql: string): Promise<void>;
  /** Reads rows with one SQL statement directly from the backing database. */
  query(sql: string): Promise<Array<Record<string, unknown>>>;
  /** Starts another server on the same database (a restart, or a second replica). */
  restart(settings?: Partial<ServerSettings>): Promise<RunningServer>;
  close(): Promise<void>;
}

/**
 * The factory that swaps the backend under the one server suite: SQLite in a temporary data dir, or a fresh
 * PostgreSQL database per call. `now` replaces the server's clock (requests and reaper alike), so tests of
 * time-based rules move time forward instead of sleeping.
 */
export async function startBackendServer(
  backend: Backend,
  settings: Partial<ServerSettings> = {},
  { now }: { now?: () => number } = {},
): Promise<BackendServer> {
  const home = mkdtempSync(join(tmpdir(), `liftoff-api-${backend}-`));
  const dataDir = join(home, 'data');
  const pgDb = backend === 'postgres' ? await freshPgDatabase() : undefined;
  const start = (s: Partial<ServerSettings>) =>
    startServer({ host: '127.0.0.1', port: 0, dataDir, databaseUrl: pgDb?.url, env: { HOME: home }, settings: s, now });
  const server = await start(settings);
  const creds = readCredentials(join(home, '.config', 'liftoff', 'credentials'));
  const client = new LiftoffClient({ baseUrl: server.url, apiKey: creds?.api_key ?? '' });
  const others: RunningServer[] = [];
  return {
    server,
    client,
    home,
    dataDir,
    databaseUrl: pgDb?.url,
    async exec(statement: string) {
      if (pgDb) {
        const c = new pg.Client({ connectionString: pgDb.url });
        await c.connect();
        await c.query(statement).finally(() => c.end());
      } else {
        const db = new BetterSqlite3(join(dataDir, 'liftoff.db'));
        try {
          db.exec(statement);
        } finally {
          db.close();
        }
      }
    },
    async query(statement: string) {
      if (pgDb) {
        const c = new pg.Client({ connectionString: pgDb.url });
        await c.connect();
        return (await c.query(statement).finally(() => c.end())).rows as Array<Record<string, unknown>>;
      }
      const db = new BetterSqlite3(join(dataDir, 'liftoff.db'), { readonly: true });
      try {
        return db.prepare(statement).all() as Array<Record<string, unknown>>;
      } finally {
        db.close();
      }
    },
    async restart(s = settings) {
      const other = await start(s);
      others.push(other);
      return other;
    },
    async close() {
      for (const o of others) await o.close().catch(() => undefined);
      await server.close().catch(() => undefined);
      await pgDb?.drop();
      rmSync(home, { recursive: true, force: true });
    },
  };
}

/** The LiftoffError a call fails with; fails the test when the call succeeds. */
export async function refusal(p: Promise<unknown>): Promise<LiftoffError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof LiftoffError) return e;
    throw e;
  }
  throw new Error('expected the call to be refused');
}

/** Registers agent `agentId` on the default queue, pushes an item there and starts it: returns the run's id. */
export async function startedRun(client: LiftoffClient, agentId: string): Promise<string> {
  await client.registerAgent({
    id: agentId,
    name: agentId,
    entity: 'default',
    hostname: 'h',
    queues: ['default'],
    version: 't',
    max_jobs: 1,
  });
  const item = await client.push('default', 'default', {
    spec: { source: { type: 'git', url: 'https://git.example.com/x.git' }, entry_point: ['true'] },
  });
  await client.poll(agentId, { queues: ['default'], max_items: 1, wait_ms: 0 });
  return (await client.ackItem(item.id, agentId)).id;
}
