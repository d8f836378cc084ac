import {
  LiftoffError,
  SYNC_LIMITS,
  errorFromBody,
  type EntryError,
  type LiftoffClient,
  type LogKind,
  type ReportRunBody,
  type Run,
  type SyncBody,
  type SyncLog,
  type SyncReport,
  type SyncResponse,
} from '@liftoff/core';

interface Waiter<T> {
  resolve(value: T): void;
  reject(err: unknown): void;
}
type Queued<E, T> = Waiter<T> & { entry: E };
type Beat = NonNullable<SyncBody['heartbeat']>;

/** Bytes of reports and log entries in one request at most: the server's body limit (8 MiB) with room for the rest. */
const BATCH_BUDGET = 6 * 1024 * 1024;

/** What LogShipper, RunReporter and the agent send through; the client's own signatures, so either will do. */
export type AgentTransport = Pick<LiftoffClient, 'ackItem' | 'reportRun' | 'appendLogs' | 'getRun'>;

/**
 * Agent protocol 2 on the agent's side: every ack, status report, log append and heartbeat of every run is queued
 * here and sent in one `POST /api/agents/{id}/sync` per tick: what was queued while the event loop ran goes out
 * together, and what is queued while a sync is in flight goes in the next (one at a time, so a busy agent's
 * requests grow instead of multiplying). Each caller gets its own entry's answer, or the error its single-item call
 * would have thrown (so LogShipper's resync on CONFLICT, RUN_LOST and the retry loops work unchanged); a failed
 * request fails every entry in it with that request's error, and each caller retries as before. Hand-written: no
 * library batches calls of our own protocol.
 */
export class SyncChannel implements AgentTransport {
  private acks: Array<Queued<string, Run>> = [];
  private reports: Array<Queued<SyncReport, Run>> = [];
  private logs: Array<Queued<SyncLog, { size: number }>> = [];
  private beat: { body: Beat; waiters: Array<Waiter<void>> } | undefined;
  private scheduled = false;
  private inFlight = false;
  private idleWaiters: Array<() => void> = [];
  /** Requests sent, for tests and the agent's log. */
  requests = 0;

  constructor(
    private readonly client: LiftoffClient,
    private readonly agentId: string,
    private readonly events: {
      /** A sync reached the server: it showed the agent alive (no separate heartbeat is needed for a while). */
      onContact?: () => void;
      /** Runs the server declared lost, named in a heartbeat's answer. */
      onStopRuns?: (runIds: string[]) => void;
    } = {},
  ) {}

  ackItem(itemId: string, agentId: string = this.agentId): Promise<Run> {
    this.assertSelf(agentId);
    return new Promise((resolve, reject) => this.enqueue(this.acks, { entry: itemId, resolve, reject }));
  }

  reportRun(runId: string, body: ReportRunBody): Promise<Run> {
    this.assertSelf(body.agent_id);
    const { agent_id: _a, ...report } = body;
    return new Promise((resolve, reject) =>
      this.enqueue(this.reports, { entry: { ...report, run_id: runId }, resolve, reject }),
    );
  }

  appendLogs(runId: string, agentId: string, offset: number, data: string, kind: LogKind = 'output') {
    this.assertSelf(agentId);
    const entry: SyncLog = { run_id: runId, offset, kind, data_base64: Buffer.from(data, 'utf8').toString('base64') };
    return new Promise<{ size: number }>((resolve, reject) => this.enqueue(this.logs, { entry, resolve, reject }));
  }

  /** Not batched: a log resync asks what the server holds, rarely. */
  getRun(runId: string) {
    return this.client.getRun(runId);
  }

  /** The agent's status, sent with the next sync; a later heartbeat queued before it goes replaces it. */
  heartbeat(body: Beat): Promise<void> {
    return new Promise((resolve, reject) => {
      this.beat = { body, waiters: [...(this.beat?.waiters ?? []), { resolve, reject }] };
      this.schedule();
    });
  }

