import {
  DescribeTrainingJobCommand,
  StopTrainingJobCommand,
  type DescribeTrainingJobResponse,
  type SageMakerClient,
} from '@aws-sdk/client-sagemaker';
import type { CloudWatchLogsClient } from '@aws-sdk/client-cloudwatch-logs';
import type { Logger } from 'pino';
import type { AdoptContext, RunHandle, RunOutcome } from '../types.js';
import { LogFollower } from './logs.js';
import { readJob } from './state.js';

export interface PollTimes {
  /** Between DescribeTrainingJob calls (and log passes). */
  pollMs: number;
  /** Longest wait between retries after errors. */
  maxBackoffMs: number;
}

/** SageMaker's own stop grace: SIGTERM, then SIGKILL 120 s later; not settable per job. */
export const SAGEMAKER_STOP_GRACE_S = 120;

/** A SageMaker answer for a missing training job: a ValidationException worded "Requested resource not found". */
export const isNotFound = (e: unknown): boolean =>
  e instanceof Error &&
  (e.name === 'ResourceNotFound' || (e.name === 'ValidationException' && /not found|does not exist/i.test(e.message)));

/**
 * One training job followed by polling DescribeTrainingJob (SageMaker has no watch): phases and warnings through
 * the callbacks, logs through a LogFollower, the outcome once the status is terminal and the logs were drained.
 */
export class TrainingRun implements RunHandle {
  private stopRequested = false;
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
    private readonly name: string,
    private readonly sagemaker: SageMakerClient,
    logsClient: CloudWatchLogsClient,
    private readonly cb: Pick<AdoptContext, 'onOutput' | 'onNote' | 'onRunning' | 'onWarning'>,
    private readonly logger: Logger,
    private readonly times: PollTimes,
    instances: number,
  ) {
    this.logs = new LogFollower(logsClient, name, cb.onOutput, logger, instances);
    void this.loop();
  }

  wait(): Promise<RunOutcome> {
    return this.outcome;
  }

  async cancel(graceMs: number): Promise<void> {
    if (!this.stopRequested) {
      this.stopRequested = true;
      this.cb.onNote(
        `stopping training job ${this.name}: SageMaker sends SIGTERM and stops it ${SAGEMAKER_STOP_GRACE_S} s later, a grace period of its own (the agent's ${Math.round(graceMs / 1000)} s do not apply)`,
      );
      try {
        await this.sagemaker.send(new StopTrainingJobCommand({ TrainingJobName: this.name }));
      } catch (err) {
        // Already ended (a ValidationException naming its status): the next poll reports how.
        this.logger.warn({ err, job: this.name }, 'StopTrainingJob failed');
        this.cb.onNote(`StopTrainingJob ${this.name} failed: ${(err as Error).message}`);
      }
      this.wake?.();
    }
    await this.outcome;
  }

  /** The agent is going away without ending the run (it stops following; the training job keeps running). */
  detach(): void {
    this.detached = true;
    this.wake?.();
  }

  private async loop(): Promise<void> {
    let failures = 0;
    while (!this.detached) {
      let job: DescribeTrainingJobResponse;
      try {
        job = await this.sagemaker.send(new DescribeTrainingJobCommand({ TrainingJobName: this.name }));
        failures = 0;
      } catch (err) {
        if (isNotFound(err)) {
          return this.end({
            state: 'failed',
            exitCode: null,
            message: `The training job ${this.name} is gone from SageMaker.`,
          });
        }
        failures++;
        this.logger.warn({ err, job: this.name }, 'DescribeTrainingJob failed; retrying');
        if (failures === 3) this.setWarning(`cannot read the training job's status: ${(err as Error).message}`);
        await this.sleep(Math.min(this.times.pollMs * 2 ** failures, this.times.maxBackoffMs));
        continue;
      }
      const reading = readJob(job, this.stopRequested);
      if (reading.kind === 'ended') {
        await this.logs.poll();
        // Once more: CloudWatch may still have taken in lines while the status turned terminal.
        await this.logs.poll();
        if (this.warning) this.setWarning(null);
        return this.end(reading.outcome);
      }
      if (reading.kind === 'running' && !this.running) {
        this.running = true;
        this.cb.onRunning();
      }
      if (reading.kind === 'running' || reading.kind === 'starting' || reading.kind === 'interrupted') {
        this.setWarning(reading.warning);
      }
      await this.logs.poll();
      await this.sleep(this.times.pollMs);
    }
  }

  private end(outcome: RunOutcome): void {
    this.resolve(outcome);
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
