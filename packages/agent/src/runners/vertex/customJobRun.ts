import type { Logger } from 'pino';
import type { AdoptContext, RunHandle, RunOutcome } from '../types.js';
import { LogFollower } from './logs.js';
import { isNotFound, type VertexApi } from './rest.js';
import { readJob, type CustomJobView } from './state.js';

export interface PollTimes {
  /** Between `GET customJobs/<id>` calls (and log passes). */
  pollMs: number;
  /** Longest wait between retries after errors. */
  maxBackoffMs: number;
  /** How long logs are still read after the job ended: Cloud Logging takes entries in late (eventually consistent). */
  tailMs: number;
}

/**
 * One custom job followed by polling its resource (Vertex has no watch): phases and warnings through the callbacks,
 * logs through a LogFollower, the outcome once the state is terminal and the late log entries were read.
 */
export class CustomJobRun implements RunHandle {
  private cancelRequested = false;
  private running = false;
  private warning: string | null = null;
  private readonly logs: LogFollower;
  private resolve!: (o: RunOutcome) => void;
  private readonly outcome = new Promise<RunOutcome>((r) => {
    this.resolve = r;
  });
  private wake: (() => void) | undefined;
  private detached = false;

  constructor(
    readonly name: string,
    private readonly api: VertexApi,
    private readonly cb: Pick<AdoptContext, 'onOutput' | 'onNote' | 'onRunning' | 'onWarning'>,
    private readonly logger: Logger,
    private readonly times: PollTimes,
    tasks: number,
    /** A re-adopted run whose cancel Liftoff had asked for before the restart. */
    cancelledBefore = false,
  ) {
    this.cancelRequested = cancelledBefore;
    this.logs = new LogFollower(api, name.split('/').pop() ?? name, cb.onOutput, logger, tasks);
    void this.loop();
  }

  wait(): Promise<RunOutcome> {
    return this.outcome;
  }

  async cancel(graceMs: number): Promise<void> {
    if (!this.cancelRequested) {
      this.cancelRequested = true;
      this.cb.onNote(
        `cancelling custom job ${this.name}: Vertex AI stops its containers on its own schedule (the agent's ${Math.round(graceMs / 1000)} s grace does not apply)`,
      );
      try {
        await this.api.cancel(this.name);
      } catch (err) {
        // Already ended (FAILED_PRECONDITION): the next poll reports how.
        this.logger.warn({ err, job: this.name }, 'customJobs.cancel failed');
        this.cb.onNote(`cancelling ${this.name} failed: ${(err as Error).message}`);
      }
      this.wake?.();
    }
    await this.outcome;
  }

  /** The agent is going away without ending the run (it stops following; the custom job keeps running). */
  detach(): void {
    this.detached = true;
    this.wake?.();
  }

  private async loop(): Promise<void> {
    let failures = 0;
    while (!this.detached) {
      let job: CustomJobView;
      try {
        job = await this.api.get(this.name);
        failures = 0;
      } catch (err) {
        if (isNotFound(err)) {
          return this.resolve({
            state: 'failed',
            exitCode: null,
            message: `The custom job ${this.name} is gone from Vertex AI.`,
          });
        }
        failures++;
        this.logger.warn({ err, job: this.name }, 'reading the custom job failed; retrying');
        if (failures === 3) this.setWarning(`cannot read the custom job's state: ${(err as Error).message}`);
        await this.sleep(Math.min(this.times.pollMs * 2 ** failures, this.times.maxBackoffMs));
        continue;
      }
      const reading = readJob(job, this.cancelRequested);
      if (reading.kind === 'ended') {
        await this.drain();
        if (this.warning) this.setWarning(null);
        return this.resolve(reading.outcome);
      }
      if (reading.kind === 'running' && !this.running) {
        this.running = true;
        this.cb.onRunning();
      }
      if (reading.kind === 'running' || reading.kind === 'starting') this.setWarning(reading.warning);
      await this.logs.poll();
      await this.sleep(this.times.pollMs);
    }
  }

  /** Reads the log for `tailMs` more after the end, since entries arrive late. */
  private async drain(): Promise<void> {
    const until = Date.now() + this.times.tailMs;
    for (;;) {
      await this.logs.poll();
      const left = until - Date.now();
      if (left <= 0 || this.detached) return;
      await this.sleep(Math.min(this.times.pollMs, left));
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((r) => {
      const t = setTimeout(r, ms);
      this.wake = () => {
        clearTimeout(t);
        r();
      };
    });
  }

  private setWarning(w: string | null): void {
    if (w === this.warning) return;
    this.warning = w;
    if (w) this.cb.onNote(`warning: ${w}`);
    this.cb.onWarning(w);
  }
}
