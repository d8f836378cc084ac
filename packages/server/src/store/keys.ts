import type { Kysely, Selectable } from 'kysely';
import { v7 as uuidv7 } from 'uuid';
import type { ReadCaches } from '../caches.js';
import type { Db } from './db.js';
import type { ApiKeysTable, Database } from './schema.js';

export type ApiKeyRow = Selectable<ApiKeysTable>;

export interface NewApiKey {
  name: string;
  role: string;
  entityId: string | null;
  keyHash: string;
  now: number;
  userId?: string | null;
  expiresAt?: number | null;
}

/** A key as listed: its row without the hash, with its user's and entity's names. */
export type ApiKeyListing = Omit<ApiKeyRow, 'key_hash'> & { user_name: string | null; entity_name: string | null };

/**
 * API keys, stored as hashes only (auth.ts hashes what a request presents and caches what it found by the hash:
 * deleting a key or replacing its secret drops that cache on every replica).
 */
export class ApiKeys {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly caches: ReadCaches,
  ) {}

  async count(): Promise<number> {
    const r = await this.db
      .selectFrom('api_keys')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .executeTakeFirst();
    return Number(r?.n ?? 0);
  }

  async create(k: NewApiKey): Promise<string> {
    return insertKey(this.db, k);
  }

  /**
   * Replaces the secret of the key called `name` (the embedded agent of "liftoff up", re-minted on every start).
   * The key keeps its id when its role and entity are unchanged, so the agent id bound to it stays its own.
   */
  async replace(k: NewApiKey): Promise<void> {
    await this.caches.write(this.db, ['keys'], async (trx) => {
      const same = await trx
        .selectFrom('api_keys')
        .select('id')
        .where('name', '=', k.name)
        .where('role', '=', k.role)
        .where((eb) => (k.entityId === null ? eb('entity_id', 'is', null) : eb('entity_id', '=', k.entityId)))
        .executeTakeFirst();
      await trx
        .deleteFrom('api_keys')
        .where('name', '=', k.name)
        .$if(same !== undefined, (q) => q.where('id', '!=', same?.id ?? ''))
        .execute();
      if (!same) {
        await insertKey(trx, k);
        return;
      }
      await trx
        .updateTable('api_keys')
        .set({ key_hash: k.keyHash, created_at: k.now, expires_at: k.expiresAt ?? null, user_id: k.userId ?? null })
        .where('id', '=', same.id)
        .execute();
    });
  }

  /** Every key, newest first; the routes filter what a caller may see. */
  async list(): Promise<ApiKeyListing[]> {
    return this.db
      .selectFrom('api_keys')
      .leftJoin('users', 'users.id', 'api_keys.user_id')
      .leftJoin('entities', 'entities.id', 'api_keys.entity_id')
      .select([
        'api_keys.id',
        'api_keys.name',
        'api_keys.role',
        'api_keys.entity_id',
        'api_keys.user_id',
        'api_keys.created_at',
        'api_keys.last_used_at',
        'api_keys.expires_at',
        'users.name as user_name',
        'entities.name as entity_name',
      ])
      .orderBy('api_keys.created_at', 'desc')
      .orderBy('api_keys.id')
      .execute();
  }

  async exists(id: string): Promise<boolean> {
    return !!(await this.db.selectFrom('api_keys').select('id').where('id', '=', id).executeTakeFirst());
  }

  /** Revokes a key: refused from the next request on, on every replica (the key cache is dropped everywhere). */
  async delete(id: string): Promise<void> {
    await this.caches.write(this.db, ['keys'], (trx) => trx.deleteFrom('api_keys').where('id', '=', id).execute());
  }

  /**
   * Notes a key's use, at most once per `everyMs`: the row is written only when its last_used_at is older (the
   * caller checks the value it read first, so most requests write nothing; the condition keeps replicas from both
   * writing).
   */
  async touch(id: string, now: number, everyMs: number): Promise<void> {
    await this.db
      .updateTable('api_keys')
      .set({ last_used_at: now })
      .where('id', '=', id)
      .where((eb) => eb.or([eb('last_used_at', 'is', null), eb('last_used_at', '<=', now - everyMs)]))
      .execute();
  }

  async findByHash(hash: string): Promise<ApiKeyRow | undefined> {
    return this.db.selectFrom('api_keys').selectAll().where('key_hash', '=', hash).executeTakeFirst();
  }
}

async function insertKey(db: Db, k: NewApiKey): Promise<string> {
  const id = uuidv7();
  await db
    .insertInto('api_keys')
    .values({
      id,
      name: k.name,
      role: k.role,
      entity_id: k.entityId,
      key_hash: k.keyHash,
      created_at: k.now,
      last_used_at: null,
      user_id: k.userId ?? null,
      expires_at: k.expiresAt ?? null,
    })
    .execute();
  return id;
}
