import type {
  FastifyBaseLogger,
  FastifyInstance,
  FastifyRequest,
  RawReplyDefaultExpression,
  RawRequestDefaultExpression,
  RawServerDefault,
} from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { DEFAULT_ARCHIVE_LIMITS, ForbiddenError, NotFoundError, type ArchiveLimits } from '@liftoff/core';
import type { ArtifactStore } from './artifacts/index.js';
import type { Bus } from './bus.js';
import type { Metrics } from './metrics.js';
import type { OutputLimits } from './store/outputs.js';
import type { RetentionPolicy } from './store/retention.js';
import type { EntityRef, Store } from './store/store.js';

export interface ServerSettings {
  /** How long a claimed item waits for its ack before returning to the queue. */
  leaseMs: number;
  /** Agents heartbeat this often; one silent for three intervals is KILLED. */
  heartbeatIntervalMs: number;
  /** Longest a poll request is held open when nothing arrives. */
  pollTimeoutMs: number;
  reapIntervalMs: number;
  /** Pruning of ended items, their runs and logs (retention.ts); both null keeps everything. */
  retention: RetentionPolicy;
  pruneIntervalMs: number;
  /**
   * Longest a client may take to send a request's headers, and the whole request (headers and body). They bound
   * receiving only: long polls and log streams, held open while answering, are not cut. Slow clients (slowloris)
   * are.
   */
  headersTimeoutMs: number;
  requestTimeoutMs: number;
  /** Caps on uploaded code archives (packed size, unpacked size, entries). */
  archiveLimits: ArchiveLimits;
  /** Most log bytes stored per run; past it one truncation note is stored and the rest dropped (queues may lower it). */
  maxRunLogBytes: number;
  /**
   * A run whose agent has been silent (no heartbeat, no poll) this long ends `lost`. Longer than the three
   * heartbeat intervals after which the agent is KILLED, so a short network cut only marks the agent.
   */
  runLostAfterMs: number;
  /**
   * Failed authentications allowed per client address and per presented key prefix within `authFailureWindowMs`
   * before further failures are answered 429 (per replica, in memory; see authRateLimit.ts).
   */
  authFailureLimit: number;
  authFailureWindowMs: number;
  /** Largest push body (a spec with its run config), in bytes: past it, 413 SPEC_TOO_LARGE. */
  pushBodyBytes: number;
  /** Largest run_config of a pushed spec, serialized as JSON, in bytes: past it, 413 SPEC_TOO_LARGE. */
  runConfigBytes: number;
  /** Deepest nesting of objects and arrays in any JSON body: past it, 400 JSON_TOO_DEEP. */
  jsonDepth: number;
  /** Caps on stored run outputs: bytes and files per run, bytes per entity over all its runs (docs/outputs.md). */
  outputLimits: OutputLimits;
  /** How long a run's upload token counts at most (it goes earlier, when the run ends); docs/outputs.md. */
  uploadTokenTtlMs: number;
  /** How often the sweep controller looks at its sweeps, and how long its lease lasts unrenewed (a dead leader's wait). */
  sweepTickMs: number;
  sweepLeaseMs: number;
}

export const DEFAULT_SETTINGS: ServerSettings = {
  leaseMs: 60_000,
  heartbeatIntervalMs: 30_000,
  pollTimeoutMs: 24_000,
  reapIntervalMs: 1_000,
  retention: { maxAgeMs: null, keepPerQueue: null },
  pruneIntervalMs: 60_000,
  headersTimeoutMs: 15_000,
  requestTimeoutMs: 300_000,
  archiveLimits: DEFAULT_ARCHIVE_LIMITS,
  maxRunLogBytes: 64 * 1024 * 1024,
  runLostAfterMs: 10 * 60_000,
  authFailureLimit: 20,
  authFailureWindowMs: 60_000,
  pushBodyBytes: 1024 * 1024,
  runConfigBytes: 256 * 1024,
  jsonDepth: 64,
  outputLimits: { runBytes: 10 * 1024 ** 3, runFiles: 10_000, entityBytes: 100 * 1024 ** 3 },
  uploadTokenTtlMs: 30 * 24 * 3600_000,
  sweepTickMs: 250,
  sweepLeaseMs: 10_000,
};

