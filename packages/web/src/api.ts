/**
 * The wire types and state enums of the HTTP API, from `@liftoff/core/web`: the same definitions the server
 * validates with (zod schemas in packages/core/src/api.ts), imported as types only, so no schema code reaches the
 * bundle. Plus a small fetch wrapper for the public HTTP API.
 */
import type {
  Agent,
  Item,
  ItemSummary,
  Job,
  JobVersion,
  LaunchSpec,
  PushBody,
  Queue,
  ResourceType,
  RunDetail,
  RunKeys,
  RunListResponse,
  RunMetricsResponse,
  RunOutput,
  Run,
  PriorityName,
  Whoami,
  ItemState,
} from '@liftoff/core/web';
import { PRIORITIES } from '@liftoff/core/web';

export {
  BUILT_RUNNERS,
  ITEM_STATES,
  PRIORITIES,
  RESOURCE_TYPES,
  TERMINAL_STATES,
  hasBuiltRunner,
  isTerminal,
  queueResourceArgs,
} from '@liftoff/core/web';
export type {
  Agent,
  Item,
  ItemState,
  ItemSummary,
  JobSource,
  LaunchSpec,
  MetricKeySummary,
  MetricPoint,
  PendingReason,
  PriorityName,
  Queue,
  ResourceType,
  Run,
  RunDetail,
  RunKeys,
  RunListRow,
  RunOutput,
  TemplateVariableSchema,
  Whoami,
} from '@liftoff/core/web';

/** A priority's name for display; a number the names do not cover is shown as it is. */
export const priorityName = (p: number): string =>
  (Object.entries(PRIORITIES).find(([, v]) => v === p)?.[0] as PriorityName | undefined) ?? String(p);

export type ResourceArgs = LaunchSpec['resource_args'];
/** A push as its author sent it (Item.pushed): what a re-run starts from. */
export type PushedBody = PushBody;
/** A page of a queue's items; the cursors are null at either end. */
export interface ItemPage {
  items: ItemSummary[];
  next_cursor: string | null;
  prev_cursor: string | null;
}
export type RunListPage = RunListResponse;
export type RunMetrics = RunMetricsResponse;
/** A job of an entity (docs/jobs.md), and one of its versions. */
export type JobSummary = Job;
export type JobVersionInfo = JobVersion;

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

/** An error answer of the API: `{error: {code, message}}` plus the HTTP status. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** Queue config refusals (BAD_REQUEST) list every problem, each as "field: what is wrong" (docs/queues.md). */
    readonly problems: readonly string[] = [],
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
      const err = (parsed as { error?: { code?: string; message?: string; problems?: unknown } } | undefined)?.error;
      const problems = Array.isArray(err?.problems) ? err.problems.filter((p) => typeof p === 'string') : [];
      throw new ApiError(res.status, err?.code ?? `HTTP_${res.status}`, err?.message ?? `HTTP ${res.status}`, problems);
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
