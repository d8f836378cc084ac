import type { RunOutcome } from '../types.js';

/** What one `GET customJobs/<id>` answer means for the run. */
export type Reading =
  | { kind: 'starting' | 'running'; warning: string | null }
  | { kind: 'stopping' }
  | { kind: 'ended'; outcome: RunOutcome };

export interface CustomJobView {
  name?: string;
  state?: string;
  error?: { code?: number; message?: string };
  jobSpec?: { scheduling?: { strategy?: string }; baseOutputDirectory?: { outputUriPrefix?: string } };
  job_spec?: { scheduling?: { strategy?: string }; base_output_directory?: { output_uri_prefix?: string } };
}

/** The job's base output directory (`AIP_MODEL_DIR` is `<it>/model/`): the run's outputs link. */
export function outputDirOf(job: CustomJobView): string | undefined {
  return job.jobSpec?.baseOutputDirectory?.outputUriPrefix ?? job.job_spec?.base_output_directory?.output_uri_prefix;
}

/** "... exited with a non-zero status of 3 ...": Vertex's wording for a replica's exit; the number is kept. */
export function exitCodeOf(message: string | undefined): number | null {
  const m = /non-zero status of (\d{1,3})\b/i.exec(message ?? '');
  return m ? Number(m[1]) : null;
}

const errorText = (job: CustomJobView, fallback: string) => job.error?.message || fallback;

/**
 * Vertex AI's 11 JobState values → Liftoff's (docs/vertex.md has the table). Unlike W&B's runner, which leaves
 * QUEUED, CANCELLING, CANCELLED and EXPIRED "unknown" forever: CANCELLED is `stopped` only after our own cancel,
 * else `failed` saying it was cancelled outside Liftoff; a SPOT job failing with an error that says it was
 * preempted is `preempted`, so the queue's preemption retries decide (an assumption: the protos define no code).
 */
export function readJob(job: CustomJobView, cancelRequested: boolean): Reading {
  const strategy = job.jobSpec?.scheduling?.strategy ?? job.job_spec?.scheduling?.strategy;
  switch (job.state) {
    case 'JOB_STATE_QUEUED':
    case 'JOB_STATE_PENDING':
      return { kind: 'starting', warning: null };
    case 'JOB_STATE_RUNNING':
    case 'JOB_STATE_UPDATING':
      return { kind: 'running', warning: null };
    case 'JOB_STATE_PAUSED':
      return { kind: 'running', warning: 'the custom job is paused in Vertex AI' };
    case 'JOB_STATE_SUCCEEDED':
      return { kind: 'ended', outcome: { state: 'finished', exitCode: 0 } };
    case 'JOB_STATE_FAILED': {
      const message = errorText(job, 'the custom job failed (no error given)');
      if (strategy === 'SPOT' && /preempt/i.test(message)) {
        return { kind: 'ended', outcome: { state: 'preempted', exitCode: null, message: `Vertex AI: ${message}` } };
      }
      return {
        kind: 'ended',
        outcome: { state: 'failed', exitCode: exitCodeOf(message), message: `Vertex AI: ${message}` },
      };
    }
    case 'JOB_STATE_EXPIRED':
      return {
        kind: 'ended',
        outcome: {
          state: 'failed',
          exitCode: null,
          message: `Vertex AI: the custom job expired: ${errorText(job, 'no error given')}`,
        },
      };
    case 'JOB_STATE_PARTIALLY_SUCCEEDED':
      return {
        kind: 'ended',
        outcome: {
          state: 'failed',
          exitCode: null,
          message: `Vertex AI: the custom job only partially succeeded: ${errorText(job, 'no error given')}`,
        },
      };
    case 'JOB_STATE_CANCELLING':
      return { kind: 'stopping' };
    case 'JOB_STATE_CANCELLED':
      if (cancelRequested) return { kind: 'ended', outcome: { state: 'stopped', exitCode: null } };
      return {
        kind: 'ended',
        outcome: {
          state: 'failed',
          exitCode: null,
          message: 'The custom job was cancelled outside Liftoff (in the console, with gcloud or through the API).',
        },
      };
    default:
      // JOB_STATE_UNSPECIFIED or a state newer than these protos: keep polling, say so.
      return {
        kind: 'starting',
        warning: `Vertex AI reports the state ${job.state ?? '(none)'}, which Liftoff does not know`,
      };
  }
}
