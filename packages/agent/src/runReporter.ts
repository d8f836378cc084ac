import type { LiftoffClient } from '@liftoff/core';
import type { Logger } from 'pino';
import { REPORT_DEADLINE_MS, withRetry } from './retry.js';

/**
 * Sends a run's progress (running, warnings) in order, one report at a time, so a slow report never lands after
 * a later one. `flush` before the final report: a terminal state must be the last word.
 */
export class RunReporter {
  private chain: Promise<void> = Promise.resolve();
  private phase: 'starting' | 'running' = 'starting';
  private warning: string | null = null;
  private link: string | undefined;
  /** The last warning ever set, kept after it cleared: a start timeout names it as the reason. */
  lastWarning: string | null = null;

  constructor(
    /** The client, or the agent's SyncChannel (which batches the reports of all its runs). */
    private readonly client: Pick<LiftoffClient, 'reportRun'>,
    private readonly agentId: string,
    private readonly runId: string,
    private readonly logger: Logger,
  ) {}

  get isRunning(): boolean {
    return this.phase === 'running';
  }

  running(): void {
    if (this.phase === 'running') return;
    this.phase = 'running';
    this.send({ state: 'running' });
  }

  /** Back to starting (a Slurm requeue): the run waits for its workload to run again. */
  starting(): void {
    if (this.phase === 'starting') return;
    this.phase = 'starting';
    this.send({ state: 'starting' });
  }

  warn(warning: string | null): void {
    if (warning === this.warning) return;
    this.warning = warning;
    if (warning) this.lastWarning = warning;
    this.send({ state: this.phase, warning });
  }

  /** Where the job writes its outputs when it runs elsewhere (SageMaker, Vertex): recorded on the run once. */
  outputsLink(uri: string): void {
    if (uri === this.link) return;
    this.link = uri;
    this.send({ state: this.phase, outputs_link: uri });
  }

  flush(): Promise<void> {
    return this.chain;
  }

  private send(body: { state: 'starting' | 'running'; warning?: string | null; outputs_link?: string }): void {
    this.chain = this.chain.then(() =>
      withRetry(() => this.client.reportRun(this.runId, { agent_id: this.agentId, ...body }), {
        deadlineMs: REPORT_DEADLINE_MS,
      })
        .then(() => undefined)
        .catch((err: unknown) => this.logger.warn({ err, run: this.runId }, `could not report ${body.state}`)),
    );
  }
}
