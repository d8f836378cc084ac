import type { Kysely, Selectable } from 'kysely';
import { NotFoundError, SecretsKeyError, type SecretInfo } from '@liftoff/core';
import type { SecretCipher } from '../secretsKey.js';
import type { Database, EntitySecretsTable } from './schema.js';

const aad = (entityId: string, name: string) => `${entityId}\0${name}`;

function toInfo(r: Pick<Selectable<EntitySecretsTable>, 'name' | 'created_at' | 'updated_at' | 'updated_by'>) {
  return {
    name: r.name,
    created_at: Number(r.created_at),
    updated_at: Number(r.updated_at),
    updated_by: r.updated_by,
  } satisfies SecretInfo;
}

/**
 * Per-entity secrets. Values are stored only encrypted (secretsKey.ts) and leave this module in plain text through
 * `valuesFor` alone, which the run-secrets route calls for the agent holding the run.
 */
export class Secrets {
  private cipher: SecretCipher | undefined;

  constructor(private readonly db: Kysely<Database>) {}

  /** Set once at start-up, after the key was checked against the database. */
  useKey(cipher: SecretCipher): void {
    this.cipher = cipher;
  }

  private requireCipher(): SecretCipher {
    if (!this.cipher) throw new SecretsKeyError('This server has no secrets key loaded; restart it.');
    return this.cipher;
  }

  /** Creates or replaces a secret; returns what may be told about it (never the value). */
  async set(entityId: string, name: string, value: string, by: string, now: number): Promise<SecretInfo> {
    const { nonce, ciphertext } = this.requireCipher().encrypt(value, aad(entityId, name));
    await this.db
      .insertInto('entity_secrets')
      .values({ entity_id: entityId, name, nonce, ciphertext, created_at: now, updated_at: now, updated_by: by })
      .onConflict((oc) =>
        oc.columns(['entity_id', 'name']).doUpdateSet({ nonce, ciphertext, updated_at: now, updated_by: by }),
      )
      .execute();
    const row = await this.db
      .selectFrom('entity_secrets')
      .select(['name', 'created_at', 'updated_at', 'updated_by'])
      .where('entity_id', '=', entityId)
      .where('name', '=', name)
      .executeTakeFirstOrThrow();
    return toInfo(row);
  }

  async list(entityId: string): Promise<SecretInfo[]> {
    const rows = await this.db
      .selectFrom('entity_secrets')
      .select(['name', 'created_at', 'updated_at', 'updated_by'])
      .where('entity_id', '=', entityId)
      .orderBy('name')
      .execute();
    return rows.map(toInfo);
  }

  async delete(entityId: string, name: string, entityName: string): Promise<void> {
    const r = await this.db
      .deleteFrom('entity_secrets')
      .where('entity_id', '=', entityId)
      .where('name', '=', name)
      .executeTakeFirst();
    if (!Number(r.numDeletedRows)) throw new NotFoundError(`Entity "${entityName}" has no secret "${name}".`);
  }

  /** Which of `names` the entity does not have. */
  async missing(entityId: string, names: readonly string[]): Promise<string[]> {
    if (!names.length) return [];
    const found = await this.db
      .selectFrom('entity_secrets')
      .select('name')
      .where('entity_id', '=', entityId)
      .where('name', 'in', [...new Set(names)])
      .execute();
    const have = new Set(found.map((r) => r.name));
    return names.filter((n) => !have.has(n));
  }

  /** The decrypted values of `names` that exist (the caller names the missing ones). */
  async valuesFor(entityId: string, names: readonly string[]): Promise<Map<string, string>> {
    const values = new Map<string, string>();
    if (!names.length) return values;
    const cipher = this.requireCipher();
    const rows = await this.db
      .selectFrom('entity_secrets')
      .select(['name', 'nonce', 'ciphertext'])
      .where('entity_id', '=', entityId)
      .where('name', 'in', [...new Set(names)])
      .execute();
    for (const r of rows) values.set(r.name, cipher.decrypt(r.nonce, r.ciphertext, aad(entityId, r.name)));
    return values;
  }
}
