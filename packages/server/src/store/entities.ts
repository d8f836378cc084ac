import type { Kysely } from 'kysely';
import { v7 as uuidv7 } from 'uuid';
import { ConflictError, NotFoundError } from '@liftoff/core';
import type { ReadCaches } from '../caches.js';
import type { Database } from './schema.js';

export interface EntityRef {
  id: string;
  name: string;
}

/**
 * Entities (users' personal ones and teams) as names, ids and their concurrency limit. Refs by name and id are
 * cached (caches.ts): entities are never renamed or deleted. The limit is always read from the database.
 */
export class Entities {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly caches: ReadCaches,
  ) {}

  /** The entity called `name`, created if missing (safe when two replicas start at once). */
  async ensure(name: string, now: number): Promise<EntityRef> {
    const found = await this.find(name);
    if (found) return found;
    const row = { id: uuidv7(), name, created_at: now };
    await this.db
      .insertInto('entities')
      .values(row)
      .onConflict((oc) => oc.column('name').doNothing())
      .execute();
    return (await this.find(name)) ?? row;
  }

  async create(name: string, maxConcurrency: number | null, now: number): Promise<EntityRef> {
    if (await this.find(name)) throw new ConflictError(`Entity "${name}" already exists.`);
    const row = { id: uuidv7(), name, created_at: now, max_concurrency: maxConcurrency };
    await this.db.insertInto('entities').values(row).execute();
    return { id: row.id, name };
  }

  async limit(id: string): Promise<number | null> {
    const r = await this.db.selectFrom('entities').select('max_concurrency').where('id', '=', id).executeTakeFirst();
    return r?.max_concurrency == null ? null : Number(r.max_concurrency);
  }

  async setLimit(id: string, maxConcurrency: number | null): Promise<void> {
    await this.caches.write(this.db, ['entities'], (trx) =>
      trx.updateTable('entities').set({ max_concurrency: maxConcurrency }).where('id', '=', id).execute(),
    );
  }

  async find(name: string): Promise<EntityRef | undefined> {
    return this.caches.entities.read(`name:${name}`, () =>
      this.db.selectFrom('entities').select(['id', 'name']).where('name', '=', name).executeTakeFirst(),
    );
  }

  async byId(id: string): Promise<EntityRef> {
    const found = await this.caches.entities.read(`id:${id}`, () =>
      this.db.selectFrom('entities').select(['id', 'name']).where('id', '=', id).executeTakeFirst(),
    );
    if (!found) throw new NotFoundError(`Entity with id "${id}" not found.`);
    return found;
  }
}
