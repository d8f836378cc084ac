import { sql, type Kysely, type RawBuilder } from 'kysely';
import { ITEM_STATES, InvalidCursorError, RunQueryError, type RunListRow } from '@liftoff/core';
import type { DialectName } from './database.js';
import { toRun } from './runs.js';
import type { Column, Sort } from './runColumns.js';
import { matchCondition, searchCandidates } from './runSearch.js';
import type { Database } from './schema.js';

/**
 * The runs list (docs/api.md "Runs list"): filters, chosen columns, one sort, keyset paging. One builder for the
 * queue page, the global runs page and sweeps (issues 17-19).
 *
 * A sort is a tuple of "parts" compared left to right, then the run id, so that every run has one place in the
 * order and a cursor (the last row's parts) resumes exactly after it even while runs are inserted (keyset, not
 * OFFSET). A column that may be missing or of mixed JSON types is the tuple (rank, number, string):
 * - rank puts numbers and strings in the sort's direction and missing values (absent, JSON null) last either way;
 * - numbers compare as numbers, strings byte-wise (SQLite BINARY, PostgreSQL COLLATE "C": the same order on both);
 * - with mixed types, ascending gives numbers before strings, descending strings before numbers (the reverse);
 *   booleans, objects and arrays compare as their JSON text among the strings.
 * created_at is never missing: it sorts on the column alone, which the runs_created indexes serve.
 *
 * Keys and paths reach SQL only as bound parameters (a JSON path string on SQLite, a text[] on PostgreSQL), aliases
 * are generated (c0, k0), and directions and ranks are constants of this file.
 */
type PartType = 'int' | 'float' | 'str';
interface Part {
  expr: RawBuilder<unknown>;
  desc: boolean;
  type: PartType;
}

export interface RunListFilter {
  entityId: string;
  queueId?: string;
  states?: string[];
  agent?: string;
  q?: string;
  /** The runs that may match q, when the search index narrowed them (runSearch.ts); all runs otherwise. */
  candidates?: readonly string[];
  /** created_at ≥ since and < until (ms). */
  since?: number;
  until?: number;
}

const MISSING_RANK = 2;
const lit = (n: number) => sql.lit(n);

/** A value of the spec by path: the SQL value and its JSON type, per dialect. */
function specAt(dialect: DialectName, path: string[]) {
  if (dialect === 'sqlite') {
    // Segments are [A-Za-z0-9_-] (runColumns.ts), so quoting them needs no escapes.
    const p = `$${path.map((s) => `."${s}"`).join('')}`;
    const t = sql`json_type(items.spec, ${p})`;
    const x = sql`json_extract(items.spec, ${p})`;
    return {
      value: x,
      type: t,
      isNum: sql`${t} IN ('integer', 'real')`,
      isMissing: sql`(${t} IS NULL OR ${t} = 'null')`,
      num: x,
      str: sql`(CASE WHEN ${t} = 'true' THEN 'true' WHEN ${t} = 'false' THEN 'false' ELSE ${x} END)`,
    };
  }
  // sj.doc: the spec parsed once per run (the LATERAL join in runsQuery), not once per use.
  const v = sql`(sj.doc #> ${path}::text[])`;
  const t = sql`jsonb_typeof(${v})`;
  return {
    value: v,
    type: t,
    isNum: sql`${t} = 'number'`,
    isMissing: sql`(${t} IS NULL OR ${t} = 'null')`,
    num: sql`(${v} #>> '{}')::float8`,
    str: sql`(CASE WHEN ${t} = 'string' THEN ${v} #>> '{}' ELSE ${v}::text END)`,
  };
}

const METRIC_COLUMN = { last: 'last_value', min: 'min_value', max: 'max_value' } as const;

/** The alias of the run_metric_keys row joined for a metric key (one LEFT JOIN per distinct key: mk0, mk1, ...). */
type MetricAlias = (key: string) => string;

/** A nullable number per run: a metric summary, ended_at, duration. */
function numericOf(column: Column, mk: MetricAlias): RawBuilder<unknown> {
  if (column.kind === 'metric') return sql`${sql.ref(`${mk(column.key)}.${METRIC_COLUMN[column.agg]}`)}`;
  if (column.kind === 'field' && column.name === 'ended_at') return sql`runs.ended_at`;
  if (column.kind === 'field' && column.name === 'duration') return sql`(runs.ended_at - runs.started_at)`;
  throw new Error(`not a numeric column: ${column.name}`);
}

