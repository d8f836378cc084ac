import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { JobIdentity } from './jobUsers.js';

/**
 * `<data dir>/runs/<run id>/`: what the agent records about a run and acts on after a restart (pid record, the
 * run's uid). Agent-owned, 0700, apart from the work dir, so that a job cannot write what the agent later trusts.
 */
export const runStateDir = (dataDir: string, runId: string): string => join(dataDir, 'runs', runId);

export async function createRunState(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
}

export async function recordUser(dir: string, user: JobIdentity): Promise<void> {
  await writeFile(join(dir, 'user.json'), JSON.stringify(user), { mode: 0o600 });
}

export async function recordedUser(dir: string): Promise<JobIdentity | undefined> {
  try {
    return JSON.parse(await readFile(join(dir, 'user.json'), 'utf8')) as JobIdentity;
  } catch {
    return undefined;
  }
}

export async function removeRunState(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true }).catch(() => undefined);
}
