import { sql, type Kysely, type RawBuilder } from 'kysely';
import type { DialectName } from './database.js';
import { SEARCH_TEXT_PG } from './runSearchSchema.js';
import type { Database } from './schema.js';

/**
 * The runs list's search (`q`, docs/runs.md "Search"): a run matches when its id starts with q or its name holds q,
 * ignoring ASCII case. Two steps:
 * 1. the trigram index of migration 0023 (runSearchSchema.ts) lists the entity's runs whose search text (id and name)
 *    holds q, at most CANDIDATE_LIMIT + 1 of them;
 * 2. if there are no more than CANDIDATE_LIMIT, the page's query reads just those runs by primary key and sorts
 *    them; if there are more, q is common, and the page's query reads the runs as any other filter does (newest
 *    first: off the index in order, testing each run, which meets matches often enough to fill a page soon).
 * Either way the exact condition (`matchCondition`) is tested on every run of the page: the index step only narrows.
 *
 * The choice is made here rather than left to the planners because neither can make it: SQLite has no statistics
 * (the server never runs ANALYZE), and PostgreSQL's estimate of a LIKE's selectivity comes from the pattern's
 * length, not from the data, so a long but common substring was read in full and sorted.
 */
export const CANDIDATE_LIMIT = 1000;

/** Trigram indexes need three characters in a row that the pattern takes literally. */
const MIN_FRAGMENT = 3;

/** `%`, `_` and the escape itself match literally in a LIKE pattern. */
export const likeEscape = (s: string) => s.replace(/[\\%_]/g, (c) => `\\${c}`);

/**
 * The longest piece of q without LIKE's special characters, if long enough to look up by trigrams. SQLite's FTS5
 * uses its index for a plain `LIKE` only (one with ESCAPE is a function call it cannot see into), so the index is
 * asked for the piece, a superset of the runs holding q.
 */
export function indexedFragment(q: string): string | undefined {
  const best = q.split(/[\\%_]/).reduce((a, b) => ([...b].length > [...a].length ? b : a), '');
  return [...best].length >= MIN_FRAGMENT ? best : undefined;
}

/** The exact test of a run against q, on the runs row (used on every row a searched page reads). */
export function matchCondition(dialect: DialectName, q: string): RawBuilder<boolean> {
  const e = likeEscape(q);
  // SQLite's LIKE ignores ASCII case; PostgreSQL's ILIKE does the same (and more): names match case-insensitively.
  const like = dialect === 'sqlite' ? sql`LIKE` : sql`ILIKE`;
  return sql<boolean>`(runs.id LIKE ${`${e}%`} ESCAPE '\\' OR runs.name ${like} ${`%${e}%`} ESCAPE '\\')`;
}

/** PostgreSQL: the search text holds q (served by the runs_search_trgm index, whose expression it repeats). */
export const pgSearchTextHolds = (q: string) => sql<boolean>`${SEARCH_TEXT_PG} ILIKE ${`%${likeEscape(q)}%`}`;

/** Step 1's query: the ids of the entity's runs (of one queue, if given) whose search text may match q. */
export function candidatesQuery(
  db: Kysely<Database>,
  dialect: DialectName,
  filter: { entityId: string; queueId?: string },
  q: string,
) {
  const fragment = indexedFragment(q);
  if (fragment === undefined) return undefined;
  const ofEntity = db.selectFrom('queues as eq').select('eq.id').where('eq.entity_id', '=', filter.entityId);
  if (dialect === 'postgres') {
    let query = db
      .selectFrom('runs')
      .select('runs.id')
      .where(pgSearchTextHolds(q))
      .where('runs.queue_id', 'in', ofEntity);
    if (filter.queueId) query = query.where('runs.queue_id', '=', filter.queueId);
    return query.limit(CANDIDATE_LIMIT + 1);
  }
  let query = db
    .selectFrom(sql`run_search_text`.as('st') as never)
    .innerJoin('runs', 'runs.id', sql.ref('st.run_id') as never)
    .select(sql<string>`st.run_id`.as('id'))
    .where(sql<boolean>`st.text LIKE ${`%${fragment}%`}`)
    .where('runs.queue_id', 'in', ofEntity);
  if (filter.queueId) query = query.where('runs.queue_id', '=', filter.queueId);
  return query.limit(CANDIDATE_LIMIT + 1);
}

/**
 * The runs that may match q, or undefined when the index cannot narrow the search (q too short, or too common):
 * the page's query then tests every run it walks.
 */
export async function searchCandidates(
  db: Kysely<Database>,
  dialect: DialectName,
  filter: { entityId: string; queueId?: string },
  q: string,
): Promise<string[] | undefined> {
  const query = candidatesQuery(db, dialect, filter, q);
  if (!query) return undefined;
  const rows = (await query.execute()) as Array<{ id: string }>;
  return rows.length > CANDIDATE_LIMIT ? undefined : rows.map((r) => r.id);
}
