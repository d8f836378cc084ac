import { z } from 'zod';
import { SECURITY_ALLOWANCES } from './allowances.js';
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

/** W&B's queue switch: DISABLED refuses any priority but the default, V0 serves higher priorities first. */
export const PRIORITIZATION_MODES = ['DISABLED', 'V0'] as const;
export type PrioritizationMode = (typeof PRIORITIZATION_MODES)[number];

/** JSON schema of one `{{variable}}` of a queue's config template (the subset W&B Launch uses). */
export const TemplateVariableSchema = z
  .object({
    type: z.enum(['string', 'integer', 'number']),
    enum: z
      .array(z.union([z.string(), z.number()]))
      .min(1)
      .optional(),
    minimum: z.number().optional(),
    maximum: z.number().optional(),
    default: z.union([z.string(), z.number()]).optional(),
    description: z.string().max(1024).optional(),
  })
  .strict();
export type TemplateVariableSchema = z.infer<typeof TemplateVariableSchema>;
export const TemplateVariables = z.record(
  z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'variable names are letters, digits and "_"'),
  z.object({ schema: TemplateVariableSchema }).strict(),
);
export type TemplateVariables = z.infer<typeof TemplateVariables>;

/**
 * Upper bounds of numbers that reach the database: PostgreSQL's integer columns hold 32 bits, and a value past its
 * column is a 500 there, not a 400. Each bound is far past any sensible setting.
 */
const INT32_MAX = 2_147_483_647;
const Limit = z.number().int().min(1).max(1_000_000).nullable();
/** Byte offsets into a run's log (bigint columns; JavaScript numbers stay exact below 2^53). */
export const ByteOffset = z.coerce.number().int().min(0).max(Number.MAX_SAFE_INTEGER);

/**
 * Keys of a queue's resource args that items may not set, as dotted paths inside the resource's section
 * (`user`, `builder.base_image`, `spec.template.spec.serviceAccountName`), or `*` for all of them.
 */
