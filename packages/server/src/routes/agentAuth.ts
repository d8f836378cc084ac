import type { FastifyRequest } from 'fastify';
import { AgentKeyMismatchError, ForbiddenError } from '@liftoff/core';
import { canAccess, isServerAdmin, type AppContext } from '../context.js';
import type { AgentBinding } from '../caches.js';
import { agentNotFound } from '../store/agents.js';

/**
 * Registering (and so polling for work with its queues' env and specs) takes an agent key of the entity, or the
 * server admin key. Users' keys read and push; they do not claim other users' items.
 */
export function assertAgentProtocolKey(req: FastifyRequest): void {
  if (req.principal.role !== 'agent' && !isServerAdmin(req))
    throw new ForbiddenError(
      'Running an agent needs an agent key of its entity: "liftoff keys create NAME --agent --entity ENTITY" (an entity admin mints it).',
    );
}

/**
 * The agent `id`, when the caller's key is the one it is bound to. Outside the caller's entities the answer is
 * exactly an unknown id's (404); inside them, another key's agent is AGENT_KEY_MISMATCH (403). An agent registered
 * before key binding is bound to the first agent key (or server admin key) of its entity that speaks for it.
 */
export async function boundAgent(ctx: AppContext, req: FastifyRequest, id: string): Promise<AgentBinding> {
  const keyId = req.principal.keyId;
  // The binding is cached (caches.ts says why it needs no invalidation); only a hit for the caller's own key is
  // trusted, anything else is read again.
  const cached = ctx.store.caches.agents.get(id);
  if (cached && cached.key_id === keyId && canAccess(req, cached.entity_id)) return cached;
  const generation = ctx.store.caches.agents.current;
  const agent = await ctx.store.agents.get(id);
  if (!canAccess(req, agent.entity_id)) throw agentNotFound(id);
  const binding = { id: agent.id, entity_id: agent.entity_id, key_id: agent.key_id };
  if (agent.key_id === keyId) {
    ctx.store.caches.agents.put(id, binding, generation);
    return binding;
  }
  if (agent.key_id === null && (req.principal.role === 'agent' || isServerAdmin(req)))
    if (await ctx.store.agents.bindUnbound(id, keyId)) return { ...binding, key_id: keyId };
  throw new AgentKeyMismatchError(id);
}
