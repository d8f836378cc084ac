import { stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { LiftoffClient } from '@liftoff/core';
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
