import { statSync, type Stats } from 'node:fs';
import { lstat, mkdir, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { LiftoffError, describeCause, type LiftoffClient } from '@liftoff/core';
import { DEFAULT_OUTPUT_CAP_BYTES } from './outputDir.js';
import type { FetchedOutputs } from '../runners/slurm/remoteOutputs.js';
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
  // Two stats of local dirs, synchronous for every run (each async call cost about three times its CPU, issue 20).
  const own = statOrUndefined(dir);
  const parent = statOrUndefined(dirname(dir));
  if (!own?.isDirectory()) return;
  await uploadOutputs(client, runId, agentId, dir, { bytes: capBytes, capped: own.dev !== parent?.dev }, note);
}

function statOrUndefined(path: string): Stats | undefined {
  try {
    return statSync(path);
  } catch {
    return undefined;
  }
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

/**
 * A run whose output dir only its runner can reach (Slurm over ssh: runners/types.ts fetchOutputs): fetched into a
 * private staging dir `<staging root>/<run id>` (0700, the agent's), uploaded from there like any run's, then
 * removed. Past the cap the transfer is cut and nothing is uploaded; entries that are not regular files are named.
 */
export async function collectFetchedOutputs(
  client: LiftoffClient,
  fetch: (into: string, capBytes: number) => Promise<FetchedOutputs | undefined>,
  stagingRoot: string,
  runId: string,
  agentId: string,
  capBytes: number,
  note: (line: string) => void,
): Promise<void> {
  const staging = join(stagingRoot, runId);
  await rm(staging, { recursive: true, force: true });
  await mkdir(staging, { recursive: true, mode: 0o700 });
  try {
    const got = await fetch(staging, capBytes);
    if (!got) return;
    for (const s of got.skipped) note(`outputs: skipped ${JSON.stringify(s.path)}: ${s.why}`);
    if (got.over) {
      note(
        `outputs not uploaded: LIFTOFF_OUTPUT_DIR holds more than its cap of ${(capBytes / 1024 / 1024).toFixed(1)} MiB (the transfer was stopped there); nothing is listed. Write less there, or raise the agent's outputs-max-mib.`,
      );
      return;
    }
    await uploadOutputs(client, runId, agentId, staging, { bytes: capBytes, capped: false }, note);
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}

/** The `[liftoff]` note of a run whose job was to upload its own outputs (kubernetes) and committed none. */
export const NO_JOB_OUTPUTS_NOTE =
  'outputs: the job uploaded none. To keep files, write them to $LIFTOFF_OUTPUT_DIR and start the job through the helper: python3 $LIFTOFF_OUTPUTS_HELPER run -- <command> (or run python3 $LIFTOFF_OUTPUTS_HELPER upload at its end); see docs/outputs.md';

/**
 * A run whose job uploaded its own outputs (kubernetes, with the run's upload token): nothing to upload here. A job
 * that committed has them listed; one that did not gets a note on how to, and an empty commit drops whatever it
 * sent without committing (nothing partial is ever listed, and nothing is left taking space).
 */
export async function settleJobUploadedOutputs(
  client: LiftoffClient,
  runId: string,
  agentId: string,
  note: (line: string) => void,
): Promise<void> {
  try {
    await client.commitOutputs(runId, { agent_id: agentId, files: [] });
    note(NO_JOB_OUTPUTS_NOTE);
  } catch (e) {
    if (!(e instanceof LiftoffError && e.code === 'CONFLICT')) {
      note(`outputs: could not check what the job uploaded: ${describeCause(e)}`);
      return;
    }
    // Committed already: by the job.
    const { outputs, total_bytes } = await client.listOutputs(runId);
    note(
      `outputs uploaded by the job: ${outputs.length} file(s), ${total_bytes} bytes (liftoff runs outputs ${runId})`,
    );
  }
}
