import { createParser } from 'eventsource-parser';
import { z } from 'zod';
import {
  Agent,
  AgentListResponse,
  ItemListResponse,
  HeartbeatResponse,
  ApiKeyInfo,
  CodeArchive,
  CreatedKey,
  Entity,
  Item,
  LogAppendResponse,
  Members,
  LogReadResponse,
  LogSearchResponse,
  RunMetricsResponse,
  PollResponse,
  Queue,
  RegisterAgentResponse,
  Run,
  RunListResponse,
  RunKeys,
  RunSecretsResponse,
  SecretInfo,
  SecretList,
  RunDetail,
  Whoami,
  type CreateEntityBody,
  type LogKind,
  type CreateKeyBody,
  type MemberRole,
  type CreateQueueBody,
  type UpdateEntityBody,
  type UpdateQueueBody,
  type PollBody,
  type PushBody,
  type RegisterAgentBody,
  type StopAgentBody,
  type ReportRunBody,
  AgentProtocolInfo,
  PushBatchResponse,
  SyncResponse,
  type PushBatchBody,
  type SyncBody,
  CommitOutputsBody,
  UploadTokenBody,
  UploadToken,
  OutputUpload,
  RunOutputList,
  StartOutputUploadBody,
} from './api.js';
import { errorFromBody, LiftoffError, ServerUnreachableError, TlsUntrustedError } from './errors.js';
import { HttpTransport, type HttpAnswer } from './httpTransport.js';
import type { AgentStatus, ItemState } from './states.js';
import { CreatedJobVersion, Job, JobList, JobVersion, JobVersionList, type CreateJobVersionBody } from './jobs.js';
import { Sweep, SweepList, type CreateSweepBody } from './sweepApi.js';

export interface ClientOptions {
  baseUrl: string;
  apiKey: string;
  /** Per-request timeout for ordinary calls; long-polls add their own wait to it. */
  timeoutMs?: number;
  /**
   * PEM text of CA certificates to trust for an https server, besides the system's (a private CA, a self-signed
   * certificate): --ca-file, LIFTOFF_CA_FILE or the credentials file's `ca_file`.
   */
  ca?: string;
}

/** OpenSSL's verdicts on a certificate chain it cannot trust: a CA file is what fixes them. */
const UNTRUSTED_CERT_CODES = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_UNTRUSTED',
  'CERT_SIGNATURE_FAILURE',
]);

function untrustedCertCode(e: unknown): string | undefined {
  for (let cur = e as { code?: string; cause?: unknown } | undefined, i = 0; cur && i < 5; i++) {
    if (cur.code && UNTRUSTED_CERT_CODES.has(cur.code)) return cur.code;
    cur = cur.cause as typeof cur;
  }
  return undefined;
}

interface RequestOptions {
  body?: unknown;
  raw?: { data: Uint8Array | string; contentType: string };
  /** A streamed body of exactly `length` bytes (outputs uploads). */
  stream?: { source: Iterable<Uint8Array> | AsyncIterable<Uint8Array>; length: number; contentType: string };
  signal?: AbortSignal;
  timeoutMs?: number;
  query?: Record<string, string | number | boolean | undefined>;
  onUploadProgress?: (sent: number, total: number) => void;
}

const enc = encodeURIComponent;

/** Typed client of the Liftoff HTTP API, shared by the CLI, the agent and the tests. */
export class LiftoffClient {
  readonly baseUrl: string;
  private readonly apiKey: string;
  private readonly timeoutMs: number;
  private readonly transport: HttpTransport;

  constructor(opts: ClientOptions) {
    this.baseUrl = opts.baseUrl.replace(/\/+$/, '');
    this.apiKey = opts.apiKey;
    this.timeoutMs = opts.timeoutMs ?? 30_000;
    this.transport = new HttpTransport(new URL(this.baseUrl), opts.ca);
  }

  /** Closes the connections kept open for reuse (they never keep the process alive; this frees them at once). */
  close(): void {
    this.transport.close();
  }

