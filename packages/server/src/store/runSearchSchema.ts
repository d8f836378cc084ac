import { PostgresAdapter, sql, type Kysely } from 'kysely';

/**
 * Migration 0023: the index behind the runs list's search (`q`: a run id prefix or a name substring; runSearch.ts).
 *
 * A run's name is copied onto its row (`runs.name`, written at the ack from the item's spec, which never changes),
 * so that an index can cover it; runs written before 0023 get theirs from their items here.
 *
 * What is indexed is the run's "search text", its id, a space and its name, by trigrams, so that one index lookup
 * finds both kinds of match (a search then rechecks the exact condition on the few rows it finds):
 * - PostgreSQL: a GIN index of pg_trgm over the expression SEARCH_TEXT_PG. pg_trgm ships with PostgreSQL and is a
 *   trusted extension (PostgreSQL 13+): the database's owner may create it. Where it cannot be created (an older
 *   server, or a role without CREATE on the database), the migration goes on without the index, and a search reads
 *   the runs as before 0023; docs/runs.md says how to add the index later.
 * - SQLite: an FTS5 table with its trigram tokenizer (`run_search_text`), kept in step with `runs` by triggers, so
 *   every way a run is written or deleted (acks, retention, bulk SQL) keeps it right. FTS5 rows are found by rowid,
 *   and a table without an INTEGER PRIMARY KEY (as runs) may have its rowids renumbered by VACUUM, so the FTS rowid is
 *   the key of a small table of its own (`run_search_rows`), which maps it to the run id for the delete trigger.
 */
export const SEARCH_TEXT_PG = sql`(runs.id || ' ' || COALESCE(runs.name, ''))`;

export async function createRunSearch(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('runs').addColumn('name', 'text').execute();
  if (db.getExecutor().adapter instanceof PostgresAdapter) {
    await sql`UPDATE runs SET name = items.spec::json ->> 'name' FROM items WHERE items.id = runs.item_id`.execute(db);
    if (await createExtension(db, 'pg_trgm'))
      await sql`CREATE INDEX runs_search_trgm ON runs USING gin ((id || ' ' || COALESCE(name, '')) gin_trgm_ops)`.execute(
        db,
      );
    return;
  }
  await sql`UPDATE runs SET name = (SELECT json_extract(items.spec, '$.name') FROM items WHERE items.id = runs.item_id)`.execute(
    db,
  );
  await sql`CREATE TABLE run_search_rows (seq INTEGER PRIMARY KEY, run_id TEXT NOT NULL UNIQUE)`.execute(db);
  // run_id is stored unindexed: a match's run is read off the FTS row itself. detail=none: LIKE needs only which
  // rows hold a trigram, not where (FTS5's trigram docs), and the index is then a fraction of the size.
  await sql`CREATE VIRTUAL TABLE run_search_text USING fts5(text, run_id UNINDEXED, tokenize = 'trigram', detail = 'none')`.execute(
    db,
  );
  await sql`CREATE TRIGGER runs_search_insert AFTER INSERT ON runs BEGIN
      INSERT INTO run_search_rows (run_id) VALUES (new.id);
      INSERT INTO run_search_text (rowid, text, run_id) VALUES (last_insert_rowid(), new.id || ' ' || COALESCE(new.name, ''), new.id);
    END`.execute(db);
  await sql`CREATE TRIGGER runs_search_delete AFTER DELETE ON runs BEGIN
      DELETE FROM run_search_text WHERE rowid = (SELECT seq FROM run_search_rows WHERE run_id = old.id);
      DELETE FROM run_search_rows WHERE run_id = old.id;
    END`.execute(db);
  // A run's id and name never change after its insert; should one ever be rewritten, its search text follows.
  await sql`CREATE TRIGGER runs_search_update AFTER UPDATE OF id, name ON runs BEGIN
      DELETE FROM run_search_text WHERE rowid = (SELECT seq FROM run_search_rows WHERE run_id = old.id);
      DELETE FROM run_search_rows WHERE run_id = old.id;
      INSERT INTO run_search_rows (run_id) VALUES (new.id);
      INSERT INTO run_search_text (rowid, text, run_id) VALUES (last_insert_rowid(), new.id || ' ' || COALESCE(new.name, ''), new.id);
    END`.execute(db);
  await sql`INSERT INTO run_search_rows (run_id) SELECT id FROM runs`.execute(db);
  await sql`INSERT INTO run_search_text (rowid, text, run_id)
      SELECT r.seq, runs.id || ' ' || COALESCE(runs.name, ''), runs.id FROM run_search_rows r JOIN runs ON runs.id = r.run_id`.execute(
    db,
  );
}

/**
 * CREATE EXTENSION inside the migration's transaction, in a savepoint: a refusal (not installed, not privileged)
 * rolls back only itself, and the caller goes on without what needs the extension.
 */
async function createExtension(db: Kysely<unknown>, name: 'pg_trgm'): Promise<boolean> {
  const have = await sql<{ n: number }>`SELECT count(*)::int AS n FROM pg_extension WHERE extname = ${name}`.execute(
    db,
  );
  if ((have.rows[0]?.n ?? 0) > 0) return true;
  await sql`SAVEPOINT liftoff_extension`.execute(db);
  try {
    await sql`CREATE EXTENSION IF NOT EXISTS pg_trgm`.execute(db);
    await sql`RELEASE SAVEPOINT liftoff_extension`.execute(db);
    return true;
  } catch {
    await sql`ROLLBACK TO SAVEPOINT liftoff_extension`.execute(db);
    return false;
  }
}
