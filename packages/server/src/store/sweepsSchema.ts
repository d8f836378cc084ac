import type { Kysely } from 'kysely';
import type { Database } from './schema.js';

/**
 * Migration 0022 and the tables of sweeps (store/sweeps.ts, sweeps/controller.ts). Kept apart from schema.ts as the
 * jobs tables are; the sweeps store types its queries with `SweepsDatabase`.
 */
export interface SweepsTable {
  id: string;
  entity_id: string;
  queue_id: string;
  name: string;
  /** running, paused, finished, stopped, failed (SWEEP_STATES). */
  state: string;
  /** The validated sweep config (SweepConfig) as JSON. */
  config: string;
  /** The push every trial starts from (PushBody) as JSON. */
  trial: string;
  notes: string;
  parallel: number;
  /** Seeds every trial's own random generator (random and bayes). */
  seed: number;
  author: string;
  /** The key that created it: trials are pushed only while it exists (a revoked key's sweep ends failed). */
  author_key_id: string;
  created_at: number;
  ended_at: number | null;
  reason: string | null;
}
export interface SweepTrialsTable {
  sweep_id: string;
  /** 0, 1, 2, …: the primary key with sweep_id, so a trial number is pushed once however often it is proposed. */
  number: number;
  item_id: string;
  /** The trial's parameters (its run config's sweep part) as JSON. */
  params: string;
  early_terminated: number;
  created_at: number;
}
/** One row per controller role ('sweeps'): the replica holding it (until `expires_at`) drives every sweep. */
export interface ControllerLeasesTable {
  name: string;
  holder: string;
  expires_at: number;
}
export type SweepsDatabase = Database & {
  sweeps: SweepsTable;
  sweep_trials: SweepTrialsTable;
  controller_leases: ControllerLeasesTable;
};

export async function createSweepTables(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('sweeps')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('entity_id', 'text', (c) => c.notNull().references('entities.id'))
    .addColumn('queue_id', 'text', (c) => c.notNull())
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('state', 'text', (c) => c.notNull())
    .addColumn('config', 'text', (c) => c.notNull())
    .addColumn('trial', 'text', (c) => c.notNull())
    .addColumn('notes', 'text', (c) => c.notNull())
    .addColumn('parallel', 'integer', (c) => c.notNull())
    .addColumn('seed', 'integer', (c) => c.notNull())
    .addColumn('author', 'text', (c) => c.notNull())
    .addColumn('author_key_id', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('ended_at', 'bigint')
    .addColumn('reason', 'text')
    .execute();
  await db.schema.createIndex('sweeps_entity_created').on('sweeps').columns(['entity_id', 'created_at']).execute();
  await db.schema.createIndex('sweeps_state').on('sweeps').columns(['state']).execute();
  await db.schema
    .createTable('sweep_trials')
    .addColumn('sweep_id', 'text', (c) => c.notNull().references('sweeps.id'))
    .addColumn('number', 'integer', (c) => c.notNull())
    .addColumn('item_id', 'text', (c) => c.notNull())
    .addColumn('params', 'text', (c) => c.notNull())
    .addColumn('early_terminated', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('sweep_trials_pk', ['sweep_id', 'number'])
    .execute();
  await db.schema
    .createTable('controller_leases')
    .addColumn('name', 'text', (c) => c.primaryKey())
    .addColumn('holder', 'text', (c) => c.notNull())
    .addColumn('expires_at', 'bigint', (c) => c.notNull())
    .execute();
}