  private async request(method: string, path: string, opts: RequestOptions = {}): Promise<HttpAnswer> {
    const url = new URL(this.baseUrl + path);
    for (const [k, v] of Object.entries(opts.query ?? {})) if (v !== undefined) url.searchParams.set(k, String(v));
    const headers: Record<string, string> = { authorization: `Bearer ${this.apiKey}` };
    let body: Uint8Array | string | undefined;
    if (opts.raw) {
      headers['content-type'] = opts.raw.contentType;
      body = opts.raw.data;
    } else if (opts.stream) {
      headers['content-type'] = opts.stream.contentType;
    } else if (opts.body !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(opts.body);
    }
    const timeout = AbortSignal.timeout(opts.timeoutMs ?? this.timeoutMs);
    const signal = opts.signal ? AbortSignal.any([opts.signal, timeout]) : timeout;
    let res: HttpAnswer;
    try {
      res = await this.transport.send({
        method,
        url,
        headers,
        ...(body === undefined ? {} : { body }),
        ...(opts.stream ? { stream: { source: opts.stream.source, length: opts.stream.length } } : {}),
        signal,
        ...(opts.onUploadProgress ? { onUploadProgress: opts.onUploadProgress } : {}),
      });
    } catch (e) {
      if (opts.signal?.aborted) throw opts.signal.reason ?? e;
      const untrusted = untrustedCertCode(e);
      if (untrusted) throw new TlsUntrustedError(this.baseUrl, untrusted, e);
      throw new ServerUnreachableError(this.baseUrl, e);
    }
    if (!res.ok) {
      const text = await res.text().catch(() => '');
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = undefined;
      }
      throw errorFromBody(res.status, parsed);
    }
    return res;
  }

  /** A call whose answer has no body the caller needs: it is read, so the connection is free for the next call. */
  private async call(method: string, path: string, opts?: RequestOptions): Promise<void> {
    await (await this.request(method, path, opts)).bytes();
  }

  private async json<T>(schema: z.ZodType<T>, method: string, path: string, opts?: RequestOptions): Promise<T> {
    const res = await this.request(method, path, opts);
    const data: unknown = await res.json();
    const parsed = schema.safeParse(data);
    if (!parsed.success) {
      throw new LiftoffError('INTERNAL', `Unexpected response from ${method} ${path}: ${parsed.error.message}`);
    }
    return parsed.data;
  }

  whoami() {
    return this.json(Whoami, 'GET', '/api/whoami');
  }

  // queues
  listQueues(entity: string) {
    return this.json(z.object({ queues: z.array(Queue) }), 'GET', `/api/entities/${enc(entity)}/queues`);
  }
  createQueue(entity: string, body: CreateQueueBody) {
    return this.json(Queue, 'POST', `/api/entities/${enc(entity)}/queues`, { body });
  }
  getQueue(entity: string, queue: string) {
    return this.json(Queue, 'GET', `/api/entities/${enc(entity)}/queues/${enc(queue)}`);
  }
  updateQueue(entity: string, queue: string, body: UpdateQueueBody) {
    return this.json(Queue, 'PATCH', `/api/entities/${enc(entity)}/queues/${enc(queue)}`, { body });
  }
  // users, teams and keys
  createUser(name: string) {
    return this.json(Members, 'POST', '/api/users', { body: { name } });
  }
  createTeam(name: string) {
    return this.json(Members, 'POST', '/api/teams', { body: { name } });
  }
  addMember(entity: string, user: string, role?: MemberRole) {
    return this.json(Members, 'POST', `/api/entities/${enc(entity)}/members`, {
      body: role ? { user, role } : { user },
    });
  }
  removeMember(entity: string, user: string) {
    return this.json(Members, 'DELETE', `/api/entities/${enc(entity)}/members/${enc(user)}`);
  }
  listMembers(entity: string) {
    return this.json(Members, 'GET', `/api/entities/${enc(entity)}/members`);
  }
  createKey(body: CreateKeyBody) {
    return this.json(CreatedKey, 'POST', '/api/keys', { body });
  }
  listKeys() {
    return this.json(z.object({ keys: z.array(ApiKeyInfo) }), 'GET', '/api/keys');
  }
  /** `key`: the key's id, or its name when that names one key the caller can see. */
  async revokeKey(key: string): Promise<void> {
    await this.call('DELETE', `/api/keys/${enc(key)}`);
  }
  // entities
  createEntity(body: CreateEntityBody) {
    return this.json(Entity, 'POST', '/api/entities', { body });
  }
  getEntity(entity: string) {
    return this.json(Entity, 'GET', `/api/entities/${enc(entity)}`);
  }
  updateEntity(entity: string, body: UpdateEntityBody) {
    return this.json(Entity, 'PATCH', `/api/entities/${enc(entity)}`, { body });
  }
  async deleteQueue(entity: string, queue: string): Promise<void> {
    await this.call('DELETE', `/api/entities/${enc(entity)}/queues/${enc(queue)}`);
  }

  // items
  push(entity: string, queue: string, body: PushBody) {
    return this.json(Item, 'POST', `/api/entities/${enc(entity)}/queues/${enc(queue)}/items`, { body });
  }
  /** Summaries, without specs; getItem has the whole spec. */
  /** One page of a queue's items (docs/api.md "Items"): newest first, or `order: 'queue'` for pending items. */
  listItems(
    entity: string,
    queue: string,
    opts: {
      state?: ItemState;
      limit?: number;
      order?: 'newest' | 'queue';
      from?: 'start' | 'end';
      cursor?: string;
    } = {},
  ) {
    return this.json(ItemListResponse, 'GET', `/api/entities/${enc(entity)}/queues/${enc(queue)}/items`, {
      query: opts,
    });
  }
  getItem(id: string) {
    return this.json(Item, 'GET', `/api/items/${enc(id)}`);
  }
  cancelItem(id: string) {
    return this.json(Item, 'POST', `/api/items/${enc(id)}/cancel`);
  }

  // runs
  /** One page of the entity's runs (docs/api.md "Runs list"); `state` may list several. */
  listRuns(
    entity: string,
    opts: {
      queue?: string;
      limit?: number;
      state?: string | string[];
      q?: string;
      agent?: string;
      /** Created at or after / before: ms since the epoch or an ISO 8601 date/time. */
      since?: number | string;
      until?: number | string;
      columns?: string | string[];
      sort?: string;
      cursor?: string;
    } = {},
  ) {
    const { state, columns, ...rest } = opts;
    const query = {
      ...rest,
      state: Array.isArray(state) ? state.join(',') : state,
      columns: Array.isArray(columns) ? columns.join(',') : columns,
    };
    return this.json(RunListResponse, 'GET', `/api/entities/${enc(entity)}/runs`, { query });
  }
  /** Config and metric keys of the newest runs (the runs table's column picker). */
  runKeys(entity: string, opts: { queue?: string } = {}) {
    return this.json(RunKeys, 'GET', `/api/entities/${enc(entity)}/runs/keys`, { query: opts });
  }
  getRun(id: string) {
    return this.json(RunDetail, 'GET', `/api/runs/${enc(id)}`);
  }
  cancelRun(id: string) {
    return this.json(Run, 'POST', `/api/runs/${enc(id)}/cancel`);
  }
  runMetrics(id: string, opts: { key?: string; afterSeq?: number; limit?: number } = {}) {
    return this.json(RunMetricsResponse, 'GET', `/api/runs/${enc(id)}/metrics`, {
      query: { key: opts.key, after_seq: opts.afterSeq, limit: opts.limit },
    });
  }
  readLogs(id: string, offset = 0) {
    return this.json(LogReadResponse, 'GET', `/api/runs/${enc(id)}/logs`, { query: { offset } });
  }
  /** A byte window of a run's log: at most `limit` bytes from `offset`, or from the start of line `line`. */
  readLogWindow(id: string, opts: { offset?: number; limit: number; line?: number }) {
    return this.json(LogReadResponse, 'GET', `/api/runs/${enc(id)}/logs`, {
      query: { offset: opts.offset, limit: opts.limit, line: opts.line },
    });
  }
  /** One page of a literal search of a run's stored log (pass `next_cursor` back as `cursor` for the next). */
  searchLogs(id: string, opts: { q: string; caseSensitive?: boolean; cursor?: number; limit?: number }) {
    return this.json(LogSearchResponse, 'GET', `/api/runs/${enc(id)}/logs/search`, {
      query: {
        q: opts.q,
        case_sensitive: opts.caseSensitive === undefined ? undefined : String(opts.caseSensitive),
        cursor: opts.cursor,
        limit: opts.limit,
      },
    });
  }

  /**
   * Streams a run's logs from `offset` until the run has ended (server-sent events) and returns the run's final
   * state. Reconnects from the last offset if the connection drops.
   */
  async followLogs(
    id: string,
    onData: (text: string, kind: LogKind) => void,
    opts: { offset?: number; signal?: AbortSignal } = {},
  ): Promise<Run> {
    let offset = opts.offset ?? 0;
    for (;;) {
      let ended: Run | undefined;
      try {
        const res = await this.request('GET', `/api/runs/${enc(id)}/logs/stream`, {
          query: { offset },
          signal: opts.signal,
          timeoutMs: 24 * 3600_000,
        });
        const parser = createParser({
          onEvent: (ev) => {
            if (ev.event === 'log' || ev.event === 'note') {
              onData(JSON.parse(ev.data) as string, ev.event === 'note' ? 'note' : 'output');
              if (ev.id) offset = Number(ev.id);
            } else if (ev.event === 'end') {
              ended = Run.parse(JSON.parse(ev.data));
            }
          },
        });
        const decoder = new TextDecoder();
        for await (const chunk of res.body) parser.feed(decoder.decode(chunk, { stream: true }));
      } catch (e) {
        if (opts.signal?.aborted || (e instanceof LiftoffError && e.code !== 'SERVER_UNREACHABLE')) throw e;
      }
      if (ended) return ended;
      await new Promise((r) => setTimeout(r, 500));
    }
  }

  // agents
  /** One page of the entity's agents, by id; `next_cursor` null on the last. */
  listAgents(entity: string, opts: { limit?: number; cursor?: string } = {}) {
    return this.json(AgentListResponse, 'GET', `/api/entities/${enc(entity)}/agents`, { query: opts });
  }
  /** Every agent of the entity, following the cursor page by page. */
  async listAllAgents(entity: string): Promise<Agent[]> {
    const out: Agent[] = [];
    let cursor: string | undefined;
    do {
      const page = await this.listAgents(entity, { limit: 1000, cursor });
      out.push(...page.agents);
      cursor = page.next_cursor ?? undefined;
    } while (cursor);
    return out;
  }
  registerAgent(body: RegisterAgentBody) {
    return this.json(RegisterAgentResponse, 'POST', '/api/agents', { body });
  }
  /** `runIds`: the runs the agent holds; the answer's `stop_runs` names those the server declared lost. */
  heartbeat(agentId: string, status: Exclude<AgentStatus, 'KILLED'>, currentJobs: number, runIds?: string[]) {
    return this.json(HeartbeatResponse, 'POST', `/api/agents/${enc(agentId)}/heartbeat`, {
      body: { status, current_jobs: currentJobs, ...(runIds ? { run_ids: runIds } : {}) },
    });
  }
  /** Long-poll: returns as soon as an item or a cancellation is there, or after `wait_ms`. */
  poll(agentId: string, body: PollBody, signal?: AbortSignal) {
    return this.json(PollResponse, 'POST', `/api/agents/${enc(agentId)}/poll`, {
      body,
      signal,
      timeoutMs: this.timeoutMs + (body.wait_ms ?? 30_000),
    });
  }
  stopAgent(agentId: string, body: StopAgentBody) {
    return this.json(Agent, 'POST', `/api/agents/${enc(agentId)}/stop`, { body });
  }
  async agentStopped(agentId: string): Promise<void> {
    await this.call('POST', `/api/agents/${enc(agentId)}/stopped`);
  }
  ackItem(itemId: string, agentId: string) {
    return this.json(Run, 'POST', `/api/items/${enc(itemId)}/ack`, { body: { agent_id: agentId } });
  }
  releaseItem(itemId: string, agentId: string) {
    return this.json(Item, 'POST', `/api/items/${enc(itemId)}/release`, { body: { agent_id: agentId } });
  }
  reportRun(runId: string, body: ReportRunBody) {
    return this.json(Run, 'POST', `/api/runs/${enc(runId)}/status`, { body });
  }
  /** `kind`: `note` for the agent's own `[liftoff]` lines, kept apart from the job's output. */
  appendLogs(runId: string, agentId: string, offset: number, data: string, kind: LogKind = 'output') {
    return this.json(LogAppendResponse, 'POST', `/api/runs/${enc(runId)}/logs`, {
      query: { offset, agent_id: agentId, kind },
      raw: { data, contentType: 'text/plain; charset=utf-8' },
    });
  }

  /** The agent-protocol versions the server serves (agentProtocol.ts). */
  agentProtocol() {
    return this.json(AgentProtocolInfo, 'GET', '/api/agent-protocol');
  }
  /** Protocol 2: heartbeat, acks, reports and log appends in one request, each entry answered on its own. */
  sync(agentId: string, body: SyncBody) {
    return this.json(SyncResponse, 'POST', `/api/agents/${enc(agentId)}/sync`, { body });
  }
  /** Many items to one queue in one request and one transaction (all or none); the ids come back in order. */
  pushBatch(entity: string, queue: string, body: PushBatchBody) {
    return this.json(PushBatchResponse, 'POST', `/api/entities/${enc(entity)}/queues/${enc(queue)}/items/batch`, {
      body,
    });
  }

  // per-entity secrets: values go in, never come back (except to the agent holding a run that uses them)
  setSecret(entity: string, name: string, value: string) {
    return this.json(SecretInfo, 'PUT', `/api/entities/${enc(entity)}/secrets/${enc(name)}`, { body: { value } });
  }
  listSecrets(entity: string) {
    return this.json(SecretList, 'GET', `/api/entities/${enc(entity)}/secrets`);
  }
  async deleteSecret(entity: string, name: string): Promise<void> {
    await this.call('DELETE', `/api/entities/${enc(entity)}/secrets/${enc(name)}`);
  }
  /** Agent protocol: the values of the `secret_env` of a run this agent holds, fetched just before it starts. */
  runSecrets(runId: string, agentId: string) {
    return this.json(RunSecretsResponse, 'POST', `/api/runs/${enc(runId)}/secrets`, { body: { agent_id: agentId } });
  }

  // code archives
  /** `entity`: the entity the archive is for (needed when the key acts in several). */
  /** `onProgress`: bytes of the archive sent so far, and of how many (for a progress line). */
  uploadArchive(data: Uint8Array, entity?: string, onProgress?: (sent: number, total: number) => void) {
    return this.json(CodeArchive, 'POST', '/api/code-archives', {
      raw: { data, contentType: 'application/gzip' },
      query: { entity },
      timeoutMs: 10 * 60_000,
      ...(onProgress ? { onUploadProgress: onProgress } : {}),
    });
  }
  async downloadArchive(id: string): Promise<Buffer> {
    const res = await this.request('GET', `/api/code-archives/${enc(id)}`, { timeoutMs: 10 * 60_000 });
    return res.bytes();
  }

  // run outputs (docs/outputs.md)
  listOutputs(runId: string) {
    return this.json(RunOutputList, 'GET', `/api/runs/${enc(runId)}/outputs`);
  }
  /** One output's bytes as they arrive (the caller writes them out and checks the sha256). */
  async downloadOutput(runId: string, path: string, signal?: AbortSignal): Promise<AsyncIterable<Buffer>> {
    const res = await this.request('GET', `/api/runs/${enc(runId)}/outputs/file`, {
      query: { path },
      timeoutMs: 24 * 3600_000,
      ...(signal ? { signal } : {}),
    });
    return res.body;
  }
  /** Agent protocol: starts an output file's upload, or finds it again with the offset the server holds. */
  startOutputUpload(runId: string, body: StartOutputUploadBody) {
    return this.json(OutputUpload, 'POST', `/api/runs/${enc(runId)}/outputs/uploads`, { body });
  }
  /**
   * Agent protocol: sends `length` bytes of the file from `offset` (the server's, from startOutputUpload).
   * `agentId` is undefined when the client presents a run's upload token instead of the agent's key.
   */
  putOutputBytes(
    runId: string,
    uploadId: string,
    agentId: string | undefined,
    offset: number,
    source: Iterable<Uint8Array> | AsyncIterable<Uint8Array>,
    length: number,
  ) {
    return this.json(OutputUpload, 'PUT', `/api/runs/${enc(runId)}/outputs/uploads/${enc(uploadId)}`, {
      query: { agent_id: agentId, offset },
      stream: { source, length, contentType: 'application/octet-stream' },
      timeoutMs: 24 * 3600_000,
    });
  }
  /** Agent protocol: lists the run's outputs, all at once. */
  commitOutputs(runId: string, body: CommitOutputsBody) {
    return this.json(RunOutputList, 'POST', `/api/runs/${enc(runId)}/outputs/commit`, { body });
  }

  /** Agent protocol: a fresh upload token of the run, for its job to upload its own outputs (shown once). */
  createUploadToken(runId: string, body: UploadTokenBody) {
    return this.json(UploadToken, 'POST', `/api/runs/${enc(runId)}/outputs/upload-token`, { body });
  }
  /** Agent protocol: revokes every upload token of the run. */
  async revokeUploadTokens(runId: string, body: UploadTokenBody): Promise<void> {
    await this.request('DELETE', `/api/runs/${enc(runId)}/outputs/upload-token`, { body });
  }

  // jobs (docs/jobs.md)
  /** Creates the next version of a job (the job too, at v0); an unchanged definition answers `created: false`. */
  createJobVersion(entity: string, name: string, body: CreateJobVersionBody) {
    return this.json(CreatedJobVersion, 'POST', `/api/entities/${enc(entity)}/jobs/${enc(name)}/versions`, { body });
  }
  listJobs(entity: string) {
    return this.json(JobList, 'GET', `/api/entities/${enc(entity)}/jobs`);
  }
  getJob(entity: string, name: string) {
    return this.json(Job, 'GET', `/api/entities/${enc(entity)}/jobs/${enc(name)}`);
  }
  jobVersions(entity: string, name: string) {
    return this.json(JobVersionList, 'GET', `/api/entities/${enc(entity)}/jobs/${enc(name)}/versions`);
  }
  /** A version by name (`v2`) or alias (`latest` when absent). */
  jobVersion(entity: string, name: string, ref = 'latest') {
    return this.json(JobVersion, 'GET', `/api/entities/${enc(entity)}/jobs/${enc(name)}/versions/${enc(ref)}`);
  }
  setJobAlias(entity: string, name: string, alias: string, version: string) {
    return this.json(JobVersion, 'PUT', `/api/entities/${enc(entity)}/jobs/${enc(name)}/aliases/${enc(alias)}`, {
      body: { version },
    });
  }
  async deleteJob(entity: string, name: string): Promise<void> {
    await this.call('DELETE', `/api/entities/${enc(entity)}/jobs/${enc(name)}`);
  }

  // sweeps (docs/sweeps.md)
  createSweep(entity: string, body: CreateSweepBody) {
    return this.json(Sweep, 'POST', `/api/entities/${enc(entity)}/sweeps`, { body });
  }
  listSweeps(entity: string) {
    return this.json(SweepList, 'GET', `/api/entities/${enc(entity)}/sweeps`);
  }
  getSweep(entity: string, id: string) {
    return this.json(Sweep, 'GET', `/api/entities/${enc(entity)}/sweeps/${enc(id)}`);
  }
  /** pause: no new trials (those in flight go on); resume: trials again; stop: ends it and cancels those in flight. */
  sweepAction(entity: string, id: string, action: 'pause' | 'resume' | 'stop') {
    return this.json(Sweep, 'POST', `/api/entities/${enc(entity)}/sweeps/${enc(id)}/${action}`);
  }
}
