import type { Kysely, Selectable } from 'kysely';
import { LRUCache } from 'lru-cache';
import { v7 as uuidv7 } from 'uuid';
import { NotFoundError } from '@liftoff/core';
import type { Database } from './schema.js';

export interface ArchiveRef {
  id: string;
  sha256: string;
  size: number;
}

/**
 * Uploaded code archives: one record per entity and content hash. On SQLite the bytes live in the data dir
 * (routes/archives.ts); on PostgreSQL, where replicas share no disk, in `archive_blobs`, once per hash.
 */
export class Archives {
  /**
   * Archive records by id. A record never changes and is never deleted (nothing prunes code archives; job versions
   * reference them), so a found one is kept without invalidation, in a bounded LRU. Every push of a code job reads
   * its archive's record (routes/push.ts): on PostgreSQL that was one statement of the nineteen a trivial job costs.
   * Misses are not kept: an archive uploaded since, through another replica, is found at its first push.
   */
  private readonly byId = new LRUCache<string, Selectable<Database['code_archives']>>({ max: 10_000 });

  constructor(private readonly db: Kysely<Database>) {}

  /** The entity's record of this content, created on first upload (uploads are content-addressed). */
  async upsert(entityId: string, sha256: string, size: number, now: number): Promise<ArchiveRef> {
    const found = await this.db
      .selectFrom('code_archives')
      .select(['id', 'sha256', 'size'])
      .where('entity_id', '=', entityId)
      .where('sha256', '=', sha256)
      .executeTakeFirst();
    if (found) return { ...found, size: Number(found.size) };
    await this.db
      .insertInto('code_archives')
      .values({ id: uuidv7(), entity_id: entityId, sha256, size, created_at: now })
      .onConflict((oc) => oc.columns(['entity_id', 'sha256']).doNothing())
      .execute();
    return this.upsert(entityId, sha256, size, now);
  }

  async get(id: string): Promise<Selectable<Database['code_archives']>> {
    const cached = this.byId.get(id);
    if (cached) return cached;
    const r = await this.db.selectFrom('code_archives').selectAll().where('id', '=', id).executeTakeFirst();
    if (!r) throw new NotFoundError(`Code archive "${id}" not found.`);
    this.byId.set(id, r);
    return r;
  }

  /** PostgreSQL only: the archive's bytes, stored once per content hash (see migration 0002). */
  async putBlob(sha256: string, data: Buffer): Promise<void> {
    await this.db
      .insertInto('archive_blobs')
      .values({ sha256, data })
      .onConflict((oc) => oc.column('sha256').doNothing())
      .execute();
  }

  async hasBlob(sha256: string): Promise<boolean> {
    return !!(await this.db
      .selectFrom('archive_blobs')
      .select('sha256')
      .where('sha256', '=', sha256)
      .executeTakeFirst());
  }

  async getBlob(sha256: string): Promise<Buffer> {
    const r = await this.db.selectFrom('archive_blobs').select('data').where('sha256', '=', sha256).executeTakeFirst();
    if (!r) throw new NotFoundError(`Code archive ${sha256} has no stored content; upload it again.`);
    return r.data;
  }
}
