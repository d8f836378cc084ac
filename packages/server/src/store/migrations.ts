import { Migrator, PostgresAdapter, sql, type Kysely, type Migration, type MigrationProvider } from 'kysely';
import { LiftoffError, redactConfig } from '@liftoff/core';
import { createBacklogCounters } from './backlogSchema.js';
import { createJobTables } from './jobsSchema.js';
import { createRunSearch } from './runSearchSchema.js';
import { createSweepTables } from './sweepsSchema.js';

/**
 * Numbered migrations, written with kysely's schema builder so one definition serves SQLite and PostgreSQL.
 * `bigint` holds millisecond timestamps and byte offsets; `text` holds ids, enums and JSON.
 */
const migrations: Record<string, Migration> = {
  '0001_initial': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('entities')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('name', 'text', (c) => c.notNull().unique())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('api_keys')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('key_hash', 'text', (c) => c.notNull().unique())
        .addColumn('role', 'text', (c) => c.notNull())
        .addColumn('entity_id', 'text', (c) => c.references('entities.id'))
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('last_used_at', 'bigint')
        .execute();
      await db.schema
        .createTable('queues')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('entity_id', 'text', (c) => c.notNull().references('entities.id'))
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('resource', 'text', (c) => c.notNull())
        .addColumn('resource_args', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addUniqueConstraint('queues_entity_name', ['entity_id', 'name'])
        .execute();
      await db.schema
        .createTable('items')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('queue_id', 'text', (c) => c.notNull())
        .addColumn('priority', 'integer', (c) => c.notNull())
        .addColumn('state', 'text', (c) => c.notNull())
        .addColumn('spec', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('claimed_by', 'text')
        .addColumn('claimed_at', 'bigint')
        .addColumn('lease_expires_at', 'bigint')
        .addColumn('ended_at', 'bigint')
        .addColumn('run_id', 'text')
        .execute();
      await db.schema
        .createIndex('items_dispatch')
        .on('items')
        .columns(['queue_id', 'state', 'priority', 'id'])
        .execute();
      await db.schema.createIndex('items_claims').on('items').columns(['state', 'lease_expires_at']).execute();
      await db.schema.createIndex('items_claimed_by').on('items').columns(['claimed_by', 'state']).execute();
      await db.schema
        .createTable('runs')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('item_id', 'text', (c) => c.notNull())
        .addColumn('queue_id', 'text', (c) => c.notNull())
        .addColumn('agent_id', 'text', (c) => c.notNull())
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('exit_code', 'integer')
        .addColumn('error_stage', 'text')
        .addColumn('error_message', 'text')
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('started_at', 'bigint')
        .addColumn('ended_at', 'bigint')
        .addColumn('log_size', 'bigint', (c) => c.notNull().defaultTo(0))
        .execute();
      await db.schema.createIndex('runs_queue').on('runs').columns(['queue_id', 'created_at']).execute();
      await db.schema.createIndex('runs_agent').on('runs').columns(['agent_id', 'status']).execute();
      await db.schema
        .createTable('agents')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('entity_id', 'text', (c) => c.notNull())
        .addColumn('hostname', 'text', (c) => c.notNull())
        .addColumn('queues', 'text', (c) => c.notNull())
        .addColumn('version', 'text', (c) => c.notNull())
        .addColumn('config', 'text', (c) => c.notNull())
        .addColumn('max_jobs', 'integer', (c) => c.notNull())
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('status_reason', 'text')
        .addColumn('started_at', 'bigint', (c) => c.notNull())
        .addColumn('last_heartbeat_at', 'bigint', (c) => c.notNull())
        .addColumn('current_jobs', 'integer', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('log_chunks')
        .addColumn('run_id', 'text', (c) => c.notNull())
        .addColumn('offset', 'bigint', (c) => c.notNull())
        .addColumn('size', 'integer', (c) => c.notNull())
        .addColumn('data', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('log_chunks_pk', ['run_id', 'offset'])
        .execute();
      await db.schema
        .createTable('code_archives')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('entity_id', 'text', (c) => c.notNull())
        .addColumn('sha256', 'text', (c) => c.notNull())
        .addColumn('size', 'bigint', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addUniqueConstraint('code_archives_entity_sha', ['entity_id', 'sha256'])
        .execute();
    },
  },
  '0002_scale': {
    async up(db: Kysely<unknown>) {
      // Replicas do not share a data dir, so on PostgreSQL code archives live in the database (SQLite keeps files).
      await db.schema
        .createTable('archive_blobs')
        .addColumn('sha256', 'text', (c) => c.primaryKey())
        .addColumn('data', 'bytea', (c) => c.notNull())
        .execute();
      await db.schema
        .alterTable('queues')
        .addColumn('prioritization_mode', 'text', (c) => c.notNull().defaultTo('DISABLED'))
        .execute();
      // Aging: a pending item moves up one priority level per `aging_ms` waited (null: no aging).
      await db.schema.alterTable('queues').addColumn('aging_ms', 'bigint').execute();
      // Most items claimed, starting, running or cancelling at once (null: unlimited).
      await db.schema.alterTable('queues').addColumn('max_concurrency', 'integer').execute();
      await db.schema
        .alterTable('queues')
        .addColumn('template_variables', 'text', (c) => c.notNull().defaultTo('{}'))
        .execute();
      await db.schema.alterTable('entities').addColumn('max_concurrency', 'integer').execute();
      // A remote stop request: 'finish' (let runs end) or 'stop-runs' (stop them); null when none.
      await db.schema.alterTable('agents').addColumn('stop_mode', 'text').execute();
    },
  },
  '0003_teams': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('users')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('name', 'text', (c) => c.notNull().unique())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .execute();
      // 'user': the personal entity of the user of the same name; 'team': shared by its members.
      await db.schema
        .alterTable('entities')
        .addColumn('kind', 'text', (c) => c.notNull().defaultTo('team'))
        .execute();
      await db.schema
        .createTable('memberships')
        .addColumn('entity_id', 'text', (c) => c.notNull())
        .addColumn('user_id', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addPrimaryKeyConstraint('memberships_pk', ['entity_id', 'user_id'])
        .execute();
      // User keys (admin, member) act in their user's entities; agent keys have entity_id and no user.
      await db.schema.alterTable('api_keys').addColumn('user_id', 'text').execute();
    },
  },
  '0004_preemption': {
    async up(db: Kysely<unknown>) {
      // Switches the agent applies while running an item (start timeout, Kubernetes guardrail exceptions) and the
      // requeue policy for preempted runs. SQLite adds one column per ALTER TABLE, hence one statement each.
      await db.schema.alterTable('queues').addColumn('start_timeout_seconds', 'integer').execute();
      await db.schema
        .alterTable('queues')
        .addColumn('preemption_retries', 'integer', (c) => c.notNull().defaultTo(3))
        .execute();
      await db.schema
        .alterTable('queues')
        .addColumn('preemption_backoff_seconds', 'integer', (c) => c.notNull().defaultTo(30))
        .execute();
      await db.schema
        .alterTable('queues')
        .addColumn('allow', 'text', (c) => c.notNull().defaultTo('[]'))
        .execute();
      await db.schema
        .alterTable('items')
        .addColumn('preemptions', 'integer', (c) => c.notNull().defaultTo(0))
        .execute();
      // A requeued item is not claimable before this time; the reaper clears it once passed.
      await db.schema.alterTable('items').addColumn('not_before', 'bigint').execute();
      // Partial: the reaper looks for due backoffs every tick, and only a handful of items ever have one.
      await db.schema
        .createIndex('items_backoff')
        .on('items')
        .column('not_before')
        .where(sql.ref('not_before'), 'is not', null)
        .execute();
      await db.schema.alterTable('runs').addColumn('warning', 'text').execute();
    },
  },
  '0005_locked_keys': {
    async up(db: Kysely<unknown>) {
      // Resource-arg keys a queue's owner sets and items may not override (JSON array of dotted paths).
      await db.schema
        .alterTable('queues')
        .addColumn('locked_keys', 'text', (c) => c.notNull().defaultTo('[]'))
        .execute();
    },
  },
  '0006_log_chunks': {
    async up(db: Kysely<unknown>) {
      // The agent's `[liftoff]` notes are stored apart from the job's output, so a job printing one cannot forge it.
      await db.schema
        .alterTable('log_chunks')
        .addColumn('kind', 'text', (c) => c.notNull().defaultTo('output'))
        .execute();
      // Log bytes are stored as bytes: PostgreSQL's text refuses a NUL, which any job may print. (SQLite's text
      // column stores the Buffers written from now on as BLOBs as they are.)
      if (db.getExecutor().adapter instanceof PostgresAdapter)
        await sql`ALTER TABLE log_chunks ALTER COLUMN data TYPE bytea USING convert_to(data, 'UTF8')`.execute(db);
    },
  },
  '0007_accounts': {
    async up(db: Kysely<unknown>) {
      // The key that registered an agent id; only it may speak for that agent (null: registered before 0007,
      // bound by the first agent key of its entity that uses it).
      await db.schema.alterTable('agents').addColumn('key_id', 'text').execute();
      // A member's role in the entity. Before 0007 a user key's own role applied in every entity of its user, so
      // existing memberships become 'admin': the key's role (the lower of the two counts) decides as it did.
      await db.schema
        .alterTable('memberships')
        .addColumn('role', 'text', (c) => c.notNull().defaultTo('admin'))
        .execute();
      // After this time the key is refused (null: never).
      await db.schema.alterTable('api_keys').addColumn('expires_at', 'bigint').execute();
    },
  },
  '0008_secrets': {
    async up(db: Kysely<unknown>) {
      // Per-entity secrets, encrypted (AES-256-GCM) under the server's key file: nonce and ciphertext+tag, base64.
      await db.schema
        .createTable('entity_secrets')
        .addColumn('entity_id', 'text', (c) => c.notNull().references('entities.id'))
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('nonce', 'text', (c) => c.notNull())
        .addColumn('ciphertext', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .addColumn('updated_by', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('entity_secrets_pk', ['entity_id', 'name'])
        .execute();
      // One row: a check value of the key the secrets are encrypted under, so a replica with another key refuses
      // to start instead of failing every run that needs a secret.
      await db.schema
        .createTable('secrets_key_check')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('check_value', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .execute();
      // Agent configs stored before redaction existed may hold registry passwords and tokens: redact them in place.
      await redactStoredAgentConfigs(db);
    },
  },
  '0009_lease': {
    async up(db: Kysely<unknown>) {
      // The per-run log cap: `log_size` stays the bytes stored (what readers page through), `log_received` is the
      // agent-facing offset (every byte accepted, stored or dropped past the cap), `log_dropped` what the cap
      // dropped, and `log_cap_note_at` the offset of the one truncation note (null while under the cap).
      await db.schema
        .alterTable('runs')
        .addColumn('log_received', 'bigint', (c) => c.notNull().defaultTo(0))
        .execute();
      await sql`UPDATE runs SET log_received = log_size`.execute(db);
      await db.schema
        .alterTable('runs')
        .addColumn('log_dropped', 'bigint', (c) => c.notNull().defaultTo(0))
        .execute();
      await db.schema.alterTable('runs').addColumn('log_cap_note_at', 'bigint').execute();
      // A queue may lower the server's cap (null: the server's).
      await db.schema.alterTable('queues').addColumn('max_log_bytes', 'bigint').execute();
      // Runs declared lost (their agent silent too long) requeue their item this many times (0: never).
      await db.schema
        .alterTable('queues')
        .addColumn('lost_retries', 'integer', (c) => c.notNull().defaultTo(0))
        .execute();
      await db.schema
        .alterTable('items')
        .addColumn('lost_runs', 'integer', (c) => c.notNull().defaultTo(0))
        .execute();
      // The reaper looks for live runs of silent agents every tick; live runs are few among all runs ever made.
      await db.schema.createIndex('runs_status').on('runs').columns(['status', 'agent_id']).execute();
    },
  },
  '0010_metrics': {
    async up(db: Kysely<unknown>) {
      // Metrics parsed from job output at log ingestion (store/metrics.ts): the scan's carry and counters per run,
      // a summary per run and key, and the (thinned) points.
      await db.schema.alterTable('runs').addColumn('metric_carry', 'text').execute();
      for (const column of ['metric_lines', 'metric_seq', 'metric_refused'])
        await db.schema
          .alterTable('runs')
          .addColumn(column, 'bigint', (c) => c.notNull().defaultTo(0))
          .execute();
      await db.schema
        .createTable('run_metric_keys')
        .addColumn('run_id', 'text', (c) => c.notNull().references('runs.id'))
        .addColumn('key', 'text', (c) => c.notNull())
        .addColumn('seen', 'bigint', (c) => c.notNull())
        .addColumn('stored', 'integer', (c) => c.notNull())
        .addColumn('stride', 'bigint', (c) => c.notNull())
        .addColumn('last_step', 'bigint', (c) => c.notNull())
        .addColumn('last_value', 'double precision', (c) => c.notNull())
        .addColumn('last_time', 'bigint', (c) => c.notNull())
        .addColumn('min_value', 'double precision', (c) => c.notNull())
        .addColumn('max_value', 'double precision', (c) => c.notNull())
        .addPrimaryKeyConstraint('run_metric_keys_pk', ['run_id', 'key'])
        .execute();
      await db.schema
        .createTable('run_metric_points')
        .addColumn('run_id', 'text', (c) => c.notNull().references('runs.id'))
        .addColumn('key', 'text', (c) => c.notNull())
        .addColumn('idx', 'bigint', (c) => c.notNull())
        .addColumn('seq', 'bigint', (c) => c.notNull())
        .addColumn('step', 'bigint', (c) => c.notNull())
        .addColumn('value', 'double precision', (c) => c.notNull())
        .addColumn('time', 'bigint', (c) => c.notNull())
        .addPrimaryKeyConstraint('run_metric_points_pk', ['run_id', 'key', 'idx'])
        .execute();
      await db.schema.createIndex('run_metric_points_seq').on('run_metric_points').columns(['run_id', 'seq']).execute();
    },
  },
  '0012_backlog_counters': {
    // Pending and active counts per queue and priority, kept by triggers (backlogSchema.ts).
    up: createBacklogCounters,
  },
  '0013_item_pushed': {
    // The push as its author sent it (before the queue's resource args and templates were merged in), so a run can
    // be launched again exactly as it was asked for. Items pushed before this have none.
    async up(db: Kysely<unknown>) {
      await db.schema.alterTable('items').addColumn('pushed', 'text').execute();
    },
  },
  '0014_outputs': {
    // Run outputs (docs/outputs.md): one row per file of a run; `received` bytes of it are stored as chunks in the
    // artifact store; listed only once `state` is 'committed', which one commit sets for all of a run's files.
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('run_outputs')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('run_id', 'text', (c) => c.notNull())
        .addColumn('entity_id', 'text', (c) => c.notNull())
        .addColumn('path', 'text', (c) => c.notNull())
        .addColumn('size', 'bigint', (c) => c.notNull())
        .addColumn('sha256', 'text', (c) => c.notNull())
        .addColumn('received', 'bigint', (c) => c.notNull())
        .addColumn('state', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addUniqueConstraint('run_outputs_run_path', ['run_id', 'path'])
        .execute();
      await db.schema.createIndex('run_outputs_entity').on('run_outputs').columns(['entity_id']).execute();
      await db.schema
        .createTable('run_output_chunks')
        .addColumn('output_id', 'text', (c) => c.notNull())
        .addColumn('seq', 'integer', (c) => c.notNull())
        .addColumn('size', 'bigint', (c) => c.notNull())
        .addColumn('key', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('run_output_chunks_pk', ['output_id', 'seq'])
        .execute();
      // A run's outputs are committed once; after that nothing of the run is uploaded again.
      await db.schema
        .createTable('run_output_commits')
        .addColumn('run_id', 'text', (c) => c.primaryKey())
        .addColumn('committed_at', 'bigint', (c) => c.notNull())
        .execute();
      // The database artifact store's chunks (artifacts/database.ts).
      await db.schema
        .createTable('artifact_chunks')
        .addColumn('key', 'text', (c) => c.primaryKey())
        .addColumn('data', 'bytea', (c) => c.notNull())
        .execute();
    },
  },
  '0015_runs_list': {
    // The runs list's keyset paging (runQuery.ts) sorts newest first by (created_at, id): per queue for the queue page,
    // across queues for the global runs page. The id completes the key so a page ends without sorting ties.
    async up(db: Kysely<unknown>) {
      await db.schema.createIndex('runs_queue_created').on('runs').columns(['queue_id', 'created_at', 'id']).execute();
      await db.schema.createIndex('runs_created').on('runs').columns(['created_at', 'id']).execute();
      // Its prefix (queue_id, created_at) is runs_queue_created's: with both, SQLite's planner took the shorter one and
      // sorted the queue's runs instead of reading the page off the index.
      await db.schema.dropIndex('runs_queue').execute();
      // A state filter (the failed runs, the running ones) newest first: without these the planner read every run of
      // the state through runs_status and sorted them (230 ms for 45k on SQLite); with them the page is an index range.
      await db.schema
        .createIndex('runs_queue_status_created')
        .on('runs')
        .columns(['queue_id', 'status', 'created_at', 'id'])
        .execute();
      await db.schema.createIndex('runs_status_created').on('runs').columns(['status', 'created_at', 'id']).execute();
    },
  },
  '0017_run_outputs_link': {
    // Where a runner whose job runs elsewhere (SageMaker, Vertex) had it write its outputs, reported by the agent.
    async up(db: Kysely<unknown>) {
      await db.schema.alterTable('runs').addColumn('outputs_link', 'text').execute();
    },
  },
  '0016_jobs': {
    // Jobs: named, versioned launch definitions with their aliases (jobsSchema.ts).
    up: createJobTables,
  },
  '0018_run_upload_tokens': {
    // Per-run upload tokens (docs/outputs.md, Kubernetes): a pod uploads its run's outputs with one instead of the
    // agent's key. Only the token's sha256 is kept; rows go when the run ends (uploadTokens.ts).
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('run_upload_tokens')
        .addColumn('token_hash', 'text', (c) => c.primaryKey())
        .addColumn('run_id', 'text', (c) => c.notNull())
        .addColumn('agent_id', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('expires_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('run_upload_tokens_run').on('run_upload_tokens').columns(['run_id']).execute();
    },
  },
  '0020_log_lines': {
    // Each chunk's count of line breaks, so the log viewer's line numbers and "go to line N" come from a sum over an
    // index instead of a read of the whole log (logWindows.ts). Null for chunks written before 0020: the first read
    // that needs a count fills it in.
    async up(db: Kysely<unknown>) {
      await db.schema.alterTable('log_chunks').addColumn('newlines', 'integer').execute();
      await db.schema
        .createIndex('log_chunks_lines')
        .on('log_chunks')
        .columns(['run_id', 'offset', 'newlines'])
        .execute();
    },
  },
  '0021_artifact_garbage': {
    // Artifact-store keys whose rows are gone (outputs of pruned runs), deleted from the store after the database's
    // transaction commits (retention.ts): queued in that transaction, so a crash or a store outage in between leaves
    // the keys to a later sweep instead of leaking their bytes.
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('artifact_garbage')
        .addColumn('key', 'text', (c) => c.primaryKey())
        .addColumn('queued_at', 'bigint', (c) => c.notNull())
        .execute();
    },
  },
  '0019_list_cursors': {
    // The global runs page filtered by agent, newest first (runQuery.ts), and the agents list paged by id
    // (agents.ts): each page an index range, where runs_agent (agent_id, status) left the agent's runs to be sorted.
    async up(db: Kysely<unknown>) {
      await db.schema.createIndex('runs_agent_created').on('runs').columns(['agent_id', 'created_at', 'id']).execute();
      await db.schema.createIndex('agents_entity_id').on('agents').columns(['entity_id', 'id']).execute();
    },
  },
  '0022_sweeps': {
    // Sweeps, their trials (one row per trial number, so a restart or a second replica never pushes one twice) and
    // the lease that makes one replica the sweep controller (sweepsSchema.ts).
    up: createSweepTables,
  },
  '0023_run_search': {
    // A run's name on its row, and a trigram index of its id and name, for the runs list's search (runSearch.ts).
    up: createRunSearch,
  },
};

const provider: MigrationProvider = { getMigrations: () => Promise.resolve(migrations) };
/** Migration 0008's data step, exported so a test can run it over rows written as older versions wrote them. */
export async function redactStoredAgentConfigs(db: Kysely<unknown>): Promise<void> {
  const agents = db as unknown as Kysely<{ agents: { id: string; config: string } }>;
  for (const row of await agents.selectFrom('agents').select(['id', 'config']).execute()) {
    let config: unknown;
    try {
      config = JSON.parse(row.config);
    } catch {
      config = {};
    }
    const clean = config && typeof config === 'object' && !Array.isArray(config) ? config : {};
    await agents
      .updateTable('agents')
      .set({ config: JSON.stringify(redactConfig(clean as Record<string, unknown>)) })
      .where('id', '=', row.id)
      .execute();
  }
}

export const LATEST_MIGRATION = Object.keys(migrations).sort().at(-1) ?? '';

/** Brings the schema up to date; refuses a database written by a newer Liftoff. */
export async function migrateToLatest(db: Kysely<unknown>): Promise<void> {
  const migrator = new Migrator({ db, provider });
  const known = new Set(Object.keys(migrations));
  const newer = (await appliedNames(db)).filter((n) => !known.has(n));
  if (newer.length) {
    throw new LiftoffError(
      'CONFLICT',
      `The database has schema migrations this Liftoff does not know (${newer.join(', ')}): it was written by a newer version. Upgrade Liftoff.`,
    );
  }
  const { error } = await migrator.migrateToLatest();
  if (error)
    throw new LiftoffError('INTERNAL', `Database migration failed: ${(error as Error).message}`, { cause: error });
}

async function appliedNames(db: Kysely<unknown>): Promise<string[]> {
  // kysely hides its own tables from introspection unless asked; without this the check never saw a newer schema.
  const tables = await db.introspection.getTables({ withInternalKyselyTables: true });
  if (!tables.some((t) => t.name === 'kysely_migration')) return [];
  const rows = await (db as Kysely<{ kysely_migration: { name: string } }>)
    .selectFrom('kysely_migration')
    .select('name')
    .execute();
  return rows.map((r) => r.name);
}
