import type {
  FastifyBaseLogger,
  FastifyInstance,
  FastifyRequest,
  RawReplyDefaultExpression,
  RawRequestDefaultExpression,
  RawServerDefault,
} from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { ForbiddenError, NotFoundError } from '@liftoff/core';
import type { Bus } from './bus.js';
import type { EntityRef, Store } from './store/store.js';

export interface ServerSettings {
  /** How long a claimed item waits for its ack before returning to the queue. */
  leaseMs: number;
  /** Agents heartbeat this often; one silent for three intervals is KILLED. */
  heartbeatIntervalMs: number;
  /** Longest a poll request is held open when nothing arrives. */
  pollTimeoutMs: number;
  reapIntervalMs: number;
}

export const DEFAULT_SETTINGS: ServerSettings = {
  leaseMs: 60_000,
  heartbeatIntervalMs: 10_000,
  pollTimeoutMs: 30_000,
  reapIntervalMs: 1_000,
};

export interface AppContext {
  store: Store;
  bus: Bus;
  settings: ServerSettings;
  archiveDir: string;
  now: () => number;
}

export type App = FastifyInstance<
  RawServerDefault,
  RawRequestDefaultExpression,
  RawReplyDefaultExpression,
  FastifyBaseLogger,
  ZodTypeProvider
>;

export interface Principal {
  keyName: string;
  role: 'admin' | 'member' | 'agent';
  /** null: the key may act in every entity. */
  entityId: string | null;
}

declare module 'fastify' {
  interface FastifyRequest {
    principal: Principal;
  }
}

/** Resolves an entity by name and checks the caller may act in it; unknown and foreign entities look alike. */
export async function entityFor(ctx: AppContext, req: FastifyRequest, name: string): Promise<EntityRef> {
  const entity = await ctx.store.findEntity(name);
  if (!entity || !canAccess(req, entity.id)) throw new NotFoundError(`Entity "${name}" not found.`);
  return entity;
}

export function canAccess(req: FastifyRequest, entityId: string): boolean {
  return req.principal.entityId === null || req.principal.entityId === entityId;
}

export function assertAccess(req: FastifyRequest, entityId: string, what: string): void {
  if (!canAccess(req, entityId)) throw new NotFoundError(`${what} not found.`);
}

export function assertAdmin(req: FastifyRequest): void {
  if (req.principal.role !== 'admin') throw new ForbiddenError('This needs an admin API key.');
}