/**
 * How long a poll is held. An open poll counts as the agent's heartbeat (the server notes the agent alive when a
 * poll starts and when it ends), so polls are held for less than a heartbeat interval: an idle agent then needs no
 * other request, about 2.5 a minute instead of the 6 of a 10 s poller.
 */
export const pollHoldMs = (s: ServerSettings): number =>
  Math.max(100, Math.min(s.pollTimeoutMs, Math.floor(s.heartbeatIntervalMs * 0.8)));

export interface AppContext {
  store: Store;
  bus: Bus;
  settings: ServerSettings;
  archiveDir: string;
  now: () => number;
  metrics: Metrics;
  /** Where run outputs' bytes live (artifacts/). */
  artifacts: ArtifactStore;
  /** Asks the sweep controller to look at its sweeps now (a sweep was created or resumed); unset: it looks by itself. */
  kickSweeps?: () => void;
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
  /** admin: administers its entities; member: pushes, reads and cancels; agent: the agent protocol and reads. */
  role: 'admin' | 'member' | 'agent';
  /** An agent key's entity; null for user keys and server-wide keys. */
  entityId: string | null;
  /** The user a user key belongs to; null for agent keys and server-wide keys. */
  userId: string | null;
  /** Entities the key may act in; null: every entity (a server-wide admin key). */
  entityIds: string[] | null;
  /** The key's id (agents are bound to it). */
  keyId: string;
  /** A user key's membership role per entity id; null for agent keys and server-wide keys. */
  memberRoles: Record<string, 'admin' | 'member'> | null;
  /** Set when the request presents a run's upload token (uploadTokenAuth.ts) instead of a key: its run and agent. */
  uploadToken?: { runId: string; agentId: string };
}

declare module 'fastify' {
  interface FastifyRequest {
    principal: Principal;
  }
}

/** Resolves an entity by name and checks the caller may act in it; unknown and foreign entities look alike. */
export async function entityFor(ctx: AppContext, req: FastifyRequest, name: string): Promise<EntityRef> {
  const entity = await ctx.store.entities.find(name);
  if (!entity || !canAccess(req, entity.id)) throw new NotFoundError(`Entity "${name}" not found.`);
  return entity;
}

export function canAccess(req: FastifyRequest, entityId: string): boolean {
  return req.principal.entityIds === null || req.principal.entityIds.includes(entityId);
}

/** Creating entities, users and their keys, and /metrics: only server-wide admin keys. */
export function assertServerAdmin(req: FastifyRequest, what: string): void {
  if (req.principal.role !== 'admin' || req.principal.entityIds !== null)
    throw new ForbiddenError(`${what} needs a server admin key (the one "liftoff server" wrote on its first start).`);
}

export function assertAccess(req: FastifyRequest, entityId: string, what: string): void {
  if (!canAccess(req, entityId)) throw new NotFoundError(`${what} not found.`);
}

/**
 * The caller's role in an entity: a server-wide key is admin everywhere, an agent key is agent in its entity, and a
 * user key has the lower of its own role and its user's membership role there (an admin key of a plain member is a
 * member). null outside the caller's entities.
 */
export function roleIn(req: FastifyRequest, entityId: string): 'admin' | 'member' | 'agent' | null {
  const p = req.principal;
  if (!canAccess(req, entityId)) return null;
  if (p.entityIds === null) return p.role;
  if (p.role === 'agent') return 'agent';
  return p.role === 'admin' && p.memberRoles?.[entityId] === 'admin' ? 'admin' : 'member';
}

export const isServerAdmin = (req: FastifyRequest): boolean =>
  req.principal.role === 'admin' && req.principal.entityIds === null;

/**
 * Administering an entity. Call it after entityFor (or assertAccess), so an entity outside the caller's is a 404
 * like an unknown one, and a 403 only says "you are in it but not its admin".
 */
export function assertAdmin(req: FastifyRequest, entityId: string): void {
  if (roleIn(req, entityId) !== 'admin')
    throw new ForbiddenError(
      'This needs an admin of the entity: an admin key of a user whose membership is admin ("liftoff members add ENTITY USER --role admin"), or a server admin key.',
    );
}
