import { lstat, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { LiftoffClient } from '@liftoff/core';
import { DEFAULT_OUTPUT_CAP_BYTES } from './outputDir.js';
import { uploadOutputs } from './upload.js';

export { CONTAINER_OUTPUT_DIR, DEFAULT_OUTPUT_CAP_BYTES, outputDirOf, removeOutputDir } from './outputDir.js';
export type { OutputDirSpec } from './outputDir.js';

/** The agent config's `outputs-max-mib` in bytes. */
export const outputCapBytes = (mib: number | undefined): number =>
  mib === undefined ? DEFAULT_OUTPUT_CAP_BYTES : Math.round(mib * 1024 * 1024);

/**
 * After a run ended (finished, failed, or stopped once the job exited after its SIGTERM): uploads its output dir
 * `dir`, if the runner made one. The agent then releases it (outputDirs.ts). A dir on another device than its
 * parent is the capped tmpfs (outputDir.ts).
 */
export async function collectRunOutputs(
  client: LiftoffClient,
  dir: string,
  runId: string,
  agentId: string,
  capBytes: number,
  note: (line: string) => void,
): Promise<void> {
  const [own, parent] = await Promise.all([
    stat(dir).catch(() => undefined),
    stat(dirname(dir)).catch(() => undefined),
  ]);
  if (!own?.isDirectory()) return;
  await uploadOutputs(client, runId, agentId, dir, { bytes: capBytes, capped: own.dev !== parent?.dev }, note);
}

/**
 * A Slurm run's outputs: `<run dir>/outputs` on the shared filesystem (local transport; slurm/index.ts sets it),
 * uploaded like any run's, only files of the run dir's owner (the job user). Not capped while the job writes (a
 * shared filesystem has no per-run cap the agent could set); the cap applies here. Left in place, as the run dir is.
 */
export async function collectSlurmOutputs(
  client: LiftoffClient,
  workdirRoot: string,
  runId: string,
  agentId: string,
  capBytes: number,
  note: (line: string) => void,
): Promise<void> {
  const runDir = join(workdirRoot, runId);
  const [own, dir] = await Promise.all([
    lstat(runDir).catch(() => undefined),
    lstat(join(runDir, 'outputs')).catch(() => undefined),
  ]);
  if (!own?.isDirectory() || !dir?.isDirectory()) return;
  await uploadOutputs(
    client,
    runId,
    agentId,
    join(runDir, 'outputs'),
    { bytes: capBytes, capped: false, ownerUid: own.uid },
    note,
  );
}
