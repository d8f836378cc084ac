import type { Kysely, Selectable } from 'kysely';
import { v7 as uuidv7 } from 'uuid';
import type { ApiKeysTable, Database } from './schema.js';

export type ApiKeyRow = Selectable<ApiKeysTable>;

export interface NewApiKey {
  name: string;
  role: string;
  entityId: string | null;
  keyHash: string;
  now: number;
  userId?: string | null;
}

/** API keys, stored as hashes only (auth.ts hashes what a request presents). */
export class ApiKeys {
  constructor(private readonly db: Kysely<Database>) {}

  async count(): Promise<number> {
    const r = await this.db
      .selectFrom('api_keys')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .executeTakeFirst();
    return Number(r?.n ?? 0);
  }

  async create(k: NewApiKey): Promise<void> {
    await this.db
      .insertInto('api_keys')
      .values({
        id: uuidv7(),
        name: k.name,
        role: k.role,
        entity_id: k.entityId,
        key_hash: k.keyHash,
        created_at: k.now,
        last_used_at: null,
        user_id: k.userId ?? null,
      })
      .execute();
  }

  /** Replaces the key called `name` (used for the embedded agent of "liftoff up", re-minted on every start). */
  async replace(k: NewApiKey): Promise<void> {
    await this.db.deleteFrom('api_keys').where('name', '=', k.name).execute();
    await this.create(k);
  }

  async findByHash(hash: string): Promise<ApiKeyRow | undefined> {
    return this.db.selectFrom('api_keys').selectAll().where('key_hash', '=', hash).executeTakeFirst();
  }
}
