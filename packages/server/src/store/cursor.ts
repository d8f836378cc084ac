import { sql, type RawBuilder } from 'kysely';
import { InvalidCursorError } from '@liftoff/core';
import type { DialectName } from './database.js';

/**
 * Keyset cursors of the item and agent lists (the runs list has its own in runQuery.ts, bound to its sort). A
 * cursor is base64url JSON `[list, direction, ...key]`: which list and order it was given for, whether it resumes
 * after or before the key, and the key (the sort values of the row it was made from, the id last). Opaque to
 * clients; a cursor that does not decode to exactly that shape, with each value of its part's type, is refused
 * (INVALID_CURSOR) before any SQL is built. Values reach SQL only as bound parameters.
 *
 * Hand-written rather than a library: it is a dozen lines over JSON and base64url, and the checks are this app's.
 */
export type KeyType = 'int' | 'str';
export type Direction = 'after' | 'before';
export interface KeyPart {
  expr: RawBuilder<unknown>;
  /** The list's order on this part; `before` pages walk it backwards. */
  desc: boolean;
  type: KeyType;
}

export function encodeKeyCursor(list: string, direction: Direction, key: Array<string | number>): string {
  return Buffer.from(JSON.stringify([list, direction, ...key])).toString('base64url');
}

export function decodeKeyCursor(
  raw: string,
  list: string,
  types: KeyType[],
): { direction: Direction; key: Array<string | number> } {
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(raw, 'base64url').toString('utf8'));
  } catch {
    throw new InvalidCursorError('is not one this server gave');
  }
  if (!Array.isArray(v) || v.length !== types.length + 2) throw new InvalidCursorError('is not one this server gave');
  if (v[0] !== list) throw new InvalidCursorError(`was given for another list or order (not "${list}")`);
  const direction: unknown = v[1];
  if (direction !== 'after' && direction !== 'before') throw new InvalidCursorError('is not one this server gave');
  const key = v.slice(2) as unknown[];
  types.forEach((t, i) => {
    const x = key[i];
    // A NUL would reach PostgreSQL's text (which refuses it): refused here as a 400, like any other forged value.
    const ok =
      t === 'str'
        ? typeof x === 'string' && x.length <= 256 && !x.includes('\u0000')
        : typeof x === 'number' && Number.isSafeInteger(x);
    if (!ok) throw new InvalidCursorError('is not one this server gave');
  });
  return { direction, key: key as Array<string | number> };
}

function bound(dialect: DialectName, type: KeyType, v: string | number): RawBuilder<unknown> {
  if (dialect === 'sqlite') return sql`${v}`;
  return type === 'int' ? sql`${v}::bigint` : sql`${v}::text`;
}

/**
 * Rows strictly after (or before) `key` in the order of `parts`, as one row-value comparison `(p1, p2) > (v1, v2)`:
 * both databases read it as a range of an index on those columns (an OR of comparisons would be a filtered scan).
 * So every part of a list runs in one direction.
 */
export function beyond(
  dialect: DialectName,
  parts: KeyPart[],
  key: Array<string | number>,
  direction: Direction,
): RawBuilder<boolean> {
  const desc = parts[0]?.desc ?? false;
  if (parts.some((p) => p.desc !== desc)) throw new Error('a keyset list runs in one direction');
  const greater = desc === (direction === 'before');
  const lhs = sql.join(parts.map((p) => p.expr));
  const rhs = sql.join(parts.map((p, i) => bound(dialect, p.type, key[i] as string | number)));
  return sql<boolean>`((${lhs}) ${sql.raw(greater ? '>' : '<')} (${rhs}))`;
}

/**
 * From the rows of one query (limit + 1, read in the direction of travel), the page in the list's order and the
 * cursors around it: `next` after its last row, `prev` before its first. `started` says whether there are rows on
 * the far side of where the read began (a cursor was given): if so, the way back is open.
 */
export function pageOf<R>(
  rows: R[],
  opts: {
    limit: number;
    direction: Direction;
    started: boolean;
    list: string;
    keyOf: (r: R) => Array<string | number>;
  },
): { page: R[]; next_cursor: string | null; prev_cursor: string | null } {
  const more = rows.length > opts.limit;
  const read = rows.slice(0, opts.limit);
  const page = opts.direction === 'after' ? read : read.reverse();
  const first = page[0];
  const last = page.at(-1);
  const hasNext = opts.direction === 'after' ? more : opts.started;
  const hasPrev = opts.direction === 'after' ? opts.started : more;
  return {
    page,
    next_cursor: hasNext && last ? encodeKeyCursor(opts.list, 'after', opts.keyOf(last)) : null,
    prev_cursor: hasPrev && first ? encodeKeyCursor(opts.list, 'before', opts.keyOf(first)) : null,
  };
}
