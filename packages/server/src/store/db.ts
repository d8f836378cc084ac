import type { Kysely, Transaction } from 'kysely';
import type { Database } from './schema.js';

/** A connection or an open transaction: queries that may run inside a caller's transaction take either. */
export type Db = Kysely<Database> | Transaction<Database>;

/** JSON columns are text on both databases (schema.ts). */
export const json = (v: unknown): string => JSON.stringify(v);

/** Nullable integer columns: PostgreSQL's int8 and SQLite's integers both come back as numbers (database.ts). */
export const numOrNull = (v: number | null): number | null => (v === null ? null : Number(v));
