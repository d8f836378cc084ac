import type { Kysely } from 'kysely';
import type { Database } from './schema.js';

/**
 * Migration 0016 and the tables of jobs (store/jobs.ts). Kept apart from schema.ts so the jobs feature is one place;
 * the jobs store types its queries with `JobsDatabase`, which adds these tables to the rest.
 */
export interface JobsTable {
  id: string;
  entity_id: string;
  name: string;
  created_at: number;
}
export interface JobVersionsTable {
  id: string;
  job_id: string;
  number: number;
  /** sha256 of the definition's canonical JSON: the same definition reuses its version. */
  digest: string;
  /** The definition (source, entry point, build settings, schema) as JSON. */
  definition: string;
  /**
   * A code source's archive, as a foreign key: an archive a job version still references cannot be deleted, so any
   * pruning of archives keeps it (the database refuses, on both SQLite and PostgreSQL).
   */
  archive_id: string | null;
  created_at: number;
  created_by: string;
}
export interface JobAliasesTable {
  job_id: string;
  alias: string;
  version_id: string;
}
export type JobsDatabase = Database & {
  jobs: JobsTable;
  job_versions: JobVersionsTable;
  job_aliases: JobAliasesTable;
};

export async function createJobTables(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('jobs')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('entity_id', 'text', (c) => c.notNull().references('entities.id'))
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addUniqueConstraint('jobs_entity_name', ['entity_id', 'name'])
    .execute();
  await db.schema
    .createTable('job_versions')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('job_id', 'text', (c) => c.notNull().references('jobs.id'))
    .addColumn('number', 'integer', (c) => c.notNull())
    .addColumn('digest', 'text', (c) => c.notNull())
    .addColumn('definition', 'text', (c) => c.notNull())
    .addColumn('archive_id', 'text', (c) => c.references('code_archives.id'))
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('created_by', 'text', (c) => c.notNull())
    .addUniqueConstraint('job_versions_number', ['job_id', 'number'])
    .execute();
  await db.schema.createIndex('job_versions_digest').on('job_versions').columns(['job_id', 'digest']).execute();
  await db.schema.createIndex('job_versions_archive').on('job_versions').column('archive_id').execute();
  await db.schema
    .createTable('job_aliases')
    .addColumn('job_id', 'text', (c) => c.notNull().references('jobs.id'))
    .addColumn('alias', 'text', (c) => c.notNull())
    .addColumn('version_id', 'text', (c) => c.notNull().references('job_versions.id'))
    .addPrimaryKeyConstraint('job_aliases_pk', ['job_id', 'alias'])
    .execute();
}
