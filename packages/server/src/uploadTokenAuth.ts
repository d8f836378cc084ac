import { randomBytes } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { UploadTokenRefusedError } from '@liftoff/core';
import { hashKey } from './auth.js';
import type { Principal } from './context.js';
import type { Store } from './store/store.js';

/**
 * A run's upload token (docs/outputs.md, Kubernetes) starts with this, so the server tells it from an API key before
 * looking anything up: a token is never checked against the keys, nor a key against the tokens.
 */
export const UPLOAD_TOKEN_PREFIX = 'lu_';
/** A random 32-byte secret, like an API key; only its sha256 is stored (hashKey). */
export const generateUploadToken = (): string => `${UPLOAD_TOKEN_PREFIX}${randomBytes(32).toString('base64url')}`;

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The route takes a run's upload token (the three upload calls of outputUploads.ts, and nothing else). */
    uploadToken?: boolean;
  }
}

/**
 * Who a request presenting an upload token is: the agent protocol for one run's uploads, in no entity (every other
 * check of entity access fails), and only on the routes marked `uploadToken`. Expiry is checked against the
 * injected clock; a revoked token (its run ended) is simply unknown. Whether the run is still live is the route's
 * check (outputUploads.ts heldRun), since it reads the run anyway.
 */
export async function authenticateUploadToken(
  store: Store,
  req: FastifyRequest,
  token: string,
  now: number,
): Promise<Principal> {
  if (req.routeOptions.config?.uploadToken !== true)
    throw new UploadTokenRefusedError(`it does not authorise ${req.method} ${req.routeOptions.url ?? req.url}`);
  const row = await store.uploadTokens.find(hashKey(token));
  if (!row) throw new UploadTokenRefusedError('it is unknown or was revoked (its run ended)');
  if (row.expires_at <= now)
    throw new UploadTokenRefusedError(`it expired at ${new Date(row.expires_at).toISOString()}`);
  return {
    keyId: `upload-token:${row.run_id}`,
    keyName: `upload token of run ${row.run_id}`,
    role: 'agent',
    entityId: null,
    userId: null,
    entityIds: [],
    memberRoles: null,
    uploadToken: { runId: row.run_id, agentId: row.agent_id },
  };
}