export const LockedKeys = z
  .array(
    z
      .string()
      .max(256)
      .regex(
        /^(\*|[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*)$/,
        'a dotted key path such as "user" or "builder.base_image", or "*"',
      ),
  )
  .max(100)
  .refine((a) => new Set(a).size === a.length, 'each key may be listed once');

// Guardrail exceptions: in a module without zod, so the CLI's help can list them without loading the schemas.
export { SECURITY_ALLOWANCES };
/** A DNS-1123 name, as namespaces and service accounts have. */
const K8S_NAME = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;
/**
 * Named allowances: `namespace:<name>` lets the queue's items choose that namespace, `serviceAccount:<name>` that
 * service account (on top of the agent config's `kubernetes.namespaces` / `kubernetes.service-accounts`).
 */
const NamedAllowance = z.templateLiteral([z.enum(['namespace', 'serviceAccount']), ':', z.string().regex(K8S_NAME)]);
const AllowEntry = z.union([z.enum(SECURITY_ALLOWANCES), NamedAllowance]);
export type SecurityAllowance = z.infer<typeof AllowEntry>;
export const isSecurityAllowance = (s: string): s is SecurityAllowance => AllowEntry.safeParse(s).success;
const Allow = z.array(AllowEntry).refine((a) => new Set(a).size === a.length, 'each allowance may be listed once');

/** A run still `starting` this long after its runner submitted it is cancelled and failed by the agent (null: no limit). */
const StartTimeout = z.number().int().min(1).max(2_592_000).nullable();
/** How often an item is requeued after its run was preempted before it ends `failed`. */
const PreemptionRetries = z.number().int().min(0).max(100);
/** Wait before the first retry after a preemption; doubles per retry, at most an hour (or this value when longer). */
const PreemptionBackoff = z.number().int().min(0).max(86_400);
/** How often an item is requeued after its run was declared lost (its agent went silent); 0: never. */
const LostRetries = z.number().int().min(0).max(10);
/** The queue's cap on one run's stored log, in bytes; it can only lower the server's cap (null: the server's). */
const MaxLogBytes = z
  .number()
  .int()
  .min(1)
  .max(2 ** 40)
  .nullable();
/** Runs an agent holds, sent with polls and heartbeats so the server can name the ones it declared lost. */
const HeldRunIds = z.array(z.string().max(128)).max(100_000);

/** The queue's switches an agent needs while it runs an item (given with each claim and in RunDetail). */
export const QueueSettings = z.object({
  start_timeout_seconds: StartTimeout,
  allow: z.array(AllowEntry),
});
export type QueueSettings = z.infer<typeof QueueSettings>;

export const Queue = z.object({
  id: z.string(),
  entity: z.string(),
  name: z.string(),
  resource: z.enum(RESOURCE_TYPES),
  resource_args: ResourceArgs,
  created_at: Timestamp,
  pending: z.number().int(),
  running: z.number().int(),
  prioritization_mode: z.enum(PRIORITIZATION_MODES),
  /** With prioritisation: a pending item moves up one priority level per this many seconds waited (null: never). */
  aging_seconds: z.number().int().nullable(),
  /** Most items claimed, starting, running or cancelling at once (null: unlimited). */
  max_concurrency: Limit,
  template_variables: TemplateVariables,
  start_timeout_seconds: StartTimeout,
  preemption_retries: PreemptionRetries,
  preemption_backoff_seconds: PreemptionBackoff,
  allow: z.array(AllowEntry),
  locked_keys: LockedKeys,
  lost_retries: LostRetries,
  max_log_bytes: MaxLogBytes,
});
export type Queue = z.infer<typeof Queue>;

export const CreateQueueBody = z.object({
  name: Name,
  resource: z.enum(RESOURCE_TYPES).default('local-process'),
  /** Default resource config `{resource_args: {<resource>: {...}}}` applied to every item; may hold `{{variable}}`s. */
  resource_args: ResourceArgs.default({}),
  prioritization_mode: z.enum(PRIORITIZATION_MODES).default('DISABLED'),
  aging_seconds: z.number().int().min(1).max(315_360_000).nullable().default(null),
  max_concurrency: Limit.default(null),
  template_variables: TemplateVariables.default({}),
  start_timeout_seconds: StartTimeout.default(null),
  preemption_retries: PreemptionRetries.default(3),
  preemption_backoff_seconds: PreemptionBackoff.default(30),
  allow: Allow.default([]),
  locked_keys: LockedKeys.default([]),
  lost_retries: LostRetries.default(0),
  max_log_bytes: MaxLogBytes.default(null),
});
export type CreateQueueBody = z.input<typeof CreateQueueBody>;

/** Changes a queue's switches; absent fields stay as they are, null clears a limit, aging or the start timeout. */
export const UpdateQueueBody = z
  .object({
    prioritization_mode: z.enum(PRIORITIZATION_MODES),
    aging_seconds: z.number().int().min(1).max(315_360_000).nullable(),
    max_concurrency: Limit,
    start_timeout_seconds: StartTimeout,
    preemption_retries: PreemptionRetries,
    preemption_backoff_seconds: PreemptionBackoff,
    allow: Allow,
    locked_keys: LockedKeys,
    lost_retries: LostRetries,
    max_log_bytes: MaxLogBytes,
  })
  .partial()
  .strict();
export type UpdateQueueBody = z.input<typeof UpdateQueueBody>;

export const Entity = z.object({
  name: z.string(),
  /** Most items claimed, starting, running or cancelling at once over all its queues (null: unlimited). */
  max_concurrency: Limit,
});
export type Entity = z.infer<typeof Entity>;
export const CreateEntityBody = z.object({ name: Name, max_concurrency: Limit.default(null) }).strict();
export type CreateEntityBody = z.input<typeof CreateEntityBody>;
export const UpdateEntityBody = z.object({ max_concurrency: Limit }).partial().strict();
export type UpdateEntityBody = z.input<typeof UpdateEntityBody>;

export const CreateUserBody = z.object({ name: Name }).strict();
export const CreateTeamBody = z.object({ name: Name }).strict();
export const MEMBER_ROLES = ['admin', 'member'] as const;
export type MemberRole = (typeof MEMBER_ROLES)[number];
/**
 * `role` absent: an existing member keeps theirs; a new one is admin when the team has no admin yet (its first
 * member owns it), else member.
 */
export const AddMemberBody = z.object({ user: Name, role: z.enum(MEMBER_ROLES).optional() }).strict();
export type AddMemberBody = z.input<typeof AddMemberBody>;
export const Members = z.object({
  entity: z.string(),
  members: z.array(z.string()),
  /** Each member's role in this entity. */
  roles: z.record(z.string(), z.enum(MEMBER_ROLES)).optional(),
});
export type Members = z.infer<typeof Members>;
export const KEY_ROLES = ['admin', 'member', 'agent'] as const;
/** admin/member keys belong to a user (`user`); agent keys to one entity (`entity`). */
export const CreateKeyBody = z
  .object({
    name: z.string().min(1).max(128),
    role: z.enum(KEY_ROLES),
    user: Name.optional(),
    entity: Name.optional(),
    /** Milliseconds since the epoch after which the key is refused; absent: never expires. */
    expires_at: z.number().int().min(0).max(8_640_000_000_000_000).optional(),
  })
  .strict();
export type CreateKeyBody = z.input<typeof CreateKeyBody>;
/** A key as listed: never its secret nor its hash. */
export const ApiKeyInfo = z.object({
  id: z.string(),
  name: z.string(),
  role: z.enum(KEY_ROLES),
  user: z.string().nullable(),
  entity: z.string().nullable(),
  created_at: z.number(),
  /** Updated at most once a minute per key, so it is accurate to about a minute. */
  last_used_at: z.number().nullable(),
  expires_at: z.number().nullable(),
});
export type ApiKeyInfo = z.infer<typeof ApiKeyInfo>;
/** The secret is shown once, here; the server keeps only its hash. */
export const CreatedKey = z.object({
  name: z.string(),
  role: z.enum(KEY_ROLES),
  user: z.string().nullable(),
  entity: z.string().nullable(),
  key: z.string(),
  id: z.string().optional(),
  expires_at: z.number().nullable().optional(),
});
export type CreatedKey = z.infer<typeof CreatedKey>;

export const PENDING_REASONS = [
  'backoff',
  'no_agent',
  'queue_limit',
  'entity_limit',
  'agents_busy',
  'queued',
  'next',
] as const;
/** Why a pending item has not started yet. */
export const PendingReason = z.object({
  code: z.enum(PENDING_REASONS),
  message: z.string(),
  /**
   * For `no_agent`: when an agent serving the queue was last alive, if ever. For `backoff`: when the item was
   * requeued (its preempted run ended); it becomes claimable at the item's `not_before`. Null for the others.
   */
  since: Timestamp.nullable(),
});
export type PendingReason = z.infer<typeof PendingReason>;

export const PushBody = z.object({
  spec: LaunchSpec,
  priority: z.enum(Object.keys(PRIORITIES) as [keyof typeof PRIORITIES]).optional(),
  /** Values of the queue's `{{variable}}`s; the server validates and substitutes them. */
  template_variables: z.record(z.string(), z.union([z.string(), z.number()])).default({}),
});
export type PushBody = z.input<typeof PushBody>;

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
  /** 1-based position among the queue's pending items, computed on read; null when not pending and in a push's answer. */
  position: z.number().int().nullable(),
  pending_reason: PendingReason.nullable(),
  /** How often a run of this item was preempted; the item was requeued after each but the last, if retries ran out. */
  preemptions: z.number().int(),
  /** Set while a requeued item waits out its backoff: no agent can claim it before this time. */
  not_before: Timestamp.nullable(),
  /** How often a run of this item was declared lost; the item was requeued after each its queue's lost_retries allowed. */
  lost_runs: z.number().int().default(0),
  /**
   * The push as its author sent it: the spec before the queue's resource args and template values were merged in,
   * the priority name and the template values. A re-run pushes this again (with changes). Null for items pushed
   * before Liftoff recorded it.
   */
  pushed: PushBody.nullable().default(null),
});
export type Item = z.infer<typeof Item>;

