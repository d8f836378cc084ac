import { mkdirSync, writeFileSync } from 'node:fs';
import { readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { killUserProcesses, type JobIdentity } from './jobUsers.js';
import { removeOutputDir, outputDirOf } from './outputs/outputDir.js';
import { removeTree } from './removeTree.js';
import { stopLeftover } from './runners/localProcess.js';

/**
 * `<data dir>/runs/<run id>/`: what the agent records about a run and acts on after a restart (the run's uid, and
 * the supervisor's files of a local process: runners/supervisorFiles.ts). Agent-owned, 0700, apart from the work
 * dir, so that a job cannot write what the agent later trusts.
 */
export const runStateDir = (dataDir: string, runId: string): string => join(dataDir, 'runs', runId);

/**
 * Creating the run's state dir and its records is a few small writes to the agent's own disk, made synchronously:
 * as fs/promises calls each was a thread-pool round trip costing about three times the CPU of the call itself, for
 * every job (issue 20). They stay async functions, so callers need not know.
 */
export async function createRunState(dir: string): Promise<void> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
}

export async function recordUser(dir: string, user: JobIdentity): Promise<void> {
  writeFileSync(join(dir, 'user.json'), JSON.stringify(user), { mode: 0o600 });
}

export async function recordedUser(dir: string): Promise<JobIdentity | undefined> {
  try {
    return JSON.parse(await readFile(join(dir, 'user.json'), 'utf8')) as JobIdentity;
  } catch {
    return undefined;
  }
}

export async function removeRunState(dir: string): Promise<void> {
  await removeTree(dir);
}

/**
 * Run records of runs the server no longer counts as this agent's (`held`): they ended (the agent died before
 * cleaning up) or were taken away while it was down. A supervised job of one that still runs is stopped, with every
 * process of its uid; then its state and work dirs go. `stopped` is told each run whose job still ran.
 */
export async function sweepRunStates(
  dataDir: string,
  held: ReadonlySet<string>,
  stopped: (runId: string) => void,
): Promise<void> {
  const ids = await readdir(join(dataDir, 'runs')).catch(() => [] as string[]);
  for (const id of ids) {
    if (held.has(id)) continue;
    const dir = runStateDir(dataDir, id);
    const ran = await stopLeftover(dir);
    const user = await recordedUser(dir);
    if (user?.dynamic) await killUserProcesses(user.uid);
    if (ran) stopped(id);
    await removeRunState(dir);
    await removeOutputDir(outputDirOf(dataDir, id));
    await rm(join(dataDir, 'work', id), { recursive: true, force: true }).catch(() => undefined);
  }
}
