import { createHash, randomBytes } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { UnauthenticatedError } from '@liftoff/core';
import type { CachedKey } from './caches.js';
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

/**
 * Who a request is. The key (with its user's membership roles) is read through the key cache (caches.ts): revoking
 * a key, replacing its secret or changing a membership drops that cache on every replica, and expiry is checked
 * here against the injected clock on every request, cached or not.
 */
export async function authenticate(store: Store, req: FastifyRequest, now: number): Promise<Principal> {
  const key = presentedKey(req);
  if (!key) throw new UnauthenticatedError();
  const hash = hashKey(key);
  const k = await store.caches.keys.read(hash, () => loadKey(store, hash));
  if (!k) throw new UnauthenticatedError('Unknown API key. Check LIFTOFF_API_KEY or ~/.config/liftoff/credentials.');
  if (k.expiresAt !== null && k.expiresAt <= now)
    throw new UnauthenticatedError(
      `API key "${k.name}" expired at ${new Date(k.expiresAt).toISOString()}; ask an admin for a new one ("liftoff keys create").`,
    );
  if (k.lastUsedAt === null || now - k.lastUsedAt >= LAST_USED_EVERY_MS) {
    // Noted in the cached entry before the write, so concurrent requests of the same key write once, not each.
    k.lastUsedAt = now;
    await store.keys.touch(k.id, now, LAST_USED_EVERY_MS);
  }
  // A user key acts in its user's entities; an agent key in its one entity; a key with neither is server-wide.
  const entityIds = k.memberRoles ? Object.keys(k.memberRoles) : k.entityId ? [k.entityId] : null;
  return {
    keyId: k.id,
    keyName: k.name,
    role: k.role as Principal['role'],
    entityId: k.entityId,
    userId: k.userId,
    entityIds,
    memberRoles: k.memberRoles,
  };
}

async function loadKey(store: Store, hash: string): Promise<CachedKey | undefined> {
  const row = await store.keys.findByHash(hash);
  if (!row) return undefined;
  return {
    id: row.id,
    name: row.name,
    role: row.role,
    entityId: row.entity_id,
    userId: row.user_id,
    expiresAt: row.expires_at === null ? null : Number(row.expires_at),
    lastUsedAt: row.last_used_at === null ? null : Number(row.last_used_at),
    memberRoles: row.user_id ? await store.accounts.rolesOf(row.user_id) : null,
  };
}
