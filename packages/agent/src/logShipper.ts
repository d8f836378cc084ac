import type { Logger } from 'pino';
import { LiftoffError, type LiftoffClient, type LogKind } from '@liftoff/core';
import { REPORT_DEADLINE_MS, isRunLost, isTransient } from './retry.js';
import { SecretMasker } from './secretMask.js';

/** Output waits at most this long before it is sent (a live log stays live). */
const FLUSH_MS = 200;
/**
 * The agent's own notes wait longer, unless output or the run's end sends them sooner: a short job's notes then go
 * in one upload with its end instead of one at its start and one at its end (half of a trivial job's log requests
 * and database transactions).
 */
const NOTE_FLUSH_MS = 1_000;
const MAX_CHUNK = 256 * 1024;

/**
 * Ships a run's log to the server in ordered chunks with byte offsets: the job's output, and the agent's own
 * `[liftoff]` notes as chunks of their own kind (so nothing a job prints can pass for one). A chunk is retried until
 * the server has it; the server ignores a chunk it already stored, so retries never duplicate anything. Shipping
 * cannot wedge a run: a refused offset (the answer to a stored chunk was lost, and the chunk has grown since) resyncs
 * to the size the server holds, and after `deadlineMs` of failures the rest is dropped with a warning, so the run
 * is still reported.
 */
export class LogShipper {
  /** Pending text, in order; adjacent pieces of one kind are joined. */
  private pending: Array<{ kind: LogKind; text: string }> = [];
  private pendingChars = 0;
  private timer: NodeJS.Timeout | undefined;
  private timerDue = 0;
  private sending: Promise<void> = Promise.resolve();

  constructor(
    /** The client, or the agent's SyncChannel (which batches the uploads of all its runs). */
    private readonly client: Pick<LiftoffClient, 'appendLogs' | 'getRun'>,
    private readonly agentId: string,
    private readonly runId: string,
    private readonly logger: Logger,
    /** Where the run's log ends on the server already (when resuming after a restart). */
    private offset = 0,
    private readonly deadlineMs = REPORT_DEADLINE_MS,
  ) {}

  /** Log resyncs after a refused offset, for tests and the agent's own log. */
  resyncs = 0;
  /** Set once the server refused an upload with RUN_LOST: the run is not this agent's any more; nothing is sent. */
  lost = false;

  /** The run's secret values, masked in everything shipped from now on (secretMask.ts). */
  private readonly masker = new SecretMasker();

  /** Masks these values (the run's secrets) in all output and notes shipped after this call. */
  maskSecrets(values: Iterable<string>): void {
    this.masker.add(values);
  }

  /** `text` with the run's secret values masked, for what leaves the agent outside the log (error messages). */
  mask(text: string): string {
    return this.masker.maskAll(text);
  }

  /** A `[liftoff]` status line in the run's log (not the job's output). */
  note(line: string): void {
    // Output held back as a possible start of a secret goes first, so the log keeps its order.
    this.add('output', this.masker.end());
    this.add('note', this.masker.maskAll(`[liftoff] ${line.replace(/\n/g, ' ')}\n`));
  }

  /** The job's output. */
  write(text: string): void {
    this.add('output', this.masker.push(text));
  }

  /** Sends everything written so far. */
  async flush(): Promise<void> {
    this.add('output', this.masker.end());
    this.kick();
    await this.sending;
  }

  private add(kind: LogKind, text: string): void {
    if (!text || this.lost) return;
    const last = this.pending.at(-1);
    if (last?.kind === kind) last.text += text;
    else this.pending.push({ kind, text });
    this.pendingChars += text.length;
    if (this.pendingChars >= MAX_CHUNK) return this.kick();
    const due = Date.now() + (kind === 'output' ? FLUSH_MS : NOTE_FLUSH_MS);
    if (this.timer && this.timerDue <= due) return;
    clearTimeout(this.timer);
    this.timerDue = due;
    this.timer = setTimeout(() => this.kick(), due - Date.now());
  }

  /**
   * Before a run's last note: afterwards nothing is on its way and at most one small piece of notes is pending, so
   * the last note joins it and `flush()` sends them as one upload at once, in the same turn as the run's final
   * report (the agent sends both in one sync, whose log lines the server stores first). Output still pending, or
   * anything on its way, is sent and answered first: the final report must stay the last word.
   */
  async prepareEnd(): Promise<void> {
    this.add('output', this.masker.end());
    await this.settled();
    const head = this.pending[0];
    const onlyNotes = !head || (this.pending.length === 1 && head.kind === 'note' && this.pendingChars < MAX_CHUNK / 2);
    if (!onlyNotes) await this.flush();
  }

  /** Resolves when nothing is on its way to the server (what is pending stays pending). */
  private async settled(): Promise<void> {
    for (let s = this.sending; ; s = this.sending) {
      await s;
      if (s === this.sending) return;
    }
  }

  private kick(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.sending = this.sending.then(() => this.drain());
  }

  private async drain(): Promise<void> {
    let delay = 250;
    let failingSince: number | undefined;
    for (let head = this.pending[0]; head; head = this.pending[0]) {
      const chunk = head.text.slice(0, MAX_CHUNK);
      try {
        const { size } = await this.client.appendLogs(this.runId, this.agentId, this.offset, chunk, head.kind);
        this.offset = size;
        this.consume(chunk.length);
        delay = 250;
        failingSince = undefined;
      } catch (err) {
        if (err instanceof LiftoffError && err.code === 'CONFLICT' && (await this.resync())) continue;
        if (isRunLost(err)) {
          this.logger.warn({ run: this.runId }, 'the server declared this run lost; its log is not shipped any more');
          this.lost = true;
          this.pending = [];
          this.pendingChars = 0;
          return;
        }
        failingSince ??= Date.now();
        if (!isTransient(err) || Date.now() - failingSince > this.deadlineMs) {
          this.logger.warn({ err, run: this.runId }, 'log upload keeps failing; dropping the rest of this log');
          this.pending = [];
          this.pendingChars = 0;
          return;
        }
        this.logger.warn({ err, run: this.runId }, 'log upload failed; retrying');
        await new Promise((r) => setTimeout(r, delay));
        delay = Math.min(delay * 2, 10_000);
      }
    }
  }

  /** Drops `chars` characters from the front of the pending text (they are on the server). */
  private consume(chars: number): void {
    const head = this.pending[0];
    if (!head) return;
    head.text = head.text.slice(chars);
    this.pendingChars -= chars;
    if (!head.text) this.pending.shift();
  }

  /**
   * The server refused our offset: ask it what it holds. When it holds a prefix of the pending text (an earlier
   * upload arrived but its answer was lost), that prefix is dropped; when it holds less than was sent (which the
   * server never does on its own), the gap is said in a note. Either way shipping goes on from the server's size.
   */
  private async resync(): Promise<boolean> {
    let stored: number;
    try {
      stored = (await this.client.getRun(this.runId)).log_size;
    } catch {
      return false;
    }
    this.resyncs++;
    const head = this.pending[0];
    const ahead = stored - this.offset;
    this.logger.warn({ run: this.runId, offset: this.offset, stored }, 'log offset refused; resyncing');
    if (head && ahead > 0) {
      const bytes = Buffer.from(head.text, 'utf8');
      const taken = bytes.subarray(0, Math.min(ahead, bytes.length)).toString('utf8').length;
      this.consume(taken);
    }
    this.offset = stored;
    if (ahead < 0) {
      const text = `[liftoff] log resynced: ${-ahead} bytes were lost\n`;
      this.pending.unshift({ kind: 'note', text });
      this.pendingChars += text.length;
    }
    return true;
  }
}
