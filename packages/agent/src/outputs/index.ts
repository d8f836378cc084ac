import { lstat, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { LiftoffError, describeCause, type LiftoffClient } from '@liftoff/core';
import { DEFAULT_OUTPUT_CAP_BYTES, outputDirOf, removeOutputDir } from './outputDir.js';
import { uploadOutputs } from './upload.js';

export { CONTAINER_OUTPUT_DIR, DEFAULT_OUTPUT_CAP_BYTES, outputDirOf, removeOutputDir } from './outputDir.js';
export type { OutputDirSpec } from './outputDir.js';

/** The agent config's `outputs-max-mib` in bytes. */
export const outputCapBytes = (mib: number | undefined): number =>
  mib === undefined ? DEFAULT_OUTPUT_CAP_BYTES : Math.round(mib * 1024 * 1024);

/**
 * After a run ended (finished, failed, or stopped once the job exited after its SIGTERM): uploads its output dir,
 * if the runner made one, then removes it (unmounting the tmpfs). A dir on another device than its parent is the
 * capped tmpfs (outputDir.ts).
 */
export async function collectRunOutputs(
  client: LiftoffClient,
  dataDir: string,
  runId: string,
  agentId: string,
  capBytes: number,
  note: (line: string) => void,
): Promise<void> {
  const dir = outputDirOf(dataDir, runId);
  const [own, parent] = await Promise.all([
    stat(dir).catch(() => undefined),
    stat(dirname(dir)).catch(() => undefined),
  ]);
  if (!own?.isDirectory()) return;
  try {
    await uploadOutputs(client, runId, agentId, dir, { bytes: capBytes, capped: own.dev !== parent?.dev }, note);
  } finally {
    await removeOutputDir(dir);
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
