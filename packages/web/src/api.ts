/**
 * The few wire types the UI needs, declared here (the zod schemas in packages/core/src/api.ts are the contract; they
 * are not imported so no node-only code reaches the bundle), and a small fetch wrapper for the public HTTP API.
 */

export const ITEM_STATES = [
  'pending',
  'claimed',
  'starting',
  'running',
  'cancelling',
  'finished',
  'failed',
  'stopped',
  'preempted',
  'lost',
] as const;
export type ItemState = (typeof ITEM_STATES)[number];
/**
 * `preempted` ends runs only: their item goes back to its queue, or fails once its retries are used up. `lost`: the
 * server gave up on a run whose agent went silent; its item is requeued (queue lost_retries) or ends lost too.
 */
export const TERMINAL_STATES: readonly ItemState[] = ['finished', 'failed', 'stopped', 'preempted', 'lost'];
export const isTerminal = (s: ItemState): boolean => TERMINAL_STATES.includes(s);

export const RESOURCE_TYPES = [
  'local-process',
  'local-container',
  'kubernetes',
  'sagemaker',
  'vertex',
  'gcp-vertex',
] as const;
export type ResourceType = (typeof RESOURCE_TYPES)[number];

export const PRIORITIES = { critical: 0, high: 1, medium: 2, low: 3 } as const;
export type PriorityName = keyof typeof PRIORITIES;
export const priorityName = (p: number): string =>
  (Object.entries(PRIORITIES).find(([, v]) => v === p)?.[0] as PriorityName | undefined) ?? String(p);

export type ResourceArgs = Record<string, Record<string, unknown>>;

/** JSON schema of one `{{variable}}` of a queue's config template. */
export interface TemplateVariableSchema {
  type: 'string' | 'integer' | 'number';
  enum?: Array<string | number>;
  minimum?: number;
  maximum?: number;
  default?: string | number;
  description?: string;
}

export interface Queue {
  id: string;
  entity: string;
  name: string;
  resource: ResourceType;
  resource_args: ResourceArgs;
  created_at: number;
  pending: number;
  running: number;
  // Queue switches; optional so the UI also works against a server without them.
  /** DISABLED: only the default priority is accepted; V0: higher priorities are served first. */
  prioritization_mode?: 'DISABLED' | 'V0';
  aging_seconds?: number | null;
  max_concurrency?: number | null;
  template_variables?: Record<string, { schema: TemplateVariableSchema }>;
  /** A run still starting this long after its runner submitted it is failed (null: no limit). */
  start_timeout_seconds?: number | null;
  preemption_retries?: number;
  /** On servers with the run lease: how often an item is requeued after its run was declared lost. */
  lost_retries?: number;
  preemption_backoff_seconds?: number;
  /** Kubernetes guardrail exceptions this queue grants. */
  allow?: string[];
}

export type JobSource =
  { type: 'code'; archive_id: string } | { type: 'git'; url: string; ref?: string } | { type: 'image'; image: string };

export interface LaunchSpec {
  source: JobSource;
  entry_point: string[];
  args: string[];
  run_config: Record<string, unknown>;
  env: Record<string, string>;
  resource?: ResourceType;
  resource_args: ResourceArgs;
  name?: string;
  project?: string;
  author?: string;
  /** Fields the launch dialog has no input for; a re-run carries them over as they were. */
  secret_env?: Record<string, string>;
  dockerfile?: string;
  /** The job version the launch came from (docs/jobs.md). */
  job?: { name: string; version: string };
  wandb_env?: boolean;
}

/** A push as its author sent it (Item.pushed): what a re-run starts from. */
export interface PushedBody {
  spec: LaunchSpec;
  priority?: PriorityName;
  template_variables?: Record<string, string | number>;
}

export interface PendingReason {
  /** backoff, no_agent, agents_busy, queued, next (and limits, on servers that have them). */
  code: string;
  message: string;
  since: number | null;
}

export interface Item {
  id: string;
  queue: string;
  entity: string;
  priority: number;
  state: ItemState;
  spec: LaunchSpec;
  created_at: number;
  claimed_by: string | null;
  claimed_at: number | null;
  ended_at: number | null;
  run_id: string | null;
  position: number | null;
  pending_reason: PendingReason | null;
  /** On servers that requeue preempted runs: how often this item's runs were preempted. */
  preemptions?: number;
  /** While a requeued item waits out its backoff: when it may start. */
  not_before?: number | null;
  /** The push as sent, before the queue's args and templates were merged in; null for older items. */
  pushed?: PushedBody | null;
}