/** An object-store URI (`s3://bucket/key`, `gs://bucket/key`) of printable characters without spaces. */
export const OutputsLink = z
  .string()
  .max(2048)
  .regex(/^(s3|gs):\/\/[a-z0-9][a-z0-9._-]{1,221}(\/[\x21-\x7e]*)?$/, 'an s3:// or gs:// URI');

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
  /** The latest non-fatal problem the runner reported (e.g. a pod that cannot be scheduled); null when none. */
  warning: z.string().nullable(),
  /**
   * Where a runner whose job runs elsewhere had it write its outputs (SageMaker's `<S3OutputPath>/<job>/output/`,
   * Vertex's base output directory), as an `s3://` or `gs://` URI; null otherwise (docs/outputs.md).
   */
  outputs_link: z.string().nullable().default(null),
});
export type Run = z.infer<typeof Run>;

/** `queue_settings` lets an agent that re-adopts a run after a restart apply its queue's switches again. */
export const RunDetail = Run.extend({ spec: LaunchSpec, queue_settings: QueueSettings });
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
  /** A stop asked through the API and not yet carried out. */
  stop_requested: z.enum(['finish', 'stop-runs']).nullable().default(null),
});
export type Agent = z.infer<typeof Agent>;

/** `finish`: take no new work, let running jobs end, then exit; `stop-runs`: stop them now (as on SIGTERM). */
export const AGENT_STOP_MODES = ['finish', 'stop-runs'] as const;
export type AgentStopMode = (typeof AGENT_STOP_MODES)[number];
export const StopAgentBody = z.object({ mode: z.enum(AGENT_STOP_MODES).default('stop-runs') }).strict();
export type StopAgentBody = z.input<typeof StopAgentBody>;

