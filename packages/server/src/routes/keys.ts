import type { FastifyRequest } from 'fastify';
import { z } from 'zod';
import { ApiKeyInfo, ConflictError, NotFoundError, type ApiKeyInfo as KeyInfo } from '@liftoff/core';
import { isServerAdmin, roleIn, type App, type AppContext } from '../context.js';
import type { ApiKeyListing } from '../store/keys.js';

/**
 * Which keys a caller sees (and may revoke): a server admin all; anyone their own key and, for a user key, their
 * user's keys; an entity admin also that entity's agent keys. Others are answered as if they did not exist.
 */
function visible(req: FastifyRequest, k: ApiKeyListing): boolean {
  const p = req.principal;
  if (isServerAdmin(req) || k.id === p.keyId) return true;
  if (p.userId !== null && k.user_id === p.userId) return true;
  return k.role === 'agent' && k.entity_id !== null && roleIn(req, k.entity_id) === 'admin';
}

const info = (k: ApiKeyListing): KeyInfo => ({
  id: k.id,
  name: k.name,
  role: k.role as KeyInfo['role'],
  user: k.user_name,
  entity: k.entity_name,
  created_at: Number(k.created_at),
  last_used_at: k.last_used_at === null ? null : Number(k.last_used_at),
  expires_at: k.expires_at === null ? null : Number(k.expires_at),
});

/** Listing and revoking keys; never their secret or hash. Minting is POST /api/keys (accounts.ts). */
export function keyRoutes(app: App, ctx: AppContext): void {
  app.get(
    '/api/keys',
    { schema: { tags: ['accounts'], response: { 200: z.object({ keys: z.array(ApiKeyInfo) }) } } },
    async (req) => ({ keys: (await ctx.store.keys.list()).filter((k) => visible(req, k)).map(info) }),
  );

  /**
   * Revokes a key by id, or by name when the name is that of exactly one key the caller sees. Agents bound to it
   * are refused from their next request on; a new agent key of their entity may register them again.
   */
  app.delete(
    '/api/keys/:key',
    { schema: { tags: ['accounts'], params: z.object({ key: z.string() }), response: { 204: z.null() } } },
    async (req, reply) => {
      const keys = (await ctx.store.keys.list()).filter((k) => visible(req, k));
      const byId = keys.find((k) => k.id === req.params.key);
      const matches = byId ? [byId] : keys.filter((k) => k.name === req.params.key);
      const [target, ...more] = matches;
      if (!target)
        throw new NotFoundError(
          `Key "${req.params.key}" not found; list the keys you can see with "liftoff keys list".`,
        );
      if (more.length)
        throw new ConflictError(
          `${matches.length} keys are named "${req.params.key}"; revoke one by its id (${matches.map((k) => k.id).join(', ')}).`,
        );
      const serverAdmins = keys.filter((k) => k.role === 'admin' && k.user_id === null && k.entity_id === null);
      if (serverAdmins.length === 1 && serverAdmins[0]?.id === target.id)
        throw new ConflictError(
          'This is the last server admin key: without it nothing could create users, teams or user keys. Keep it.',
        );
      await ctx.store.keys.delete(target.id);
      return reply.code(204).send(null);
    },
  );
}
