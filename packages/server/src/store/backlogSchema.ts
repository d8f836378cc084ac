import { PostgresAdapter, sql, type Kysely } from 'kysely';

/**
 * Migration 0012: backlog counters kept by the database itself. Triggers on `items` count, per queue and priority,
 * the pending items and the active ones (claimed, starting, running, cancelling), in the transaction of every
 * INSERT, UPDATE of state/queue/priority and DELETE, whichever code path writes: queue views and positions read a
 * few counter rows instead of counting the backlog.
 *
 * SQLite runs one write transaction at a time, so its triggers update the counter rows directly. On PostgreSQL a
 * counter row updated by every push and claim would be a lock that all writers of a queue queue behind until they
 * commit, and transactions touching two queues in opposite orders (a batched ack next to the reaper) could
 * deadlock on them; so there the trigger only appends a delta row (no lock shared with anyone), readers add the
 * deltas to the counters, and backlog.ts folds deltas into the counters in one statement every second.
 *
 * Written as triggers rather than calls in each write path: there are a dozen such paths (push, claim, ack, report,
 * cancel, release, lease expiry, dead agents, lost runs, preemption, queue deletion, pruning) and batched ones are
 * being added; a trigger cannot be forgotten by the next one.
 */
const ACTIVE = `('claimed', 'starting', 'running', 'cancelling')`;

export async function createBacklogCounters(db: Kysely<unknown>): Promise<void> {
  const postgres = db.getExecutor().adapter instanceof PostgresAdapter;
  await sql`CREATE TABLE queue_backlog (
    queue_id text NOT NULL,
    priority integer NOT NULL,
    pending bigint NOT NULL DEFAULT 0,
    active bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (queue_id, priority)
  )`.execute(db);
  // SQLite never writes deltas; the table exists on both so one read query serves both.
  await sql
    .raw(
      `CREATE TABLE queue_backlog_deltas (
    id ${postgres ? 'bigserial PRIMARY KEY' : 'integer PRIMARY KEY AUTOINCREMENT'},
    queue_id text NOT NULL,
    priority integer NOT NULL,
    pending integer NOT NULL,
    active integer NOT NULL
  )`,
    )
    .execute(db);
  await sql`CREATE INDEX queue_backlog_deltas_queue ON queue_backlog_deltas (queue_id, priority)`.execute(db);
  if (postgres) await postgresTriggers(db);
  else await sqliteTriggers(db);
  // Counters from the rows already there. In the migration's transaction, after the triggers exist: on PostgreSQL
  // CREATE TRIGGER locks items against writes until the commit, so no write is counted twice or missed.
  await sql
    .raw(
      `INSERT INTO queue_backlog (queue_id, priority, pending, active)
    SELECT queue_id, priority,
      SUM(CASE WHEN state = 'pending' THEN 1 ELSE 0 END),
      SUM(CASE WHEN state IN ${ACTIVE} THEN 1 ELSE 0 END)
    FROM items WHERE state = 'pending' OR state IN ${ACTIVE}
    GROUP BY queue_id, priority`,
    )
    .execute(db);
}

async function sqliteTriggers(db: Kysely<unknown>): Promise<void> {
  const pend = (r: string) => `(${r}.state = 'pending')`;
  const act = (r: string) => `(${r}.state IN ${ACTIVE})`;
  const add = (r: 'NEW' | 'OLD', sign: '+' | '-') => `
    INSERT OR IGNORE INTO queue_backlog (queue_id, priority, pending, active) VALUES (${r}.queue_id, ${r}.priority, 0, 0);
    UPDATE queue_backlog SET pending = pending ${sign} ${pend(r)}, active = active ${sign} ${act(r)}
      WHERE queue_id = ${r}.queue_id AND priority = ${r}.priority;`;
  const counted = (r: string) => `(${pend(r)} OR ${act(r)})`;
  await sql
    .raw(
      `CREATE TRIGGER items_backlog_insert AFTER INSERT ON items WHEN ${counted('NEW')} BEGIN ${add('NEW', '+')} END`,
    )
    .execute(db);
  await sql
    .raw(
      `CREATE TRIGGER items_backlog_delete AFTER DELETE ON items WHEN ${counted('OLD')} BEGIN ${add('OLD', '-')} END`,
    )
    .execute(db);
  await sql
    .raw(
      `CREATE TRIGGER items_backlog_update AFTER UPDATE OF state, queue_id, priority ON items
      WHEN (${counted('OLD')} OR ${counted('NEW')})
        AND (OLD.state IS NOT NEW.state OR OLD.queue_id IS NOT NEW.queue_id OR OLD.priority IS NOT NEW.priority)
      BEGIN ${add('OLD', '-')} ${add('NEW', '+')} END`,
    )
    .execute(db);
}

async function postgresTriggers(db: Kysely<unknown>): Promise<void> {
  await sql
    .raw(
      `CREATE FUNCTION liftoff_backlog_delta() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  old_p integer := 0; old_a integer := 0; new_p integer := 0; new_a integer := 0;
BEGIN
  IF TG_OP <> 'INSERT' THEN
    old_p := (OLD.state = 'pending')::integer;
    old_a := (OLD.state IN ${ACTIVE})::integer;
  END IF;
  IF TG_OP <> 'DELETE' THEN
    new_p := (NEW.state = 'pending')::integer;
    new_a := (NEW.state IN ${ACTIVE})::integer;
  END IF;
  IF TG_OP = 'UPDATE' AND OLD.queue_id = NEW.queue_id AND OLD.priority = NEW.priority THEN
    -- One row for a move within the counters of one queue and priority (a claim: pending -1, active +1).
    IF new_p <> old_p OR new_a <> old_a THEN
      INSERT INTO queue_backlog_deltas (queue_id, priority, pending, active)
        VALUES (NEW.queue_id, NEW.priority, new_p - old_p, new_a - old_a);
    END IF;
    RETURN NULL;
  END IF;
  IF old_p + old_a > 0 THEN
    INSERT INTO queue_backlog_deltas (queue_id, priority, pending, active)
      VALUES (OLD.queue_id, OLD.priority, -old_p, -old_a);
  END IF;
  IF new_p + new_a > 0 THEN
    INSERT INTO queue_backlog_deltas (queue_id, priority, pending, active)
      VALUES (NEW.queue_id, NEW.priority, new_p, new_a);
  END IF;
  RETURN NULL;
END $$`,
    )
    .execute(db);
  await sql
    .raw(
      `CREATE TRIGGER items_backlog AFTER INSERT OR DELETE OR UPDATE OF state, queue_id, priority ON items
      FOR EACH ROW EXECUTE FUNCTION liftoff_backlog_delta()`,
    )
    .execute(db);
}