/** An item as lists return it: the spec left out (GET /api/items/{id} has it), the fields list views show kept. */
export type ItemSummary = Omit<Item, 'spec' | 'pushed'> & {
  name: string | null;
  project: string | null;
  author: string | null;
  source_type: 'code' | 'git' | 'image' | null;
};

export interface Run {
  id: string;
  item_id: string;
  queue: string;
  entity: string;
  agent_id: string;
  status: ItemState;
  exit_code: number | null;
  error_stage: 'agent' | 'build' | 'run' | null;
  error_message: string | null;
  created_at: number;
  started_at: number | null;
  ended_at: number | null;
  log_size: number;
  /** The latest non-fatal problem the agent reported, e.g. a pod that cannot be scheduled. */
  warning?: string | null;
  /** Where a job that ran elsewhere (SageMaker, Vertex) wrote its outputs: an s3:// or gs:// URI. */
  outputs_link?: string | null;
}
/** A row of the runs list (docs/runs.md): the run, its spec's name and the chosen columns' values. */
export interface RunListRow extends Run {
  name: string | null;
  columns: Record<string, unknown>;
  /** When its item was pushed, and started_at minus that (null until started); absent on older servers. */
  queued_at?: number | null;
  queue_wait_ms?: number | null;
}
/** The global runs page's filters, as the runs list API takes them (docs/runs.md). */
export interface RunFilters {
  queue?: string;
  state?: string;
  agent?: string;
  q?: string;
  /** ms since the epoch. */
  since?: number;
  until?: number;
}
/** A page of a queue's items; the cursors are null at either end (and absent on servers without paging). */
export interface ItemPage {
  items: ItemSummary[];
  next_cursor?: string | null;
  prev_cursor?: string | null;
}
export interface RunListPage {
  runs: RunListRow[];
  next_cursor: string | null;
}
export interface RunKeys {
  config: string[];
  metrics: string[];
}

export interface RunDetail extends Run {
  spec: LaunchSpec;
}

export interface Agent {
  id: string;
  name: string;
  entity: string;
  hostname: string;
  queues: string[];
  version: string;
  config: Record<string, unknown>;
  max_jobs: number;
  status: 'POLLING' | 'RUNNING' | 'KILLED';
  status_reason: string | null;
  started_at: number;
  last_heartbeat_at: number;
  current_jobs: number;
  /** On servers that can stop agents remotely: a stop asked and not yet carried out. Absent: no remote stop. */
  stop_requested?: 'finish' | 'stop-runs' | null;
}

/** A run's metrics (`GET /api/runs/{id}/metrics`): a summary per key and stored points in arrival order. */
export interface MetricPoint {
  key: string;
  seq: number;
  step: number;
  value: number;
  time: number;
}
export interface MetricKeySummary {
  key: string;
  seen: number;
  stored: number;
  stride: number;
  last: { step: number; value: number; time: number };
  min: number;
  max: number;
}
export interface RunMetrics {
  keys: MetricKeySummary[];
  points: MetricPoint[];
  next_seq: number;
  lines: number;
  refused: number;
}

/** A file a run left in $LIFTOFF_OUTPUT_DIR, listed once its agent committed them (docs/outputs.md). */
export interface RunOutput {
  path: string;
  size: number;
  sha256: string;
  created_at: number;
}

export interface Whoami {
  key_name: string;
  role: string;
  entity: string;
}

