import { createHash, randomBytes } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { UnauthenticatedError } from '@liftoff/core';
import type { Principal } from './context.js';
import type { Store } from './store/store.js';

/** Keys are random 32-byte secrets; only their SHA-256 is stored, so a leaked database leaks no usable key. */
export const hashKey = (key: string): string => createHash('sha256').update(key).digest('hex');
export const generateKey = (): string => `lk_${randomBytes(32).toString('base64url')}`;

export async function authenticate(store: Store, req: FastifyRequest): Promise<Principal> {
  const header = req.headers.authorization ?? '';
  const match = /^Bearer\s+(\S+)$/i.exec(header);
  if (!match?.[1]) throw new UnauthenticatedError();
  const row = await store.keys.findByHash(hashKey(match[1]));
  if (!row) throw new UnauthenticatedError('Unknown API key. Check LIFTOFF_API_KEY or ~/.config/liftoff/credentials.');
  const role = row.role as Principal['role'];
  // A user key acts in its user's entities (looked up per request, so membership changes apply at once); an agent
  // key in its one entity; a key with neither is server-wide.
  const entityIds = row.user_id
    ? await store.accounts.entityIdsOf(row.user_id)
    : row.entity_id
      ? [row.entity_id]
      : null;
  return { keyName: row.name, role, entityId: row.entity_id, userId: row.user_id, entityIds };
}