function sortParts(dialect: DialectName, sort: Sort, mk: MetricAlias): Part[] {
  const { column, desc } = sort;
  if (column.kind === 'field' && column.name === 'created_at')
    return [{ expr: sql`runs.created_at`, desc, type: 'int' }];
  if (column.kind === 'config' || (column.kind === 'field' && column.name === 'name')) {
    const j = specAt(dialect, column.kind === 'config' ? ['run_config', ...column.path] : ['name']);
    const [numRank, strRank] = desc ? [1, 0] : [0, 1];
    const collate = dialect === 'postgres' ? sql` COLLATE "C"` : sql``;
    return [
      {
        expr: sql`(CASE WHEN ${j.isNum} THEN ${lit(numRank)} WHEN ${j.isMissing} THEN ${lit(MISSING_RANK)} ELSE ${lit(strRank)} END)`,
        desc: false,
        type: 'int',
      },
      { expr: sql`(CASE WHEN ${j.isNum} THEN ${j.num} ELSE 0 END)`, desc, type: 'float' },
      {
        expr: sql`(CASE WHEN ${j.isNum} OR ${j.isMissing} THEN '' ELSE ${j.str} END)${collate}`,
        desc,
        type: 'str',
      },
    ];
  }
  const m = numericOf(column, mk);
  return [
    { expr: sql`(CASE WHEN ${m} IS NULL THEN ${lit(MISSING_RANK)} ELSE 0 END)`, desc: false, type: 'int' },
    { expr: sql`COALESCE(${m}, 0)`, desc, type: column.kind === 'metric' ? 'float' : 'int' },
  ];
}

/** A cursor's value bound for comparison with a part (PostgreSQL infers little from a bare parameter). */
function bound(dialect: DialectName, type: PartType, v: unknown): RawBuilder<unknown> {
  if (dialect === 'sqlite') return sql`${v}`;
  if (type === 'int') return sql`${v}::bigint`;
  if (type === 'float') return sql`${v}::float8`;
  return sql`${v}::text`;
}

/** Rows after the cursor: (p1 > v1) OR (p1 = v1 AND p2 > v2) OR ..., each comparison in its part's direction. */
function after(dialect: DialectName, parts: Part[], values: unknown[]): RawBuilder<unknown> {
  const ors = parts.map((p, i) => {
    const eqs = parts.slice(0, i).map((q, j) => sql`${q.expr} = ${bound(dialect, q.type, values[j])}`);
    const cmp = sql`${p.expr} ${sql.raw(p.desc ? '<' : '>')} ${bound(dialect, p.type, values[i])}`;
    return sql`(${sql.join([...eqs, cmp], sql` AND `)})`;
  });
  return sql`(${sql.join(ors, sql` OR `)})`;
}

function encodeCursor(sort: Sort, values: unknown[]): string {
  return Buffer.from(JSON.stringify([sort.text, ...values])).toString('base64url');
}

function decodeCursor(raw: string, sort: Sort, parts: Part[]): unknown[] {
  const refuse = (why: string) => new InvalidCursorError(why);
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(raw, 'base64url').toString('utf8'));
  } catch {
    throw refuse('is not one this server gave');
  }
  if (!Array.isArray(v) || v.length !== parts.length + 1) throw refuse('is not one this server gave');
  if (v[0] !== sort.text) throw refuse(`was given for another sort (not "${sort.text}")`);
  const values = v.slice(1);
  parts.forEach((p, i) => {
    const x: unknown = values[i];
    // A NUL would reach PostgreSQL's text (which refuses it) from a cursor crafted by hand: refused here, as a 400.
    const ok =
      p.type === 'str' ? typeof x === 'string' && !x.includes('\u0000') : typeof x === 'number' && Number.isFinite(x);
    if (!ok) throw refuse('is not one this server gave');
  });
  return values;
}

function columnValue(dialect: DialectName, column: Column, mk: MetricAlias): RawBuilder<unknown>[] {
  if (column.kind === 'metric') return [numericOf(column, mk)];
  if (column.kind !== 'config') throw new Error('only config and metric columns are shown');
  const j = specAt(dialect, ['run_config', ...column.path]);
  return dialect === 'sqlite' ? [j.value, j.type] : [j.value];
}

/** SQLite hands back a JSON value as its SQL value plus its json_type; PostgreSQL's jsonb arrives parsed. */
function decodeValue(dialect: DialectName, row: Record<string, unknown>, i: number): unknown {
  const v = row[`c${i}`];
  if (v === null || v === undefined) return null;
  if (dialect === 'postgres') return v;
  const t = row[`t${i}`];
  if (t === 'true') return true;
  if (t === 'false') return false;
  if (t === 'object' || t === 'array') return JSON.parse(v as string) as unknown;
  return v;
}

export interface RunListOptions {
  columns: Column[];
  sort: Sort;
  cursor?: string;
  limit: number;
}

