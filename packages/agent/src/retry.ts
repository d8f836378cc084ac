import { LiftoffError } from '@liftoff/core';

/** How long the agent keeps retrying a run's status report before it gives up on it. */
export const REPORT_DEADLINE_MS = 10 * 60_000;

/** Errors worth retrying: the server is unreachable or failed; a 4xx answer will not change by asking again. */
export function isTransient(e: unknown): boolean {
  if (e instanceof LiftoffError) return e.code === 'SERVER_UNREACHABLE' || e.code === 'INTERNAL';
  return true;
}

/** The server declared the run lost (its agent was silent too long): nothing about it will be accepted again. */
export function isRunLost(e: unknown): boolean {
  return e instanceof LiftoffError && e.code === 'RUN_LOST';
}

/** Retries transient failures with exponential backoff until `deadlineMs` has passed. */
export async function withRetry<T>(
  fn: () => Promise<T>,
  opts: { deadlineMs: number; onRetry?: (e: unknown) => void },
): Promise<T> {
  const until = Date.now() + opts.deadlineMs;
  let delay = 200;
  for (;;) {
    try {
      return await fn();
    } catch (e) {
      if (!isTransient(e) || Date.now() + delay > until) throw e;
      opts.onRetry?.(e);
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 5_000);
    }
  }
}
