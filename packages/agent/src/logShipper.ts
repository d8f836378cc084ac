import type { Logger } from 'pino';
import type { LiftoffClient } from '@liftoff/core';

const FLUSH_MS = 200;
const MAX_CHUNK = 256 * 1024;

/**
 * Ships a run's output to the server in ordered chunks with byte offsets. A chunk is retried until the server has
 * it; the server ignores a chunk it already stored, so retries never duplicate output.
 */
export class LogShipper {
  private buffer = '';
  private timer: NodeJS.Timeout | undefined;
  private sending: Promise<void> = Promise.resolve();

  constructor(
    private readonly client: LiftoffClient,
    private readonly agentId: string,
    private readonly runId: string,
    private readonly logger: Logger,
    /** Where the run's log ends on the server already (when resuming after a restart). */
    private offset = 0,
  ) {}

  /** A `[liftoff]` status line in the run's log (not the job's output). */
  note(line: string): void {
    this.write(`[liftoff] ${line}\n`);
  }

  write(text: string): void {
    this.buffer += text;
    if (this.buffer.length >= MAX_CHUNK) this.kick();
    else this.timer ??= setTimeout(() => this.kick(), FLUSH_MS);
  }

  /** Sends everything written so far. */
  async flush(): Promise<void> {
    this.kick();
    await this.sending;
  }

  private kick(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.sending = this.sending.then(() => this.drain());
  }

  private async drain(): Promise<void> {
    let delay = 250;
    while (this.buffer.length) {
      const chunk = this.buffer.slice(0, MAX_CHUNK);
      try {
        const { size } = await this.client.appendLogs(this.runId, this.agentId, this.offset, chunk);
        this.offset = size;
        this.buffer = this.buffer.slice(chunk.length);
        delay = 250;
      } catch (err) {
        this.logger.warn({ err, run: this.runId }, 'log upload failed; retrying');
        await new Promise((r) => setTimeout(r, delay));
        delay = Math.min(delay * 2, 10_000);
      }
    }
  }
}