/** An error answer of the API: `{error: {code, message}}` plus the HTTP status. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export const enc = encodeURIComponent;

export class Api {
  constructor(readonly apiKey: string) {}

  headers(extra: Record<string, string> = {}): Record<string, string> {
    return { authorization: `Bearer ${this.apiKey}`, ...extra };
  }

  async request<T>(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<T> {
    let res: Response;
    try {
      res = await fetch(path, {
        method,
        headers: this.headers(body === undefined ? {} : { 'content-type': 'application/json' }),
        body: body === undefined ? undefined : JSON.stringify(body),
        signal,
      });
    } catch (e) {
      if (signal?.aborted) throw e;
      throw new ApiError(0, 'UNREACHABLE', 'Cannot reach the Liftoff server. Is it running?');
    }
    if (res.status === 204) return undefined as T;
    const text = await res.text();
    let parsed: unknown;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      parsed = undefined;
    }
    if (!res.ok) {
      const err = (parsed as { error?: { code?: string; message?: string } } | undefined)?.error;
      throw new ApiError(res.status, err?.code ?? `HTTP_${res.status}`, err?.message ?? `HTTP ${res.status}`);
    }
    return parsed as T;
  }

  whoami = () => this.request<Whoami>('GET', '/api/whoami');
  queues = (entity: string) =>
    this.request<{ queues: Queue[] }>('GET', `/api/entities/${enc(entity)}/queues`).then((r) => r.queues);
  queue = (entity: string, name: string) =>
    this.request<Queue>('GET', `/api/entities/${enc(entity)}/queues/${enc(name)}`);
  createQueue = (entity: string, body: { name: string; resource: ResourceType; resource_args: unknown }) =>
    this.request<Queue>('POST', `/api/entities/${enc(entity)}/queues`, body);
  deleteQueue = (entity: string, name: string) =>
    this.request<void>('DELETE', `/api/entities/${enc(entity)}/queues/${enc(name)}`);
  items = (entity: string, queue: string, state?: ItemState, limit = 1000) =>
    this.request<{ items: ItemSummary[] }>(
      'GET',
      `/api/entities/${enc(entity)}/queues/${enc(queue)}/items?limit=${limit}${state ? `&state=${state}` : ''}`,
    ).then((r) => r.items);
  push = (
    entity: string,
    queue: string,
    body: { spec: unknown; priority?: PriorityName; template_variables?: Record<string, string | number> },
  ) => this.request<Item>('POST', `/api/entities/${enc(entity)}/queues/${enc(queue)}/items`, body);
  item = (id: string) => this.request<Item>('GET', `/api/items/${enc(id)}`);
  cancelItem = (id: string) => this.request<Item>('POST', `/api/items/${enc(id)}/cancel`);
  runs = (entity: string, queue?: string, limit = 200) =>
    this.request<{ runs: Run[] }>(
      'GET',
      `/api/entities/${enc(entity)}/runs?limit=${limit}${queue ? `&queue=${enc(queue)}` : ''}`,
    ).then((r) => r.runs);
  /** One page of the runs list: filters, columns and sort as the API takes them (docs/runs.md). */
  runList = (
    entity: string,
    query: RunFilters & { columns?: string; sort?: string; cursor?: string; limit?: number },
  ) => {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== '') q.set(k, String(v));
    return this.request<RunListPage>('GET', `/api/entities/${enc(entity)}/runs?${q.toString()}`);
  };
  runKeys = (entity: string, queue?: string) =>
    this.request<RunKeys>('GET', `/api/entities/${enc(entity)}/runs/keys${queue ? `?queue=${enc(queue)}` : ''}`);
  run = (id: string) => this.request<RunDetail>('GET', `/api/runs/${enc(id)}`);
  /** A page of a run's metric points by seq; `key`: of that key only. */
  runMetrics = (id: string, afterSeq = -1, limit = 10_000, key?: string) =>
    this.request<RunMetrics>(
      'GET',
      `/api/runs/${enc(id)}/metrics?after_seq=${afterSeq}&limit=${limit}${key === undefined ? '' : `&key=${enc(key)}`}`,
    );
  cancelRun = (id: string) => this.request<Run>('POST', `/api/runs/${enc(id)}/cancel`);
  runOutputs = (id: string) =>
    this.request<{ outputs: RunOutput[]; total_bytes: number }>('GET', `/api/runs/${enc(id)}/outputs`);

  /**
   * One output's bytes. Fetched with the key in a header, never in a URL (URLs end up in history and proxy logs),
   * so a plain link cannot serve it; the browser keeps the file as a Blob until it is saved.
   */
  async downloadOutput(id: string, path: string): Promise<Blob> {
    let res: Response;
    try {
      res = await fetch(`/api/runs/${enc(id)}/outputs/file?path=${enc(path)}`, { headers: this.headers() });
    } catch {
      throw new ApiError(0, 'UNREACHABLE', 'Cannot reach the Liftoff server. Is it running?');
    }
    if (!res.ok) {
      const err = (
        (await res.json().catch(() => undefined)) as { error?: { code: string; message: string } } | undefined
      )?.error;
      throw new ApiError(res.status, err?.code ?? `HTTP_${res.status}`, err?.message ?? `HTTP ${res.status}`);
    }
    return res.blob();
  }
  stopAgent = (id: string, mode: 'finish' | 'stop-runs') =>
    this.request<Agent>('POST', `/api/agents/${enc(id)}/stop`, { mode });
  /** The entity's agents: the first 1,000 by id (servers before paging answer all of them). */
  agents = (entity: string) =>
    this.request<{ agents: Agent[] }>('GET', `/api/entities/${enc(entity)}/agents?limit=1000`).then((r) => r.agents);
  /** One page of a queue's items: newest first, or pending ones in queue order (`order: 'queue'`), by cursor. */
  itemPage = (
    entity: string,
    queue: string,
    query: { state?: ItemState; order?: 'newest' | 'queue'; from?: 'start' | 'end'; cursor?: string; limit?: number },
  ) => {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== '') q.set(k, String(v));
    return this.request<ItemPage>('GET', `/api/entities/${enc(entity)}/queues/${enc(queue)}/items?${q.toString()}`);
  };

  listJobs = (entity: string) =>
    this.request<{ jobs: JobSummary[] }>('GET', `/api/entities/${enc(entity)}/jobs`).then((r) => r.jobs);
  /** A version of a job by name (`v2`) or alias (`latest`). */
  jobVersion = (entity: string, name: string, ref: string) =>
    this.request<JobVersionInfo>('GET', `/api/entities/${enc(entity)}/jobs/${enc(name)}/versions/${enc(ref)}`);
  sweeps = (entity: string) =>
    this.request<{ sweeps: Sweep[] }>('GET', `/api/entities/${enc(entity)}/sweeps`).then((r) => r.sweeps);
  /** A sweep with its trials. */
  sweep = (entity: string, id: string) => this.request<Sweep>('GET', `/api/entities/${enc(entity)}/sweeps/${enc(id)}`);
  sweepAction = (entity: string, id: string, action: 'pause' | 'resume' | 'stop') =>
    this.request<Sweep>('POST', `/api/entities/${enc(entity)}/sweeps/${enc(id)}/${action}`);
  async uploadArchive(body: Blob): Promise<{ id: string; sha256: string; size: number }> {
    let res: Response;
    try {
      res = await fetch('/api/code-archives', {
        method: 'POST',
        headers: this.headers({ 'content-type': 'application/gzip' }),
        body,
      });
    } catch {
      throw new ApiError(0, 'UNREACHABLE', 'Cannot reach the Liftoff server. Is it running?');
    }
    const parsed = (await res.json().catch(() => undefined)) as
      { id: string; sha256: string; size: number; error?: { code: string; message: string } } | undefined;
    if (!res.ok || !parsed) {
      throw new ApiError(res.status, parsed?.error?.code ?? 'UPLOAD', parsed?.error?.message ?? `HTTP ${res.status}`);
    }
    return parsed;
  }
}