  /** Resolves once everything queued so far was sent and answered (before the agent says it stopped). */
  idle(): Promise<void> {
    if (!this.inFlight && !this.scheduled && !this.pending) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private assertSelf(agentId: string): void {
    if (agentId !== this.agentId)
      throw new LiftoffError('INTERNAL', `This sync channel speaks for ${this.agentId} only.`);
  }

  private enqueue<E, T>(queue: Array<Queued<E, T>>, q: Queued<E, T>): void {
    queue.push(q);
    this.schedule();
  }

  private schedule(): void {
    if (this.scheduled || this.inFlight) return;
    this.scheduled = true;
    // setImmediate, not a timer: what the same turn of the event loop queued goes together, without added latency.
    setImmediate(() => {
      this.scheduled = false;
      void this.flush();
    });
  }

  private get pending(): boolean {
    return !!(this.acks.length || this.reports.length || this.logs.length || this.beat);
  }

  private async flush(): Promise<void> {
    if (this.inFlight) return;
    if (!this.pending) {
      for (const resolve of this.idleWaiters.splice(0)) resolve();
      return;
    }
    this.inFlight = true;
    const acks = this.acks.splice(0, SYNC_LIMITS.acks);
    // Reports (error messages up to 16 KiB each) and logs share the byte budget, so a batch stays under the body
    // limit; what does not fit goes in the next sync. One entry of each always goes, so nothing waits forever.
    let budget = BATCH_BUDGET;
    const fits = (bytes: number, taken: number) => {
      if (taken > 0 && bytes > budget) return false;
      budget -= bytes;
      return true;
    };
    let r = 0;
    while (r < this.reports.length && r < SYNC_LIMITS.reports) {
      const entry = (this.reports[r] as Queued<SyncReport, unknown>).entry;
      if (!fits(Buffer.byteLength(JSON.stringify(entry)), r)) break;
      r++;
    }
    const reports = this.reports.splice(0, r);
    let n = 0;
    while (n < this.logs.length && n < SYNC_LIMITS.logs) {
      if (!fits((this.logs[n] as Queued<SyncLog, unknown>).entry.data_base64.length + 100, n)) break;
      n++;
    }
    const logs = this.logs.splice(0, n);
    const beat = this.beat;
    this.beat = undefined;
    const body: SyncBody = {
      ...(beat ? { heartbeat: beat.body } : {}),
      ...(acks.length ? { acks: acks.map((a) => ({ item_id: a.entry })) } : {}),
      ...(reports.length ? { reports: reports.map((r) => r.entry) } : {}),
      ...(logs.length ? { logs: logs.map((l) => l.entry) } : {}),
    };
    let res: SyncResponse;
    try {
      this.requests++;
      res = await this.client.sync(this.agentId, body);
    } catch (err) {
      for (const w of [...acks, ...reports, ...logs, ...(beat?.waiters ?? [])]) w.reject(err);
      this.done();
      return;
    }
    this.events.onContact?.();
    settle(acks, res.acks, (a) => a.run);
    settle(reports, res.reports, (r) => r.run);
    settle(logs, res.logs, (l) => (l.size === undefined ? undefined : { size: l.size }));
    if (beat && res.stop_runs.length) this.events.onStopRuns?.(res.stop_runs);
    for (const w of beat?.waiters ?? []) w.resolve();
    this.done();
  }

  private done(): void {
    this.inFlight = false;
    if (this.pending) this.schedule();
    else for (const resolve of this.idleWaiters.splice(0)) resolve();
  }
}

/** Answers each queued entry from its result, in order: its value, or its error as the single call throws it. */
function settle<E, T, R extends { error?: EntryError | undefined }>(
  queued: Array<Queued<E, T>>,
  results: R[],
  value: (r: R) => T | undefined,
): void {
  for (const [i, q] of queued.entries()) {
    const r = results[i];
    const v = r && !r.error ? value(r) : undefined;
    if (v !== undefined) q.resolve(v);
    else
      q.reject(
        r?.error
          ? errorFromBody(0, { error: r.error })
          : new LiftoffError('INTERNAL', 'The server answered a sync without a result for this entry.'),
      );
  }
}
