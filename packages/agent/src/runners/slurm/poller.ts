import type { Logger } from 'pino';
import { SlurmError } from '@liftoff/core';
import { parseQueue, type QueueRow } from './state.js';
import type { Transport } from './transport.js';

/** What one tick tells a watcher: its job's squeue lines (none once Slurm forgot the job), or why squeue failed. */
export type Tick = { rows: QueueRow[] } | { error: Error };

/**
 * One `squeue` per tick for every run the agent follows: slurmctld serves many users, and SkyPilot and submitit both
 * warn against a query per job. Hand-written (a timer and a map): no npm package drives the Slurm CLI. When
 * accounting exists the runner asks `sacct` about jobs squeue no longer knows (state.ts), else the exit-code file.
 */
export class SlurmPoller {
  private readonly watchers = new Map<string, (t: Tick) => void>();
  private timer: NodeJS.Timeout | undefined;
  private ticking = false;
  private closed = false;
  private kick: (() => void) | undefined;

  constructor(
    private readonly transport: Transport,
    private readonly pollMs: number,
    private readonly logger: Logger,
  ) {}

  /** Follows the job `id` (the id sbatch printed; an array's tasks come with it) until the returned stop is called. */
  watch(id: string, onTick: (t: Tick) => void): () => void {
    this.watchers.set(id, onTick);
    this.schedule(0);
    return () => {
      this.watchers.delete(id);
    };
  }

  /** Polls now (after a cancel: the state changes at once). */
  poke(): void {
    if (this.ticking) this.kick = () => this.schedule(0);
    else this.schedule(0);
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
    this.watchers.clear();
  }

  private schedule(ms: number): void {
    if (this.closed || this.ticking) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.tick(), ms);
  }

  private async tick(): Promise<void> {
    if (!this.watchers.size) return;
    this.ticking = true;
    const ids = [...this.watchers.keys()];
    let result: Tick | undefined;
    const byJob = new Map<string, QueueRow[]>();
    try {
      const r = await this.transport.run(['squeue', '-h', '--states=all', '-j', ids.join(','), '-o', '%A|%F|%K|%T|%r']);
      // One id Slurm no longer knows makes squeue fail ("Invalid job id specified"); several unknown among known
      // ones are just left out. Both mean: forgotten.
      if (r.code !== 0 && !/Invalid job id/i.test(r.stderr)) {
        throw new SlurmError(
          `squeue failed on ${this.transport.describe} (exit ${String(r.code)}): ${r.stderr.trim()}`,
        );
      }
      for (const row of parseQueue(r.code === 0 ? r.stdout : '')) {
        const key = this.watchers.has(row.arrayJobId) ? row.arrayJobId : row.jobId;
        byJob.set(key, [...(byJob.get(key) ?? []), row]);
      }
    } catch (e) {
      this.logger.warn({ err: e }, 'squeue failed');
      result = { error: e as Error };
    }
    for (const id of ids) {
      const w = this.watchers.get(id);
      try {
        w?.(result ?? { rows: byJob.get(id) ?? [] });
      } catch (err) {
        this.logger.error({ err, job: id }, 'slurm watcher failed');
      }
    }
    this.ticking = false;
    const kick = this.kick;
    this.kick = undefined;
    if (kick) kick();
    else if (this.watchers.size) this.schedule(this.pollMs);
  }
}
