import BetterSqlite3 from 'better-sqlite3';
import { Kysely, PostgresDialect, SqliteDialect } from 'kysely';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import pg from 'pg';
import { BadRequestError, LiftoffError, StorageError } from '@liftoff/core';
import { migrateToLatest } from './migrations.js';
import type { Database } from './schema.js';

export type DialectName = 'sqlite' | 'postgres';

export interface OpenDatabase {
  db: Kysely<Database>;
  dialect: DialectName;
  /** Set for PostgreSQL: the connection string, so the bus can open its own LISTEN connection. */
  url?: string;
}

/**
 * Opens (creating if needed) the embedded SQLite database, checks it, and migrates it. A file that exists but is
 * empty, unreadable or damaged is an error naming the file and the fix, never taken for a fresh install (that would
 * start over with no queues and mint a new admin key). server.ts makes the file owner-only.
 */
export async function openSqlite(path: string): Promise<OpenDatabase> {
  mkdirSync(dirname(path), { recursive: true });
  const existed = existsSync(path);
  if (existed && statSync(path).size === 0) {
    throw new StorageError(
      `${path} is empty (0 bytes), so it is not a Liftoff database. Restore it from a backup (docs/operations.md), or move it away to start a fresh install.`,
    );
  }
  let sqlite: BetterSqlite3.Database;
  try {
    sqlite = new BetterSqlite3(path);
    // WAL lets readers proceed during writes; busy_timeout makes a second process wait instead of failing.
    sqlite.pragma('journal_mode = WAL');
    sqlite.pragma('synchronous = NORMAL');
    sqlite.pragma('busy_timeout = 5000');
    sqlite.pragma('foreign_keys = ON');
    // quick_check reads every page once (no index cross-checks): damage is found at start, not by a later query.
    const check = existed ? (sqlite.pragma('quick_check', { simple: true }) as string) : 'ok';
    if (check !== 'ok') throw new Error(`integrity check failed: ${check}`);
  } catch (e) {
    throw new StorageError(
      `Cannot use the database ${path}: ${(e as Error).message}. Check that this user may read and write it; if it is damaged, restore it from a backup (docs/operations.md).`,
      e,
    );
  }
  cachePreparedStatements(sqlite);
  const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: sqlite }) });
  await migrateToLatest(db as Kysely<unknown>);
  return { db, dialect: 'sqlite' };
}

/**
 * kysely's SQLite driver prepares every statement again on each execution; compiling SQL is a good part of a small
 * query's cost. Statements are reused by their SQL text (kysely runs them to completion one at a time, so sharing
 * one is safe), in a bounded map.
 */
function cachePreparedStatements(sqlite: BetterSqlite3.Database, max = 512): void {
  const cache = new Map<string, BetterSqlite3.Statement>();
  const prepare = sqlite.prepare.bind(sqlite);
  sqlite.prepare = ((source: string) => {
    let stmt = cache.get(source);
    if (!stmt) {
      stmt = prepare(source);
      if (cache.size >= max) cache.delete(cache.keys().next().value as string);
      cache.set(source, stmt);
    }
    return stmt;
  }) as typeof sqlite.prepare;
}

const INT8_OID = 20;
/**
 * Timestamps, offsets and COUNT(*) are int8 in PostgreSQL, which node-postgres returns as strings to avoid losing
 * precision. Ours stay far below 2^53 (milliseconds until the year 287396), so they come back as numbers, set on
 * this pool only rather than globally so other pg users in the process are not affected.
 */
type Parser = (value: string) => unknown;
const pgTypes = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary'): Parser =>
    oid === INT8_OID
      ? (v: string) => Number(v)
      : (pg.types.getTypeParser(oid, format) as Parser)) as typeof pg.types.getTypeParser,
};

export function isPostgresUrl(url: string): boolean {
  return /^postgres(ql)?:\/\//.test(url);
}

/** Connects to PostgreSQL, checks the connection, and migrates. */
export async function openPostgres(url: string, poolSize = 10): Promise<OpenDatabase> {
  if (!isPostgresUrl(url)) {
    throw new BadRequestError(
      `--database must be a postgres:// or postgresql:// URL, got "${url}". Leave it out to use SQLite in the data dir.`,
    );
  }
  const pool = new pg.Pool({ connectionString: url, max: poolSize, types: pgTypes });
  // An idle client losing its connection (server restart) must not crash the process; the pool replaces it.
  pool.on('error', () => undefined);
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  try {
    await migrateToLatest(db as Kysely<unknown>);
  } catch (e) {
    await db.destroy();
    if (e instanceof LiftoffError) throw e;
    throw new LiftoffError(
      'SERVER_UNREACHABLE',
      `Cannot use the PostgreSQL database at ${redactUrl(url)}: ${(e as Error).message}. Check that it is running and that the URL, user and password are right.`,
      { cause: e },
    );
  }
  return { db, dialect: 'postgres', url };
}

/** The URL without its password, for messages and logs. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return 'the given URL';
  }
}
