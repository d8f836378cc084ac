import { LiftoffError, splitLogPage, type LiftoffClient, type ReportRunBody } from '@liftoff/core';
import type { RunOutcome } from './runners/index.js';

/** How a run ended, and at which stage a failure happened. */
export type Final = RunOutcome & { stage?: 'agent' | 'build' | 'run' };

/**
 * The line after which a run's log holds its workload's output (and `[liftoff]` notes, which are not output); a
 * restarted agent resumes from it.
 */
const OUTPUT_MARKER =
  /^\[liftoff\] (?:container \S+ started|kubernetes job \S+ created|process \d+ started|sagemaker training job \S+ created|vertex custom job \S+ created|slurm job \d+ submitted)/m;

/** The closing `[liftoff]` line of a run's log. */
export function finalLine(final: Final): string {
  if (final.state === 'failed' || final.state === 'preempted') return `run ${final.state}: ${final.message}`;
  return `run ${final.state}${final.exitCode !== null ? ` (exit code ${final.exitCode})` : ''}`;
}

export function finalReport(agentId: string, final: Final): ReportRunBody {
  return {
    agent_id: agentId,
    state: final.state,
    exit_code: final.exitCode,
    ...(final.state === 'failed' || final.state === 'preempted'
      ? { error_stage: final.stage ?? 'run', error_message: final.message }
      : {}),
  };
}

export function describe(err: unknown): string {
  if (err instanceof LiftoffError) return err.message;
  return err instanceof Error ? err.message : String(err);
}

/**
 * Length of the workload output the server already holds: the output after the agent's last "container started" /
 * "kubernetes job created" note. Only note chunks count as markers, so a job printing such a line moves nothing.
 */
export async function alreadyShippedOutput(
  client: Pick<LiftoffClient, 'readLogs'>,
  runId: string,
  size: number,
): Promise<number> {
  const segments: Array<{ kind: string; text: string }> = [];
  let offset = 0;
  while (offset < size) {
    const page = await client.readLogs(runId, offset);
    if (page.next_offset === offset) break;
    segments.push(...splitLogPage(page));
    offset = page.next_offset;
  }
  const lastMarker = segments.findLastIndex((s) => s.kind === 'note' && OUTPUT_MARKER.test(s.text));
  if (lastMarker < 0) return 0;
  return segments
    .slice(lastMarker + 1)
    .filter((s) => s.kind === 'output')
    .reduce((n, s) => n + s.text.length, 0);
}
