import type { Logger } from 'pino';
import type { LaunchSpec, ResourceType } from '@liftoff/core';

/** Everything a runner needs to start one job; runners read nothing else (no process.env, no globals). */
export interface JobContext {
  runId: string;
  itemId: string;
  queue: string;
  entity: string;
  spec: LaunchSpec;
  /** The job's source, already fetched; the process starts here. */
  workDir: string;
  /** The complete environment of the job. */
  env: Record<string, string>;
  /** Receives the job's stdout and stderr, interleaved, as UTF-8 text. */
  onOutput(text: string): void;
  logger: Logger;
}

export type RunOutcome =
  | { state: 'finished'; exitCode: 0 }
  | { state: 'failed'; exitCode: number | null; message: string }
  | { state: 'stopped'; exitCode: number | null };

/** A started job. */
export interface RunHandle {
  /** Resolves once the job has ended and all its output was delivered. */
  wait(): Promise<RunOutcome>;
  /** Asks the job to stop, forcibly after `graceMs`; resolves once it is gone. `wait()` then reports `stopped`. */
  cancel(graceMs: number): Promise<void>;
}

/**
 * A runner turns a job into something running on its target (a process, a container, a Kubernetes Job, ...).
 * `reconcile` is called at start-up for runs this agent identity held before a restart.
 */
export interface Runner {
  readonly type: ResourceType;
  start(job: JobContext): Promise<RunHandle>;
  /**
   * Deals with a run left over from a previous incarnation of this agent. Returns a handle when the run could be
   * re-adopted, or an outcome to report when it could not.
   */
  reconcile(run: { runId: string; workDir: string }): Promise<RunHandle | RunOutcome>;
}

export interface RunnerDeps {
  logger: Logger;
}