/** The page's query (limit + 1 rows, to know whether there is a next page) and its sort parts; exported for EXPLAIN. */
export function runsQuery(db: Kysely<Database>, dialect: DialectName, filter: RunListFilter, opts: RunListOptions) {
  const metricKeys = [
    ...new Set([opts.sort.column, ...opts.columns].flatMap((c) => (c.kind === 'metric' ? [c.key] : []))),
  ];
  const mk: MetricAlias = (key) => `mk${metricKeys.indexOf(key)}`;
  const parts = [
    ...sortParts(dialect, opts.sort, mk),
    { expr: sql`runs.id`, desc: opts.sort.desc, type: 'str' as const },
  ];
  let q = db
    .selectFrom('runs')
    // LEFT joins though every run has its item, queue and entity: SQLite keeps runs the outer loop then, so the page
    // comes off the runs index in order; with inner joins it started from the (tiny) queues table and sorted.
    .leftJoin('items', 'items.id', 'runs.item_id')
    .leftJoin('queues', 'queues.id', 'runs.queue_id')
    .leftJoin('entities', 'entities.id', 'queues.entity_id')
    .selectAll('runs')
    .select(['queues.name as queue_name', 'entities.name as entity_name', 'items.created_at as queued_at'])
    .select('runs.name as run_name')
    // As a subquery rather than a filter on the joined queues: so SQLite's planner starts from runs and reads the
    // page off the (queue_id, created_at, id) index instead of sorting every run of the queue (bench/runs.mjs plans).
    .where(
      // On SQLite, across queues, the unary + keeps this term off the runs_queue_* indexes: without table statistics
      // (the server never runs ANALYZE) the planner otherwise read every run of each of the entity's queues and
      // sorted them all, where the global page wants the newest-first index read for a page and stopped. The cost
      // is an entity with few of the server's runs: the walk passes over the other entities' runs.
      (eb) =>
        eb(
          dialect === 'sqlite' && !filter.queueId ? sql<string>`+runs.queue_id` : sql<string>`runs.queue_id`,
          'in',
          eb.selectFrom('queues as eq').select('eq.id').where('eq.entity_id', '=', filter.entityId),
        ),
    );
  if (dialect === 'postgres')
    // OFFSET 0 keeps PostgreSQL from inlining the subquery, which would parse the spec again at every use of sj.doc.
    // Laterally joined, it is parsed only for the rows read: a page's worth on an index-ordered scan.
    q = q.innerJoin(sql`LATERAL (SELECT items.spec::jsonb AS doc OFFSET 0)`.as('sj') as never, (j) => j.onTrue());
  metricKeys.forEach((key, i) => {
    const a = `mk${i}`;
    q = q.leftJoin(sql`run_metric_keys`.as(a) as never, (j) =>
      j.on(sql<boolean>`${sql.ref(`${a}.run_id`)} = runs.id AND ${sql.ref(`${a}.key`)} = ${key}`),
    );
  });
  if (filter.queueId) q = q.where('runs.queue_id', '=', filter.queueId);
  if (filter.states?.length) {
    const unknown = filter.states.filter((s) => !(ITEM_STATES as readonly string[]).includes(s));
    if (unknown.length)
      throw new RunQueryError(`Unknown run state "${unknown[0]}": use ${ITEM_STATES.join(', ')} (comma-separated).`);
    q = q.where('runs.status', 'in', filter.states);
  }
  if (filter.agent) q = q.where('runs.agent_id', '=', filter.agent);
  if (filter.since !== undefined) q = q.where('runs.created_at', '>=', filter.since);
  if (filter.until !== undefined) q = q.where('runs.created_at', '<', filter.until);
  if (filter.candidates) q = q.where('runs.id', 'in', filter.candidates.length ? filter.candidates : ['']);
  if (filter.q) q = q.where(matchCondition(dialect, filter.q));
  if (opts.cursor !== undefined)
    q = q.where(after(dialect, parts, decodeCursor(opts.cursor, opts.sort, parts)) as RawBuilder<boolean>);
  opts.columns.forEach((c, i) => {
    const [value, type] = columnValue(dialect, c, mk);
    q = q.select((value as RawBuilder<unknown>).as(`c${i}`) as never);
    if (type) q = q.select(type.as(`t${i}`) as never);
  });
  parts.forEach((p, i) => {
    q = q.select(p.expr.as(`k${i}`) as never);
    q = q.orderBy(p.expr, p.desc ? 'desc' : 'asc');
  });
  return { query: q.limit(opts.limit + 1), parts };
}

export async function listRuns(
  db: Kysely<Database>,
  dialect: DialectName,
  filter: RunListFilter,
  opts: RunListOptions,
): Promise<{ runs: RunListRow[]; next_cursor: string | null }> {
  const candidates = filter.q ? await searchCandidates(db, dialect, filter, filter.q) : undefined;
  if (candidates?.length === 0) return { runs: [], next_cursor: null };
  const { query, parts } = runsQuery(db, dialect, { ...filter, candidates }, opts);
  const rows = (await query.execute()) as unknown as Array<
    Parameters<typeof toRun>[0] & { run_name: string | null; queued_at: number | null } & Record<string, unknown>
  >;
  const page = rows.slice(0, opts.limit);
  const last = page.at(-1);
  return {
    runs: page.map((r) => ({
      ...toRun(r),
      name: r.run_name,
      queued_at: r.queued_at === null ? null : Number(r.queued_at),
      // From the push to the start: waiting in line, then the agent's build and setup (docs/runs.md).
      queue_wait_ms: r.queued_at === null || r.started_at === null ? null : Number(r.started_at) - Number(r.queued_at),
      columns: Object.fromEntries(opts.columns.map((c, i) => [c.name, decodeValue(dialect, r, i)])),
    })),
    next_cursor:
      rows.length > opts.limit && last
        ? encodeCursor(
            opts.sort,
            parts.map((p, i) => (p.type === 'str' ? String(last[`k${i}`]) : Number(last[`k${i}`]))),
          )
        : null,
  };
}