export const RegisterAgentBody = z.object({
  /** Stable identity: the same id across restarts lets the agent reconcile the runs it held. */
  id: z.string().regex(/^[A-Za-z0-9._-]{1,128}$/),
  name: z.string().min(1).max(128),
  entity: Name,
  hostname: z.string().max(255),
  queues: z.array(Name).min(1),
  version: z.string().max(64),
  max_jobs: z.number().int().min(-1).max(100_000),
  config: z.record(z.string(), z.unknown()).default({}),
  /** The agent protocol the agent speaks (agentProtocol.ts); absent: 1, an agent from before versions. */
  protocol_version: z.number().int().min(1).max(1_000_000).optional(),
});
export type RegisterAgentBody = z.input<typeof RegisterAgentBody>;

export const RegisterAgentResponse = z.object({
  agent: Agent,
  heartbeat_interval_ms: z.number().int(),
  poll_timeout_ms: z.number().int(),
  /** Runs this identity held when it last ran and that have not ended: the agent must reconcile them. */
  active_runs: z.array(Run),
  /** The agent protocol the server speaks, and the oldest an agent may speak to it (absent: a server of protocol 1). */
  protocol_version: z.number().int().optional(),
  min_agent_protocol_version: z.number().int().optional(),
});
export type RegisterAgentResponse = z.infer<typeof RegisterAgentResponse>;

export const HeartbeatBody = z.object({
  status: z.enum(['POLLING', 'RUNNING']),
  current_jobs: z.number().int().min(0).max(100_000),
  run_ids: HeldRunIds.optional(),
});

/** `stop_runs`: those of the heartbeat's `run_ids` the server declared lost; the agent stops them and reports nothing. */
export const HeartbeatResponse = Agent.extend({ stop_runs: z.array(z.string()).default([]) });
export type HeartbeatResponse = z.infer<typeof HeartbeatResponse>;

export const PollBody = z.object({
  /** Queues in the agent's current round-robin order. */
  queues: z.array(Name).min(1),
  /** Free slots; 0 waits only for cancellations. */
  max_items: z.number().int().min(0).max(100),
  wait_ms: z.number().int().min(0).max(120_000).optional(),
  /** Runs the agent holds; the answer's `stop_runs` names those declared lost. */
  run_ids: HeldRunIds.optional(),
});
export type PollBody = z.input<typeof PollBody>;

export const ClaimedItem = z.object({
  item_id: z.string(),
  queue: z.string(),
  entity: z.string(),
  priority: z.number().int(),
  spec: LaunchSpec,
  lease_expires_at: Timestamp,
  queue_settings: QueueSettings,
  /** 1 for the first run of the item, 2 after one preemption, and so on. */
  attempt: z.number().int().min(1),
});
export type ClaimedItem = z.infer<typeof ClaimedItem>;

export const PollResponse = z.object({
  items: z.array(ClaimedItem),
  /** Runs held by this agent that a user asked to cancel. */
  cancel: z.array(z.string()),
  /** Set when someone asked this agent to stop (`liftoff agents stop`): it must wind down as the mode says. */
  stop: z.enum(AGENT_STOP_MODES).nullable().default(null),
  /** Runs of the poll's `run_ids` that the server declared lost: the agent stops them and reports nothing more. */
  stop_runs: z.array(z.string()).default([]),
});
export type PollResponse = z.infer<typeof PollResponse>;

export const AgentRef = z.object({ agent_id: z.string() });

export const ReportRunBody = z.object({
  agent_id: z.string(),
  state: z.enum(RUN_REPORT_STATES),
  exit_code: z
    .number()
    .int()
    .min(-INT32_MAX - 1)
    .max(INT32_MAX)
    .nullable()
    .optional(),
  error_stage: z.enum(ERROR_STAGES).optional(),
  error_message: z.string().max(16_384).optional(),
  /** Absent keeps the run's warning, null clears it, a string sets it; a report may repeat the state to change it. */
  warning: z.string().max(4096).nullable().optional(),
  /** Where the job's outputs go when it runs elsewhere (`Run.outputs_link`); absent keeps what is recorded. */
  outputs_link: OutputsLink.optional(),
});
export type ReportRunBody = z.input<typeof ReportRunBody>;

