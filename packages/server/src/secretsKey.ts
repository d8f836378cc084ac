import { createCipheriv, createDecipheriv, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { SecretsKeyError } from '@liftoff/core';
import type { Kysely } from 'kysely';
import type { Database } from './store/schema.js';

const KEY_BYTES = 32;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const CHECK_LABEL = 'liftoff secrets key check v1';

/**
 * AES-256-GCM (node:crypto) under the server's secrets key. Each value gets a fresh random 96-bit nonce; the
 * additional data binds a ciphertext to its entity and name, so a row copied to another entity or name in the
 * database does not decrypt there.
 */
export class SecretCipher {
  constructor(private readonly key: Buffer) {
    if (key.length !== KEY_BYTES) throw new SecretsKeyError(`A secrets key is ${KEY_BYTES} bytes, got ${key.length}.`);
  }

  encrypt(plaintext: string, aad: string): { nonce: string; ciphertext: string } {
    const nonce = randomBytes(NONCE_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.key, nonce, { authTagLength: TAG_BYTES });
    cipher.setAAD(Buffer.from(aad, 'utf8'));
    const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final(), cipher.getAuthTag()]);
    return { nonce: nonce.toString('base64'), ciphertext: body.toString('base64') };
  }

  decrypt(nonce: string, ciphertext: string, aad: string): string {
    const body = Buffer.from(ciphertext, 'base64');
    const decipher = createDecipheriv('aes-256-gcm', this.key, Buffer.from(nonce, 'base64'), {
      authTagLength: TAG_BYTES,
    });
    decipher.setAAD(Buffer.from(aad, 'utf8'));
    decipher.setAuthTag(body.subarray(body.length - TAG_BYTES));
    try {
      return Buffer.concat([decipher.update(body.subarray(0, body.length - TAG_BYTES)), decipher.final()]).toString(
        'utf8',
      );
    } catch (e) {
      throw new SecretsKeyError(
        `A stored secret does not decrypt under this server's key (it was changed, or the row was tampered with). Set the secret again with "liftoff secret set".`,
        e,
      );
    }
  }

  /** A value derived from the key that tells whether two servers hold the same key, and reveals nothing of it. */
  check(): string {
    return createHmac('sha256', this.key).update(CHECK_LABEL).digest('hex');
  }
}

function readKeyFile(path: string): Buffer {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new SecretsKeyError(
      `Cannot read the secrets key file ${path} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}). Restore it from your backup, or point the server at it with --secrets-key-file / LIFTOFF_SECRETS_KEY_FILE.`,
      e,
    );
  }
  const key = Buffer.from(text.trim(), 'base64');
  if (key.length !== KEY_BYTES || key.toString('base64') !== text.trim()) {
    throw new SecretsKeyError(
      `The secrets key file ${path} does not hold a base64 ${KEY_BYTES}-byte key. Restore it from your backup (it is written once, on the first start).`,
    );
  }
  try {
    // Owner-only at every start, like the database: it decrypts every tenant's secrets.
    chmodSync(path, 0o600);
  } catch {
    // Another user's file that we may read; its mode is the operator's business.
  }
  return key;
}

/**
 * The server's secrets key: read from `path`, or created there (0600, exclusively, so two processes never both
 * write one) on the first start of a database without secrets. The database keeps a check value of the key, so a
 * server (a PostgreSQL replica, a restore) started with another key, or none, refuses to start and says why.
 */
export async function openSecretsKey(db: Kysely<Database>, path: string, now: number): Promise<SecretCipher> {
  const stored = await db
    .selectFrom('secrets_key_check')
    .select('check_value')
    .where('id', '=', 'key')
    .executeTakeFirst();
  let key: Buffer;
  try {
    key = readKeyFile(path);
  } catch (e) {
    const missing = ((e as SecretsKeyError).cause as NodeJS.ErrnoException | undefined)?.code === 'ENOENT';
    if (!missing || stored) {
      if (missing)
        throw new SecretsKeyError(
          `The database's secrets were encrypted under a key this server does not have: ${path} does not exist. Copy the key file of the server that created the database there (PostgreSQL replicas share one key), or point --secrets-key-file / LIFTOFF_SECRETS_KEY_FILE at it.`,
        );
      throw e;
    }
    key = randomBytes(KEY_BYTES);
    try {
      writeFileSync(path, `${key.toString('base64')}\n`, { mode: 0o600, flag: 'wx' });
    } catch (w) {
      if ((w as NodeJS.ErrnoException).code !== 'EEXIST')
        throw new SecretsKeyError(`Cannot write the secrets key file ${path}: ${(w as Error).message}.`, w);
      key = readKeyFile(path);
    }
  }
  const cipher = new SecretCipher(key);
  if (!stored) {
    await db
      .insertInto('secrets_key_check')
      .values({ id: 'key', check_value: cipher.check(), created_at: now })
      .onConflict((oc) => oc.column('id').doNothing())
      .execute();
  }
  const current = await db
    .selectFrom('secrets_key_check')
    .select('check_value')
    .where('id', '=', 'key')
    .executeTakeFirstOrThrow();
  const [a, b] = [Buffer.from(current.check_value), Buffer.from(cipher.check())];
  if (a.length !== b.length || !timingSafeEqual(a, b)) {
    throw new SecretsKeyError(
      `The secrets key in ${path} is not the key this database's secrets were encrypted under. Put the key file of the server that created the database there (PostgreSQL replicas share one key; restores need the key file from the same backup).`,
    );
  }
  return cipher;
}
