import { Readable } from 'node:stream';
import type { Kysely } from 'kysely';
import { StorageError } from '@liftoff/core';
import type { Database } from '../store/schema.js';
import type { ArtifactStore } from './types.js';

/**
 * Chunks as rows of `artifact_chunks` (migration 0014) in the server's own database: replicas on one PostgreSQL
 * share them without an object store. Chunks are smaller than the file stores' so a row stays a modest bytea value
 * (PostgreSQL reads a value whole) and a download holds one chunk at a time.
 */
export class DatabaseArtifactStore implements ArtifactStore {
  readonly kind = 'database';
  readonly chunkBytes = 4 * 1024 * 1024;

  constructor(private readonly db: Kysely<Database>) {}

  async put(key: string, data: Buffer): Promise<void> {
    await this.db
      .insertInto('artifact_chunks')
      .values({ key, data })
      .onConflict((oc) => oc.column('key').doUpdateSet({ data }))
      .execute();
  }

  async get(key: string): Promise<Readable> {
    const row = await this.db.selectFrom('artifact_chunks').select('data').where('key', '=', key).executeTakeFirst();
    if (!row) throw new StorageError(`Artifact chunk ${key} is missing from the database; upload the output again.`);
    return Readable.from([row.data]);
  }

  async delete(keys: readonly string[]): Promise<void> {
    for (let i = 0; i < keys.length; i += 500)
      await this.db
        .deleteFrom('artifact_chunks')
        .where('key', 'in', keys.slice(i, i + 500))
        .execute();
  }

  async close(): Promise<void> {}
}