export const LogAppendResponse = z.object({ size: z.number().int() });
/** `output`: what the job printed; `note`: the agent's `[liftoff]` lines, which a job cannot write. */
export const LOG_KINDS = ['output', 'note'] as const;
export type LogKind = (typeof LOG_KINDS)[number];
export const LogReadResponse = z.object({
  offset: z.number().int(),
  next_offset: z.number().int(),
  data: z.string(),
  /** Byte ranges of `data` (absolute log offsets) that are the agent's notes rather than the job's output. */
  notes: z.array(z.object({ offset: z.number().int(), size: z.number().int() })),
  /** True once the run has ended and every byte has been returned. */
  complete: z.boolean(),
  /** Bytes stored so far (the log's end): a reader knows what exists beyond this page. */
  size: z.number().int(),
  /** 1-based number of the line the page's first byte is on. */
  line: z.number().int(),
  /** Lines stored so far (the last one counts even without a line break). */
  lines: z.number().int(),
});
export type LogReadResponse = z.infer<typeof LogReadResponse>;

/** Most bytes one page of `GET /api/runs/{id}/logs?limit=` returns. */
export const LOG_PAGE_MAX_BYTES = 4 << 20;
/**
 * `GET /api/runs/{id}/logs`. Without `limit`: whole stored chunks from `offset` (about 1 MiB), as the CLI pages.
 * With `limit`: a byte window of at most that many bytes, on whole characters, ending after its last line break
 * when it has one. `line` (1-based) starts the window at that line instead of at `offset`.
 */
export const LogReadQuery = z.object({
  offset: ByteOffset.default(0),
  limit: z.coerce.number().int().min(1).max(LOG_PAGE_MAX_BYTES).optional(),
  line: z.coerce.number().int().min(1).max(Number.MAX_SAFE_INTEGER).optional(),
});
export type LogReadQuery = z.input<typeof LogReadQuery>;

/** `GET /api/runs/{id}/logs/search`: a literal (never a pattern) search of the stored log, a bounded stretch a page. */
export const LogSearchQuery = z.object({
  q: z.string().min(1).max(1024),
  /** `true` compares bytes as they are; the default folds ASCII letters (A = a). */
  case_sensitive: z
    .enum(['true', 'false'])
    .default('false')
    .transform((v) => v === 'true'),
  /** The byte offset to search from: 0, or a page's `next_cursor`. */
  cursor: ByteOffset.default(0),
  limit: z.coerce.number().int().min(1).max(5000).default(1000),
});
export type LogSearchQuery = z.input<typeof LogSearchQuery>;
export const LogSearchResponse = z.object({
  /** In log order: each match's first byte and the 1-based line it is on. */
  matches: z.array(z.object({ offset: z.number().int(), line: z.number().int() })),
  /** Pass as `cursor` for the next page; null once the stored log has been searched to its end. */
  next_cursor: z.number().int().nullable(),
  /** The byte range this page searched, and the log's stored size. */
  searched_from: z.number().int(),
  searched_to: z.number().int(),
  size: z.number().int(),
});
export type LogSearchResponse = z.infer<typeof LogSearchResponse>;

/** A run's metrics (parsed from `LIFTOFF_METRICS {...}` lines of its output): a summary per key and stored points. */
export const MetricKeySummary = z.object({
  key: z.string(),
  /** Values seen for the key; `stored` of them are kept (every `stride`-th: long series are thinned). */
  seen: z.number().int(),
  stored: z.number().int(),
  stride: z.number().int(),
  last: z.object({ step: z.number().int(), value: z.number(), time: z.number().int() }),
  min: z.number(),
  max: z.number(),
});
export type MetricKeySummary = z.infer<typeof MetricKeySummary>;
export const MetricPoint = z.object({
  key: z.string(),
  /** Orders a run's points across keys: page and follow with `after_seq`. */
  seq: z.number().int(),
  step: z.number().int(),
  value: z.number(),
  /** When the server received it (ms since the epoch). */
  time: z.number().int(),
});
export type MetricPoint = z.infer<typeof MetricPoint>;
export const RunMetricsQuery = z.object({
  key: z.string().max(128).optional(),
  after_seq: z.coerce.number().int().min(-1).max(Number.MAX_SAFE_INTEGER).default(-1),
  limit: z.coerce.number().int().min(1).max(10_000).default(10_000),
});
export const RunMetricsResponse = z.object({
  keys: z.array(MetricKeySummary),
  points: z.array(MetricPoint),
  /** Pass as `after_seq` for the next page (or for points that arrive later). */
  next_seq: z.number().int(),
  /** Metric lines parsed so far, and lines or values refused (not a JSON object, too long, past the key cap). */
  lines: z.number().int(),
  refused: z.number().int(),
});
export type RunMetricsResponse = z.infer<typeof RunMetricsResponse>;

