import type { FastifyRequest } from 'fastify';
import { AgentKeyMismatchError, ForbiddenError } from '@liftoff/core';
import { canAccess, isServerAdmin, type AppContext } from '../context.js';
import { agentNotFound, type AgentView } from '../store/agents.js';

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
export async function boundAgent(ctx: AppContext, req: FastifyRequest, id: string): Promise<AgentView> {
  const agent = await ctx.store.agents.get(id);
  if (!canAccess(req, agent.entity_id)) throw agentNotFound(id);
  const keyId = req.principal.keyId;
  if (agent.key_id === keyId) return agent;
  if (agent.key_id === null && (req.principal.role === 'agent' || isServerAdmin(req)))
    if (await ctx.store.agents.bindUnbound(id, keyId)) return { ...agent, key_id: keyId };
  throw new AgentKeyMismatchError(id);
}
