import { createHash } from 'node:crypto';
import type { Kysely } from 'kysely';
import { v7 as uuidv7 } from 'uuid';
import {
  CreateJobVersionBody,
  JobNotFoundError,
  NotFoundError,
  type Job,
  type JobSourceDef,
  type JobVersion,
} from '@liftoff/core';
import type { z } from 'zod';
import type { Database } from './schema.js';
import type { EntityRef } from './entities.js';
import type { JobsDatabase, JobVersionsTable } from './jobsSchema.js';

type Definition = Omit<z.output<typeof CreateJobVersionBody>, 'aliases'>;

/**
 * JSON with keys sorted at every level, so the same definition always hashes the same (JSON.stringify keeps
 * insertion order, and a schema's keys may come in any order). Small enough not to warrant a dependency.
 */
function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v !== null && typeof v === 'object')
    return `{${Object.keys(v)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  return JSON.stringify(v);
}

const versionName = (n: number) => `v${n}`;

/** Jobs of entities: versions v0, v1, ... of a definition, `latest` and user aliases (docs/jobs.md). */
export class Jobs {
  private readonly db: Kysely<JobsDatabase>;
  constructor(db: Kysely<Database>) {
    this.db = db as unknown as Kysely<JobsDatabase>;
  }

  /**
   * Creates the next version, or reuses the latest when the definition is unchanged ("no changes"); then points
   * `latest` and the given aliases at it. Concurrent creates of one job are serialised by the unique version number:
   * the loser retries with the next one.
   */
  async createVersion(
    entity: EntityRef,
    name: string,
    body: z.output<typeof CreateJobVersionBody>,
    createdBy: string,
    now: number,
  ): Promise<{ version: JobVersion; created: boolean }> {
    const { aliases, ...definition } = body;
    if (definition.source.type === 'code') {
      const archive = await this.db
        .selectFrom('code_archives')
        .select('entity_id')
        .where('id', '=', definition.source.archive_id)
        .executeTakeFirst();
      if (archive?.entity_id !== entity.id)
        throw new NotFoundError(`Code archive "${definition.source.archive_id}" not found; upload it first.`);
    }
    const digest = createHash('sha256').update(canonical(definition)).digest('hex');
    await this.db
      .insertInto('jobs')
      .values({ id: uuidv7(), entity_id: entity.id, name, created_at: now })
      .onConflict((oc) => oc.columns(['entity_id', 'name']).doNothing())
      .execute();
    const job = await this.requireJob(entity, name);
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.db.transaction().execute(async (trx) => {
          const latest = await trx
            .selectFrom('job_versions')
            .selectAll()
            .where('job_id', '=', job.id)
            .orderBy('number', 'desc')
            .limit(1)
            .executeTakeFirst();
          let row: JobVersionsTable;
          let created = false;
          if (latest && latest.digest === digest) row = latest;
          else {
            row = {
              id: uuidv7(),
              job_id: job.id,
              number: latest ? Number(latest.number) + 1 : 0,
              digest,
              definition: JSON.stringify(definition),
              archive_id: definition.source.type === 'code' ? definition.source.archive_id : null,
              created_at: now,
              created_by: createdBy,
            };
            await trx.insertInto('job_versions').values(row).execute();
            created = true;
          }
          for (const alias of ['latest', ...aliases]) {
            await trx
              .insertInto('job_aliases')
              .values({ job_id: job.id, alias, version_id: row.id })
              .onConflict((oc) => oc.columns(['job_id', 'alias']).doUpdateSet({ version_id: row.id }))
              .execute();
          }
          return { version: await this.describe(trx, entity, name, row), created };
        });
      } catch (e) {
        // Another create took this number first (a unique violation: PostgreSQL's 23505, SQLite's
        // SQLITE_CONSTRAINT_UNIQUE); the next attempt sees its version. Anything else is no race.
        const raw = (e as { code?: unknown }).code;
        const code = typeof raw === 'string' ? raw : '';
        if (attempt >= 20 || !(code === '23505' || code.startsWith('SQLITE_CONSTRAINT'))) throw e;
      }
    }
  }

  private async requireJob(entity: EntityRef, name: string) {
    const job = await this.db
      .selectFrom('jobs')
      .selectAll()
      .where('entity_id', '=', entity.id)
      .where('name', '=', name)
      .executeTakeFirst();
    if (!job) throw new JobNotFoundError(`Job "${name}" of entity "${entity.name}" not found.`);
    return job;
  }

  private async describe(
    db: Kysely<JobsDatabase>,
    entity: EntityRef,
    name: string,
    row: JobVersionsTable,
  ): Promise<JobVersion> {
    const def = JSON.parse(row.definition) as Definition;
    const aliases = await db
      .selectFrom('job_aliases')
      .select('alias')
      .where('version_id', '=', row.id)
      .orderBy('alias')
      .execute();
    const archive =
      row.archive_id === null
        ? undefined
        : await db.selectFrom('code_archives').select('sha256').where('id', '=', row.archive_id).executeTakeFirst();
    return {
      job: name,
      entity: entity.name,
      version: versionName(Number(row.number)),
      source: def.source as JobSourceDef,
      archive_sha256: archive?.sha256 ?? null,
      entry_point: def.entry_point,
      dockerfile: def.dockerfile ?? null,
      base_image: def.base_image ?? null,
      schema: def.schema ?? null,
      description: def.description ?? null,
      wandb_env: def.wandb_env ?? false,
      digest: row.digest,
      aliases: aliases.map((a) => a.alias),
      created_at: Number(row.created_at),
      created_by: row.created_by,
    };
  }

  async list(entity: EntityRef): Promise<Job[]> {
    const jobs = await this.db
      .selectFrom('jobs')
      .selectAll()
      .where('entity_id', '=', entity.id)
      .orderBy('name')
      .limit(10_000)
      .execute();
    return Promise.all(jobs.map((j) => this.summary(entity, j)));
  }

  async get(entity: EntityRef, name: string): Promise<Job> {
    return this.summary(entity, await this.requireJob(entity, name));
  }

  private async summary(entity: EntityRef, job: { id: string; name: string; created_at: number }): Promise<Job> {
    const count = await this.db
      .selectFrom('job_versions')
      .select((eb) => eb.fn.countAll<string>().as('n'))
      .where('job_id', '=', job.id)
      .executeTakeFirstOrThrow();
    const aliases = await this.db
      .selectFrom('job_aliases')
      .innerJoin('job_versions', 'job_versions.id', 'job_aliases.version_id')
      .select(['job_aliases.alias', 'job_versions.number'])
      .where('job_aliases.job_id', '=', job.id)
      .orderBy('job_aliases.alias')
      .execute();
    const map = Object.fromEntries(aliases.map((a) => [a.alias, versionName(Number(a.number))]));
    return {
      name: job.name,
      entity: entity.name,
      created_at: Number(job.created_at),
      versions: Number(count.n),
      latest: map.latest ?? 'v0',
      aliases: map,
    };
  }

  async versions(entity: EntityRef, name: string): Promise<JobVersion[]> {
    const job = await this.requireJob(entity, name);
    const rows = await this.db
      .selectFrom('job_versions')
      .selectAll()
      .where('job_id', '=', job.id)
      .orderBy('number')
      .execute();
    return Promise.all(rows.map((r) => this.describe(this.db, entity, name, r)));
  }

  /** A version by name (`v3`), by alias, or `latest` when `ref` is absent. */
  async resolve(entity: EntityRef, name: string, ref = 'latest'): Promise<JobVersion> {
    const job = await this.requireJob(entity, name);
    const m = /^v(\d{1,9})$/.exec(ref);
    const row = m
      ? await this.db
          .selectFrom('job_versions')
          .selectAll()
          .where('job_id', '=', job.id)
          .where('number', '=', Number(m[1]))
          .executeTakeFirst()
      : await this.db
          .selectFrom('job_aliases')
          .innerJoin('job_versions', 'job_versions.id', 'job_aliases.version_id')
          .selectAll('job_versions')
          .where('job_aliases.job_id', '=', job.id)
          .where('job_aliases.alias', '=', ref)
          .executeTakeFirst();
    if (!row) throw new JobNotFoundError(`Job "${name}" has no version or alias "${ref}".`);
    return this.describe(this.db, entity, name, row);
  }

  async setAlias(entity: EntityRef, name: string, alias: string, version: string): Promise<JobVersion> {
    const target = await this.resolve(entity, name, version);
    const job = await this.requireJob(entity, name);
    const row = await this.db
      .selectFrom('job_versions')
      .selectAll()
      .where('job_id', '=', job.id)
      .where('number', '=', Number(target.version.slice(1)))
      .executeTakeFirstOrThrow();
    await this.db
      .insertInto('job_aliases')
      .values({ job_id: job.id, alias, version_id: row.id })
      .onConflict((oc) => oc.columns(['job_id', 'alias']).doUpdateSet({ version_id: row.id }))
      .execute();
    return this.describe(this.db, entity, name, row);
  }

  /** Deletes the job with its versions and aliases; its archives become unreferenced. Runs keep their records. */
  async delete(entity: EntityRef, name: string): Promise<void> {
    const job = await this.requireJob(entity, name);
    await this.db.transaction().execute(async (trx) => {
      await trx.deleteFrom('job_aliases').where('job_id', '=', job.id).execute();
      await trx.deleteFrom('job_versions').where('job_id', '=', job.id).execute();
      await trx.deleteFrom('jobs').where('id', '=', job.id).execute();
    });
  }
}