export const CodeArchive = z.object({ id: z.string(), sha256: z.string(), size: z.number().int() });
export type CodeArchive = z.infer<typeof CodeArchive>;

export const Whoami = z.object({ key_name: z.string(), role: z.string(), entity: z.string() });
export type Whoami = z.infer<typeof Whoami>;

export const ListQuery = z.object({
  limit: z.coerce.number().int().min(1).max(1000).default(100),
});

/** `liftoff secret set`: the value (never echoed back). At least 4 characters, so masking it in logs is meaningful. */
export const SetSecretBody = z
  .object({
    value: z
      .string()
      .min(4, 'must be at least 4 characters (shorter values cannot be masked in logs)')
      .max(32_768)
      .refine((v) => !v.includes('\0'), 'must not contain a NUL byte (environment values cannot)'),
  })
  .strict();
export type SetSecretBody = z.input<typeof SetSecretBody>;
/** What the API tells about a secret: never its value. */
export const SecretInfo = z.object({
  name: z.string(),
  created_at: Timestamp,
  updated_at: Timestamp,
  /** The key name that last set it. */
  updated_by: z.string(),
});
export type SecretInfo = z.infer<typeof SecretInfo>;
export const SecretList = z.object({ secrets: z.array(SecretInfo) });
/** The values of a run's `secret_env`, for the agent holding the run only. */
export const RunSecretsResponse = z.object({ env: z.record(z.string(), z.string()) });
export type RunSecretsResponse = z.infer<typeof RunSecretsResponse>;
/**
 * An item as lists return it: without its spec, which may be large (a list of 30 items once came to 220 MB), but
 * with the spec's fields list views show. `GET /api/items/{id}` has the whole spec.
 */
export const ItemSummary = Item.omit({ spec: true, pushed: true }).extend({
  name: z.string().nullable(),
  project: z.string().nullable(),
  author: z.string().nullable(),
  source_type: z.enum(['code', 'git', 'image']).nullable(),
});
export type ItemSummary = z.infer<typeof ItemSummary>;

/** `GET /api/agent-protocol`: the versions of the agent protocol the server serves (also in registration's answer). */
export const AgentProtocolInfo = z.object({
  protocol_version: z.number().int(),
  min_agent_protocol_version: z.number().int(),
});
export type AgentProtocolInfo = z.infer<typeof AgentProtocolInfo>;

/**
 * Bounds of one `POST /api/agents/{id}/sync`: entries per kind, and the base64 text of one log entry (1 MiB of log
 * bytes). The route's body limit (SYNC_BODY_BYTES) bounds the whole batch; past it the answer is PAYLOAD_TOO_LARGE.
 */
export const SYNC_LIMITS = { acks: 100, reports: 200, logs: 64, logEntryBytes: 1024 * 1024 } as const;
export const SYNC_BODY_BYTES = 8 * 1024 * 1024;
const EntryId = z.string().min(1).max(128);
export const SyncAck = z.object({ item_id: EntryId }).strict();
export const SyncReport = ReportRunBody.omit({ agent_id: true }).extend({ run_id: EntryId }).strict();
export type SyncReport = z.input<typeof SyncReport>;
/**
 * A log chunk at byte `offset` of a run's log, as base64 of its bytes: a log is bytes (NULs included), which a JSON
 * string of the API may not carry (hardening.ts refuses NUL in JSON).
 */
export const SyncLog = z
  .object({
    run_id: EntryId,
    offset: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
    kind: z.enum(LOG_KINDS).default('output'),
    data_base64: z.base64().max(Math.ceil(SYNC_LIMITS.logEntryBytes / 3) * 4),
  })
  .strict();
export type SyncLog = z.input<typeof SyncLog>;
/**
 * The batched agent protocol (protocol 2): the agent's heartbeat, acks of claimed items, status reports and log
 * appends of many runs in one request. Each entry is answered on its own (one run's refusal does not fail the others).
 */
