import { createHash, randomBytes } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { UnauthenticatedError } from '@liftoff/core';
import type { Principal } from './context.js';
import type { Store } from './store/store.js';

/** Keys are random 32-byte secrets; only their SHA-256 is stored, so a leaked database leaks no usable key. */
export const hashKey = (key: string): string => createHash('sha256').update(key).digest('hex');
export const generateKey = (): string => `lk_${randomBytes(32).toString('base64url')}`;

/** A key's last-used time is written at most this often: a busy agent would otherwise write on every poll. */
export const LAST_USED_EVERY_MS = 60_000;

/** The key a request presents (the Bearer token), or null when it presents none. */
export function presentedKey(req: FastifyRequest): string | null {
  const match = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '');
  return match?.[1] ?? null;
}

export async function authenticate(store: Store, req: FastifyRequest, now: number): Promise<Principal> {
  const key = presentedKey(req);
  if (!key) throw new UnauthenticatedError();
  const row = await store.keys.findByHash(hashKey(key));
  if (!row) throw new UnauthenticatedError('Unknown API key. Check LIFTOFF_API_KEY or ~/.config/liftoff/credentials.');
  if (row.expires_at !== null && Number(row.expires_at) <= now)
    throw new UnauthenticatedError(
      `API key "${row.name}" expired at ${new Date(Number(row.expires_at)).toISOString()}; ask an admin for a new one ("liftoff keys create").`,
    );
  if (row.last_used_at === null || now - Number(row.last_used_at) >= LAST_USED_EVERY_MS)
    await store.keys.touch(row.id, now, LAST_USED_EVERY_MS);
  const role = row.role as Principal['role'];
  // A user key acts in its user's entities (looked up per request, so membership changes apply at once); an agent
  // key in its one entity; a key with neither is server-wide.
  const memberRoles = row.user_id ? await store.accounts.rolesOf(row.user_id) : null;
  const entityIds = memberRoles ? Object.keys(memberRoles) : row.entity_id ? [row.entity_id] : null;
  return {
    keyId: row.id,
    keyName: row.name,
    role,
    entityId: row.entity_id,
    userId: row.user_id,
    entityIds,
    memberRoles,
  };
}
