import type { FastifyRequest } from 'fastify';
import { z } from 'zod';
import { ConflictError, UploadToken, UploadTokenBody, isTerminal, type Run } from '@liftoff/core';
import { hashKey } from '../auth.js';
import type { App, AppContext } from '../context.js';
import { generateUploadToken } from '../uploadTokenAuth.js';

/**
 * A run's upload tokens (docs/outputs.md, Kubernetes): the agent holding a live run asks for one and hands it to the
 * job (a pod's Secret), which then uploads the run's outputs itself without the agent's key or identity. The token is
 * shown once and stored as its sha256; it expires after `uploadTokenTtlMs` and goes when the run ends. The agent
 * may revoke them all sooner (its job is gone).
 */
export function uploadTokenRoutes(
  app: App,
  ctx: AppContext,
  heldRun: (req: FastifyRequest, runId: string, agentId: string) => Promise<Run & { agent_id: string | null }>,
): void {
  app.post(
    '/api/runs/:id/outputs/upload-token',
    {
      schema: {
        tags: ['agent protocol'],
        params: z.object({ id: z.string() }),
        body: UploadTokenBody,
        response: { 200: UploadToken },
      },
    },
    async (req) => {
      const run = await heldRun(req, req.params.id, req.body.agent_id);
      if (isTerminal(run.status))
        throw new ConflictError(`Run ${run.id} has ended (${run.status}); its job cannot upload outputs any more.`);
      const token = generateUploadToken();
      const now = ctx.now();
      const expiresAt = now + ctx.settings.uploadTokenTtlMs;
      await ctx.store.uploadTokens.create({
        token_hash: hashKey(token),
        run_id: run.id,
        agent_id: req.body.agent_id,
        created_at: now,
        expires_at: expiresAt,
      });
      return { token, run_id: run.id, expires_at: expiresAt };
    },
  );

  app.delete(
    '/api/runs/:id/outputs/upload-token',
    {
      schema: {
        tags: ['agent protocol'],
        params: z.object({ id: z.string() }),
        body: UploadTokenBody,
        response: { 200: z.object({ revoked: z.number() }) },
      },
    },
    async (req) => {
      const run = await heldRun(req, req.params.id, req.body.agent_id);
      return { revoked: await ctx.store.uploadTokens.revoke(run.id) };
    },
  );
}
