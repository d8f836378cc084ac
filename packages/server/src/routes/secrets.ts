import { z } from 'zod';
import {
  AgentRef,
  ConflictError,
  ForbiddenError,
  RunSecretsResponse,
  SecretInfo,
  SecretList,
  SecretMissingError,
  SecretName,
  SetSecretBody,
  isTerminal,
  type LaunchSpec,
} from '@liftoff/core';
import { assertAccess, assertAdmin, entityFor, type App, type AppContext } from '../context.js';
import { boundAgent } from './agentAuth.js';

const EntityParams = z.object({ entity: z.string() });
const SecretParams = z.object({ entity: z.string(), name: SecretName });

/**
 * Per-entity secrets. Admins of the entity set and delete them, members list their names; no route returns a value
 * except the run-secrets route of the agent protocol below.
 */
export function secretRoutes(app: App, ctx: AppContext): void {
  app.get(
    '/api/entities/:entity/secrets',
    { schema: { tags: ['secrets'], params: EntityParams, response: { 200: SecretList } } },
    async (req) => ({ secrets: await ctx.store.secrets.list((await entityFor(ctx, req, req.params.entity)).id) }),
  );

  app.put(
    '/api/entities/:entity/secrets/:name',
    { schema: { tags: ['secrets'], params: SecretParams, body: SetSecretBody, response: { 200: SecretInfo } } },
    async (req) => {
      const entity = await entityFor(ctx, req, req.params.entity);
      assertAdmin(req, entity.id);
      return ctx.store.secrets.set(entity.id, req.params.name, req.body.value, req.principal.keyName, ctx.now());
    },
  );

  app.delete(
    '/api/entities/:entity/secrets/:name',
    { schema: { tags: ['secrets'], params: SecretParams } },
    async (req, reply) => {
      const entity = await entityFor(ctx, req, req.params.entity);
      assertAdmin(req, entity.id);
      await ctx.store.secrets.delete(entity.id, req.params.name, entity.name);
      return reply.code(204).send();
    },
  );

  /**
   * The values of a run's `secret_env`, for the agent holding the run, once it is about to start it.
   *
   * Why a route of its own rather than the poll or ack answer: a poll answer goes to any agent of the queue before
   * anyone holds the item, and an ack answer is a Run, which other routes and clients pass around and log. Here the
   * values go only (1) to an agent key (not a member's or admin's user key, which could otherwise register an agent
   * id of its own), (2) of the run's entity, (3) naming the agent the run belongs to, (4) while the run has not
   * ended: the agent asks right before it starts the runner (and, after a restart, to mask the values in what a
   * re-adopted job still prints); an ended run gets nothing. The answer is never cached (no-store) and nothing of
   * it is logged.
   */
  app.post(
    '/api/runs/:id/secrets',
    {
      schema: {
        tags: ['agent protocol'],
        params: z.object({ id: z.string() }),
        body: AgentRef,
        response: { 200: RunSecretsResponse },
      },
    },
    async (req, reply) => {
      if (req.principal.role !== 'agent')
        throw new ForbiddenError(
          'Only an agent key may fetch the secrets of a run; user keys never see secret values.',
        );
      const run = await ctx.store.runs.get(req.params.id);
      assertAccess(req, run.entity_id, `Run "${req.params.id}"`);
      // Only the key the agent registered with speaks for it (agentAuth.ts).
      await boundAgent(ctx, req, req.body.agent_id);
      if (run.agent_id !== req.body.agent_id)
        throw new ForbiddenError(
          `Run "${run.id}" belongs to another agent; only the agent holding it gets its secrets.`,
        );
      if (isTerminal(run.status))
        throw new ConflictError(
          `Run "${run.id}" has ended (${run.status}); its secrets are handed out only while it is active.`,
        );
      const item = await ctx.store.items.get(run.item_id, ctx.now(), { explain: false });
      const wanted = Object.entries((item.spec as LaunchSpec).secret_env ?? {});
      const values = await ctx.store.secrets.valuesFor(
        run.entity_id,
        wanted.map(([, s]) => s),
      );
      const missing = wanted.filter(([, s]) => !values.has(s)).map(([env, secret]) => ({ env, secret }));
      if (missing.length) throw new SecretMissingError(run.entity, missing);
      reply.header('cache-control', 'no-store');
      return { env: Object.fromEntries(wanted.map(([env, s]) => [env, values.get(s) as string])) };
    },
  );
}

/** At push: every secret the spec refers to must exist in the queue's entity. */
export async function assertSecretsExist(
  ctx: AppContext,
  entity: { id: string; name: string },
  spec: Pick<LaunchSpec, 'secret_env'>,
): Promise<void> {
  const wanted = Object.entries(spec.secret_env ?? {});
  const missing = new Set(
    await ctx.store.secrets.missing(
      entity.id,
      wanted.map(([, s]) => s),
    ),
  );
  const refs = wanted.filter(([, s]) => missing.has(s)).map(([env, secret]) => ({ env, secret }));
  if (refs.length) throw new SecretMissingError(entity.name, refs);
}