export const SyncBody = z
  .object({
    heartbeat: HeartbeatBody.optional(),
    acks: z.array(SyncAck).max(SYNC_LIMITS.acks).default([]),
    reports: z.array(SyncReport).max(SYNC_LIMITS.reports).default([]),
    logs: z.array(SyncLog).max(SYNC_LIMITS.logs).default([]),
  })
  .strict();
export type SyncBody = z.input<typeof SyncBody>;
/** A refused entry: the code and message the single-item call would have answered with. */
export const EntryError = z.object({ code: z.string(), message: z.string() });
export type EntryError = z.infer<typeof EntryError>;
export const SyncResponse = z.object({
  /** With a heartbeat: those of its `run_ids` the server declared lost (as the heartbeat call answers). */
  stop_runs: z.array(z.string()),
  acks: z.array(z.object({ item_id: z.string(), run: Run.optional(), error: EntryError.optional() })),
  reports: z.array(z.object({ run_id: z.string(), run: Run.optional(), error: EntryError.optional() })),
  logs: z.array(z.object({ run_id: z.string(), size: z.number().int().optional(), error: EntryError.optional() })),
});
export type SyncResponse = z.infer<typeof SyncResponse>;

/** Many items pushed to one queue in one request and one transaction: all are accepted, or none. */
export const PUSH_BATCH_MAX = 1000;
export const PushBatchBody = z.object({ items: z.array(PushBody).min(1).max(PUSH_BATCH_MAX) }).strict();
export type PushBatchBody = z.input<typeof PushBatchBody>;
/** The new items' ids, in the order they were sent (their place in line too). */
export const PushBatchResponse = z.object({ ids: z.array(z.string()) });
export type PushBatchResponse = z.infer<typeof PushBatchResponse>;

// Run outputs (docs/outputs.md): files a job left in $LIFTOFF_OUTPUT_DIR, uploaded by its agent after the run.

/** A sha256 digest as lower-case hex. */
export const Sha256Hex = z.string().regex(/^[0-9a-f]{64}$/, 'a sha256 digest: 64 lower-case hex digits');
/** Bytes of one output; the server's own limits are lower (routes check them with named errors). */
const OutputSize = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);

/** Agent protocol: start (or find again, to resume) the upload of one output file. */
export const StartOutputUploadBody = z.object({
  /** The agent holding the run; absent when a run's upload token is presented instead of the agent's key. */
  agent_id: z.string().optional(),
  path: z.string().max(4096),
  size: OutputSize,
  sha256: Sha256Hex,
});
export type StartOutputUploadBody = z.infer<typeof StartOutputUploadBody>;
/** `offset`: how many bytes of the file the server holds; the next PUT sends from there. */
export const OutputUpload = z.object({ upload_id: z.string(), path: z.string(), size: z.number(), offset: z.number() });
export type OutputUpload = z.infer<typeof OutputUpload>;

/** Agent protocol: lists the run's outputs, all at once; every file named must be fully uploaded. */
export const CommitOutputsBody = z.object({
  /** As in StartOutputUploadBody: absent with a run's upload token. */
  agent_id: z.string().optional(),
  files: z.array(z.object({ path: z.string().max(4096), size: OutputSize, sha256: Sha256Hex })).max(100_000),
});
export type CommitOutputsBody = z.infer<typeof CommitOutputsBody>;

/**
 * Agent protocol: a run's upload token (docs/outputs.md, Kubernetes), for a job that uploads its own outputs from
 * where the agent's key must not be (a pod). Shown once; the server keeps only its sha256. The same body (the agent
 * holding the run) revokes every token of the run (DELETE).
 */
export const UploadTokenBody = z.object({ agent_id: z.string() }).strict();
export type UploadTokenBody = z.infer<typeof UploadTokenBody>;
export const UploadToken = z.object({ token: z.string(), run_id: z.string(), expires_at: Timestamp });
export type UploadToken = z.infer<typeof UploadToken>;

export const RunOutput = z.object({ path: z.string(), size: z.number(), sha256: z.string(), created_at: Timestamp });
export type RunOutput = z.infer<typeof RunOutput>;
export const RunOutputList = z.object({ outputs: z.array(RunOutput), total_bytes: z.number() });
export type RunOutputList = z.infer<typeof RunOutputList>;

/**
 * A time in a query string: milliseconds since the Unix epoch, or an ISO 8601 date or date-time (`2026-12-01`,
 * `2026-12-01T10:00:00Z`; without a zone it is UTC for a date and the server's zone for a date-time, as Date.parse reads it).
 */
