import { RunQueryError } from '@liftoff/core';
import { MAX_METRIC_KEY_LENGTH } from '../metricLines.js';

/**
 * The runs list's column and sort syntax (docs/api.md "Runs list"), parsed into a closed set of shapes before any SQL
 * is built: runQuery.ts only ever binds a column's key or path as a parameter, never splices it into SQL.
 *
 * - `config.<dotted key>`: a value of the run config (the spec's `run_config`, as `--set a.b=1` nests it);
 * - `metric.<key>[.last|.min|.max]`: a metric key's summary (last when not said). A key that itself ends in `.min`
 *   is named with its aggregate written out (`metric.val.min.last`);
 * - for sorting only, also `created_at`, `ended_at`, `duration` (ended_at - started_at) and `name`.
 */
export const MAX_COLUMNS = 20;
/** Longest column name, in characters (a metric key is at most MAX_METRIC_KEY_LENGTH; config paths are shorter). */
export const MAX_COLUMN_LENGTH = 200;
export const MAX_CONFIG_DEPTH = 8;
/**
 * A config key segment: letters, digits, `_` and `-`. Narrower than what a run config may hold, on purpose: the
 * segment goes into a JSON path (SQLite's `$."seg"`), and this set needs no quoting rules there or in PostgreSQL.
 */
const CONFIG_SEGMENT = /^[A-Za-z0-9_-]{1,64}$/;
export const METRIC_AGGREGATES = ['last', 'min', 'max'] as const;
export type MetricAggregate = (typeof METRIC_AGGREGATES)[number];
export const SORT_FIELDS = ['created_at', 'ended_at', 'duration', 'name'] as const;
export type SortField = (typeof SORT_FIELDS)[number];

export type Column =
  | { kind: 'config'; name: string; path: string[] }
  | { kind: 'metric'; name: string; key: string; agg: MetricAggregate }
  | { kind: 'field'; name: SortField };

export interface Sort {
  column: Column;
  desc: boolean;
  /** The sort as written canonically; a cursor carries it so that it is refused under another sort. */
  text: string;
}

export function parseColumn(raw: string, what = 'Column'): Column {
  if (raw.length > MAX_COLUMN_LENGTH)
    throw new RunQueryError(`${what} "${raw.slice(0, 40)}…" is over ${MAX_COLUMN_LENGTH} characters.`);
  if (raw.startsWith('config.')) {
    const path = raw.slice('config.'.length).split('.');
    if (path.length > MAX_CONFIG_DEPTH || !path.every((s) => CONFIG_SEGMENT.test(s)))
      throw new RunQueryError(
        `${what} "${raw}" is not a config key Liftoff can sort or show: write config.<key>[.<key>...] with at most ${MAX_CONFIG_DEPTH} keys of letters, digits, "_" and "-" (e.g. config.optimizer.lr).`,
      );
    return { kind: 'config', name: raw, path };
  }
  if (raw.startsWith('metric.')) {
    let key = raw.slice('metric.'.length);
    let agg: MetricAggregate = 'last';
    const dot = key.lastIndexOf('.');
    const tail = dot > 0 ? key.slice(dot + 1) : '';
    if ((METRIC_AGGREGATES as readonly string[]).includes(tail)) {
      agg = tail as MetricAggregate;
      key = key.slice(0, dot);
    }
    if (key === '' || key.length > MAX_METRIC_KEY_LENGTH || key.includes('\u0000') || key.includes(','))
      throw new RunQueryError(
        `${what} "${raw}" does not name a metric key: write metric.<key>[.last|.min|.max] with a key of 1 to ${MAX_METRIC_KEY_LENGTH} characters (no commas).`,
      );
    return { kind: 'metric', name: raw, key, agg };
  }
  if ((SORT_FIELDS as readonly string[]).includes(raw) && what === 'Sort')
    return { kind: 'field', name: raw as SortField };
  throw new RunQueryError(
    `${what} "${raw}" is unknown: use config.<key> or metric.<key>[.last|.min|.max]${what === 'Sort' ? `, or one of ${SORT_FIELDS.join(', ')}` : ''}.`,
  );
}

/** `columns=a,b`: distinct names in the order given, at most MAX_COLUMNS. */
export function parseColumns(raw: string | undefined): Column[] {
  if (raw === undefined || raw === '') return [];
  const names = [...new Set(raw.split(','))];
  if (names.length > MAX_COLUMNS)
    throw new RunQueryError(`At most ${MAX_COLUMNS} columns per request (got ${names.length}); ask for fewer.`);
  return names.map((n) => parseColumn(n));
}

/** `sort=[-]<column>`: `-` sorts descending. Newest first when not given. */
export function parseSort(raw: string | undefined): Sort {
  const text = raw === undefined || raw === '' ? '-created_at' : raw;
  const desc = text.startsWith('-');
  return { column: parseColumn(desc ? text.slice(1) : text, 'Sort'), desc, text };
}