/**
 * Splits a server validation message ("Invalid request: body.spec.source.url: ...; body.name: ...") into the
 * messages per request field, so forms can show each next to its input. Messages that name no field go to `''`.
 */
export function fieldErrors(message: string): Map<string, string> {
  const out = new Map<string, string>();
  const body = message.replace(/^Invalid request:\s*/, '');
  if (body === message) {
    out.set('', message);
    return out;
  }
  for (const part of body.split(/;\s+(?=body\b|querystring\b|params\b)/)) {
    const m = /^(?:body|querystring|params)(?:\.([^:\s]+))?:\s*(.*)$/s.exec(part);
    const field = m?.[1] ?? '';
    const text = m?.[2] ?? part;
    out.set(field, out.has(field) ? `${out.get(field)}; ${text}` : text);
  }
  return out;
}

/** A job of an entity (docs/jobs.md). */
export interface JobSummary {
  name: string;
  entity: string;
  created_at: number;
  versions: number;
  latest: string;
  /** alias → version name, `latest` included. */
  aliases: Record<string, string>;
}
export interface JobVersionInfo {
  job: string;
  entity: string;
  version: string;
  source: JobSource;
  entry_point: string[];
  dockerfile: string | null;
  base_image: string | null;
  schema: Record<string, unknown> | null;
  description: string | null;
  aliases: string[];
}

/** A sweep (docs/sweeps.md): its trials only in `sweep()`. */
export type SweepState = 'running' | 'paused' | 'finished' | 'stopped' | 'failed';
export interface SweepTrial {
  number: number;
  item_id: string;
  run_id: string | null;
  state: ItemState;
  params: Record<string, unknown>;
  /** The metric's last reported value, null before the first. */
  metric: number | null;
  early_terminated: boolean;
  created_at: number;
}
export interface Sweep {
  id: string;
  entity: string;
  queue: string;
  name: string;
  state: SweepState;
  method: string;
  config: Record<string, unknown> & { metric?: { name: string; goal?: 'minimize' | 'maximize'; target?: number } };
  notes: string[];
  parallel: number;
  author: string;
  created_at: number;
  ended_at: number | null;
  reason: string | null;
  trial_count: number;
  best: SweepTrial | null;
  trials?: SweepTrial[];
}