export const TimeParam = z
  .string()
  .max(64)
  .transform((v, ctx) => {
    const ms = /^\d{1,15}$/.test(v) ? Number(v) : /^\d{4}-\d{2}-\d{2}/.test(v) ? Date.parse(v) : NaN;
    if (!Number.isFinite(ms)) {
      ctx.addIssue({ code: 'custom', message: 'must be milliseconds since the epoch or an ISO 8601 date/time' });
      return z.NEVER;
    }
    return ms;
  });

/** A list's paging: `cursor` is the `next_cursor` or `prev_cursor` of the page before (opaque; refused when forged). */
const Cursor = z.string().max(4_000);

/**
 * `GET /api/entities/{entity}/queues/{queue}/items`: newest first (`order=newest`, the default), or for pending items
 * the queue's order (`order=queue`: what runs next first). `from=end` starts at the last page of the order.
 */
export const ITEM_ORDERS = ['newest', 'queue'] as const;
export const ItemListQuery = ListQuery.extend({
  state: z.enum(ITEM_STATES).optional(),
  order: z.enum(ITEM_ORDERS).default('newest'),
  from: z.enum(['start', 'end']).default('start'),
  cursor: Cursor.optional(),
});
export type ItemListQuery = z.input<typeof ItemListQuery>;
/** `next_cursor`: the page after (null: this is the last); `prev_cursor`: the page before (null: this is the first). */
export const ItemListResponse = z.object({
  items: z.array(ItemSummary),
  next_cursor: z.string().nullable().default(null),
  prev_cursor: z.string().nullable().default(null),
});
export type ItemListResponse = z.infer<typeof ItemListResponse>;

/** `GET /api/entities/{entity}/agents`: the entity's agents by id, a page at a time. */
export const AgentListQuery = ListQuery.extend({ cursor: Cursor.optional() });
export type AgentListQuery = z.input<typeof AgentListQuery>;
export const AgentListResponse = z.object({
  agents: z.array(Agent),
  next_cursor: z.string().nullable().default(null),
});
export type AgentListResponse = z.infer<typeof AgentListResponse>;

/**
 * `GET /api/entities/{entity}/runs` (docs/api.md "Runs list"): filters, chosen config and metric columns, a sort and a
 * cursor. Column and sort syntax is checked by the server (runQuery.ts); here they are bounded strings. `state` takes a
 * comma-separated list or the parameter repeated.
 */
export const RunListQuery = ListQuery.extend({
  queue: z.string().max(256).optional(),
  state: z
    .union([z.string().max(400), z.array(z.string().max(64)).max(20)])
    .optional()
    .transform((v) =>
      v === undefined ? undefined : (Array.isArray(v) ? v : [v]).flatMap((s) => s.split(',')).filter((s) => s !== ''),
    ),
  /** A run id prefix or a substring of the run's name (ASCII letters matched case-insensitively). */
  q: z.string().min(1).max(128).optional(),
  agent: z.string().max(256).optional(),
  /** Runs created at or after this time (inclusive), and before `until` (exclusive): ms since the epoch or ISO 8601. */
  since: TimeParam.optional(),
  until: TimeParam.optional(),
  columns: z.string().max(4_500).optional(),
  sort: z.string().max(256).optional(),
  cursor: z.string().max(4_000).optional(),
});
export type RunListQuery = z.input<typeof RunListQuery>;
/** A run as the list gives it: with its spec's name and the chosen columns (`null`: the run has no such value). */
export const RunListRow = Run.extend({
  name: z.string().nullable(),
  /** When its item was pushed; `queue_wait_ms` is started_at − queued_at (null until the run started). */
  queued_at: Timestamp.nullable().default(null),
  queue_wait_ms: z.number().int().nullable().default(null),
  columns: z.record(z.string(), z.unknown()),
});
export type RunListRow = z.infer<typeof RunListRow>;
/** `next_cursor`: pass it as `cursor` with the same sort for the next page; null on the last page. */
export const RunListResponse = z.object({ runs: z.array(RunListRow), next_cursor: z.string().nullable() });
export type RunListResponse = z.infer<typeof RunListResponse>;
/** `GET /api/entities/{entity}/runs/keys?queue=`: config keys (dotted) and metric keys of the newest runs, bounded. */
export const RunKeys = z.object({ config: z.array(z.string()), metrics: z.array(z.string()) });
export type RunKeys = z.infer<typeof RunKeys>;
