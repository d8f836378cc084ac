import type { DescribeTrainingJobResponse } from '@aws-sdk/client-sagemaker';
import type { RunOutcome } from '../types.js';

/** What one DescribeTrainingJob answer means for the run. */
export type Reading =
  | { kind: 'starting' | 'running'; warning: string | null }
  /** A spot interruption: the phase stays as it was; SageMaker retries on new capacity. */
  | { kind: 'interrupted'; warning: string }
  | { kind: 'stopping' }
  | { kind: 'ended'; outcome: RunOutcome };

const STARTING = new Set([
  'Starting',
  'Pending',
  'LaunchingMLInstances',
  'PreparingTrainingStack',
  'Downloading',
  'DownloadingTrainingImage',
]);

/** "... exit code 3", "ExitCode 1", "exit code: 2": SageMaker words it differently per failure; the number is kept. */
export function exitCodeOf(reason: string | undefined): number | null {
  const m = /exit ?code:? ?(\d{1,3})\b/i.exec(reason ?? '');
  return m ? Number(m[1]) : null;
}

/**
 * SageMaker's status and secondary status → Liftoff's states (docs/sagemaker.md has the table). Unlike W&B's runner,
 * `Stopped` is never `finished`: after our own stop it is `stopped`, after MaxRuntimeInSeconds `failed`, after
 * MaxWaitTimeInSeconds `preempted` (capacity never came, so the queue's preemption retries decide).
 */
export function readJob(job: DescribeTrainingJobResponse, stopRequested: boolean): Reading {
  const secondary = job.SecondaryStatus ?? '';
  const reason = job.FailureReason;
  switch (job.TrainingJobStatus) {
    case 'Completed':
      return { kind: 'ended', outcome: { state: 'finished', exitCode: 0 } };
    case 'Failed':
      if (secondary === 'MaxWaitTimeExceeded') return preempted(job);
      return {
        kind: 'ended',
        outcome: {
          state: 'failed',
          exitCode: exitCodeOf(reason),
          message: `SageMaker: ${reason ?? 'the training job failed (no reason given)'}`,
        },
      };
    case 'Stopped':
      if (secondary === 'MaxWaitTimeExceeded') return preempted(job);
      if (secondary === 'MaxRuntimeExceeded') {
        const max = job.StoppingCondition?.MaxRuntimeInSeconds;
        return {
          kind: 'ended',
          outcome: {
            state: 'failed',
            exitCode: null,
            message: `SageMaker stopped the training job at its max runtime${max ? ` (StoppingCondition.MaxRuntimeInSeconds = ${max})` : ''}.`,
          },
        };
      }
      if (stopRequested) return { kind: 'ended', outcome: { state: 'stopped', exitCode: null } };
      return {
        kind: 'ended',
        outcome: {
          state: 'failed',
          exitCode: null,
          message: 'The training job was stopped outside Liftoff (StopTrainingJob by someone else).',
        },
      };
    case 'Stopping':
      return { kind: 'stopping' };
    default:
      if (secondary === 'Interrupted') {
        return {
          kind: 'interrupted',
          warning: 'spot interruption: SageMaker will retry the training job on new capacity',
        };
      }
      if (secondary === 'Restarting') {
        return { kind: 'running', warning: 'SageMaker is restarting the training job (instance or capacity problem)' };
      }
      if (STARTING.has(secondary) || !secondary) return { kind: 'starting', warning: null };
      return { kind: 'running', warning: null };
  }
}

function preempted(job: DescribeTrainingJobResponse): Reading {
  const max = job.StoppingCondition?.MaxWaitTimeInSeconds;
  return {
    kind: 'ended',
    outcome: {
      state: 'preempted',
      exitCode: null,
      message: `SageMaker ended the training job at its max wait time${max ? ` (StoppingCondition.MaxWaitTimeInSeconds = ${max})` : ''}: spot capacity did not come in time.`,
    },
  };
}
