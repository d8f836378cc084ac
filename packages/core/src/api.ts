import { z } from 'zod';
import { LaunchSpec } from './launchSpec.js';
import { AGENT_STATUSES, ERROR_STAGES, ITEM_STATES, PRIORITIES, RESOURCE_TYPES, RUN_REPORT_STATES } from './states.js';

/** Wire contracts of the HTTP API. The server validates with them and the client parses with them. */

export const Timestamp = z.number().int().describe('milliseconds since the Unix epoch');
const Name = z
  .string()
  .min(1)
  .max(64)
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'use letters, digits, ".", "_" and "-", starting with a letter or digit');

export const ErrorBody = z.object({ error: z.object({ code: z.string(), message: z.string() }) });

export const ResourceArgs = z.record(z.string(), z.record(z.string(), z.unknown()));

export const Queue = z.object({
  id: z.string(),
  entity: z.string(),
  name: z.string(),
  resource: z.enum(RESOURCE_TYPES),
  resource_args: ResourceArgs,
  created_at: Timestamp,
  pending: z.number().int(),
  running: z.number().int(),
});
export type Queue = z.infer<typeof Queue>;

export const CreateQueueBody = z.object({
  name: Name,
  resource: z.enum(RESOURCE_TYPES).default('local-process'),
  /** Default resource config `{resource_args: {<resource>: {...}}}` applied to every item. */
  resource_args: ResourceArgs.default({}),
});
export type CreateQueueBody = z.input<typeof CreateQueueBody>;

export const PENDING_REASONS = ['no_agent', 'agents_busy', 'queued', 'next'] as const;
/** Why a pending item has not started yet. */
export const PendingReason = z.object({
  code: z.enum(PENDING_REASONS),
  message: z.string(),
  /** For `no_agent`: when an agent serving the queue was last alive, if ever. */
  since: Timestamp.nullable(),
});
export type PendingReason = z.infer<typeof PendingReason>;

export const Item = z.object({
  id: z.string(),
  queue: z.string(),
  entity: z.string(),
  priority: z.number().int(),
  state: z.enum(ITEM_STATES),
  spec: LaunchSpec,
  created_at: Timestamp,
  claimed_by: z.string().nullable(),
  claimed_at: Timestamp.nullable(),
  ended_at: Timestamp.nullable(),
  run_id: z.string().nullable(),
  /** 1-based position among the queue's pending items; null when not pending. */
  position: z.number().int().nullable(),
  pending_reason: PendingReason.nullable(),
});
export type Item = z.infer<typeof Item>;

export const PushBody = z.object({
  spec: LaunchSpec,
  priority: z.enum(Object.keys(PRIORITIES) as [keyof typeof PRIORITIES]).optional(),
});
export type PushBody = z.input<typeof PushBody>;

export const Run = z.object({
  id: z.string(),
  item_id: z.string(),
  queue: z.string(),
  entity: z.string(),
  agent_id: z.string(),
  status: z.enum(ITEM_STATES),
  exit_code: z.number().int().nullable(),
  error_stage: z.enum(ERROR_STAGES).nullable(),
  error_message: z.string().nullable(),
  created_at: Timestamp,
  started_at: Timestamp.nullable(),
  ended_at: Timestamp.nullable(),
  log_size: z.number().int(),
});
export type Run = z.infer<typeof Run>;

export const RunDetail = Run.extend({ spec: LaunchSpec });
export type RunDetail = z.infer<typeof RunDetail>;

export const Agent = z.object({
  id: z.string(),
  name: z.string(),
  entity: z.string(),
  hostname: z.string(),
  queues: z.array(z.string()),
  version: z.string(),
  config: z.record(z.string(), z.unknown()),
  max_jobs: z.number().int().describe('-1 = unlimited'),
  status: z.enum(AGENT_STATUSES),
  status_reason: z.string().nullable(),
  started_at: Timestamp,
  last_heartbeat_at: Timestamp,
  current_jobs: z.number().int(),
});
export type Agent = z.infer<typeof Agent>;

export const RegisterAgentBody = z.object({
  /** Stable identity: the same id across restarts lets the agent reconcile the runs it held. */
  id: z.string().regex(/^[A-Za-z0-9._-]{1,128}$/),
  name: z.string().min(1).max(128),
  entity: Name,
  hostname: z.string().max(255),
  queues: z.array(Name).min(1),
  version: z.string().max(64),
  max_jobs: z.number().int(),
  config: z.record(z.string(), z.unknown()).default({}),
});
export type RegisterAgentBody = z.input<typeof RegisterAgentBody>;

export const RegisterAgentResponse = z.object({
  agent: Agent,
  heartbeat_interval_ms: z.number().int(),
  poll_timeout_ms: z.number().int(),
  /** Runs this identity held when it last ran and that have not ended: the agent must reconcile them. */
  active_runs: z.array(Run),
});
export type RegisterAgentResponse = z.infer<typeof RegisterAgentResponse>;

export const HeartbeatBody = z.object({
  status: z.enum(['POLLING', 'RUNNING']),
  current_jobs: z.number().int().min(0),
});

export const PollBody = z.object({
  /** Queues in the agent's current round-robin order. */
  queues: z.array(Name).min(1),
  /** Free slots; 0 waits only for cancellations. */
  max_items: z.number().int().min(0).max(100),
  wait_ms: z.number().int().min(0).max(120_000).optional(),
});
export type PollBody = z.input<typeof PollBody>;

export const ClaimedItem = z.object({
  item_id: z.string(),
  queue: z.string(),
  entity: z.string(),
  priority: z.number().int(),
  spec: LaunchSpec,
  lease_expires_at: Timestamp,
});
export type ClaimedItem = z.infer<typeof ClaimedItem>;

export const PollResponse = z.object({
  items: z.array(ClaimedItem),
  /** Runs held by this agent that a user asked to cancel. */
  cancel: z.array(z.string()),
});
export type PollResponse = z.infer<typeof PollResponse>;

export const AgentRef = z.object({ agent_id: z.string() });

export const ReportRunBody = z.object({
  agent_id: z.string(),
  state: z.enum(RUN_REPORT_STATES),
  exit_code: z.number().int().nullable().optional(),
  error_stage: z.enum(ERROR_STAGES).optional(),
  error_message: z.string().max(16_384).optional(),
});
export type ReportRunBody = z.input<typeof ReportRunBody>;

export const LogAppendResponse = z.object({ size: z.number().int() });
export const LogReadResponse = z.object({
  offset: z.number().int(),
  next_offset: z.number().int(),
  data: z.string(),
  /** True once the run has ended and every byte has been returned. */
  complete: z.boolean(),
});
export type LogReadResponse = z.infer<typeof LogReadResponse>;

export const CodeArchive = z.object({ id: z.string(), sha256: z.string(), size: z.number().int() });
export type CodeArchive = z.infer<typeof CodeArchive>;

export const Whoami = z.object({ key_name: z.string(), role: z.string(), entity: z.string() });

export const ListQuery = z.object({
  limit: z.coerce.number().int().min(1).max(1000).default(100),
});
