import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { RECORD_FILE, type JobRecord } from './job.js';
import type { Owner, Transport } from './transport.js';

/**
 * What the agent knows about a run's Slurm job, in the run's agent-owned state dir. It is written twice: before
 * sbatch without the job id (where the run dir is, array spec, job user), and with the id once sbatch answered. An
 * agent that dies between the two leaves the first one, and its successor finds the id again (findUnrecordedJob).
 */
export type StoredRecord = Omit<JobRecord, 'jobId'> & { jobId?: string };

export const readRecord = (stateDir: string): Promise<StoredRecord | undefined> =>
  readFile(join(stateDir, RECORD_FILE), 'utf8')
    .then((t) => JSON.parse(t) as StoredRecord)
    .catch(() => undefined);

export const writeRecord = (stateDir: string, rec: StoredRecord): Promise<void> =>
  writeFile(join(stateDir, RECORD_FILE), JSON.stringify(rec), { mode: 0o600 });

export interface Found {
  jobId: string;
  how: string;
}

const digits = /^\d+$/;

/**
 * The job of a run whose agent died between sbatch and recording the job id. First squeue by the job's name, taking
 * only a job that also carries this run and agent in its comment and belongs to the job user: any cluster user can
 * name a job `liftoff-<run>`, and a job adopted by mistake would be the one Liftoff cancels. When Slurm has already
 * forgotten the job (it ended, then MinJobAge passed), the exit-code files in the run dir name it; such an id is only
 * taken while squeue no longer knows it (a file the job wrote itself cannot point the agent at a live foreign job).
 */
export async function findUnrecordedJob(
  transport: Transport,
  want: { name: string; comment: string[]; owner: Owner | undefined; ssh: boolean; runDir: string },
): Promise<Found | undefined> {
  const who = want.owner ? [`--user=${want.owner.uid}`] : want.ssh ? ['--me'] : [];
  const q = await transport.run(['squeue', '-h', '--states=all', `--name=${want.name}`, ...who, '-o', '%F|%U|%k']);
  if (q.code === 0) {
    for (const line of q.stdout.split('\n')) {
      const [id = '', uid = '', ...rest] = line.trim().split('|');
      const comment = rest.join('|').split(' ');
      if (!digits.test(id)) continue;
      if (want.owner && uid !== String(want.owner.uid)) continue;
      if (!want.comment.every((c) => comment.includes(c))) continue;
      return { jobId: id, how: 'found by its name in squeue' };
    }
  }
  // `find -printf '%f'` prints names only: links the job may have put in its run dir are never followed.
  const f = await transport.run(['find', want.runDir, '-maxdepth', '1', '-name', 'exit-*', '-printf', '%f\\n']);
  if (f.code !== 0) return undefined;
  const ids = new Set<string>();
  for (const name of f.stdout.split('\n')) {
    const m = /^exit-(\d+)(?:_\d+)?$/.exec(name.trim());
    if (m?.[1]) ids.add(m[1]);
  }
  const [only, ...more] = ids;
  if (!only || more.length) return undefined;
  const known = await transport.run(['squeue', '-h', '--states=all', '-j', only, '-o', '%F']);
  if (known.code === 0 && known.stdout.trim()) return undefined;
  return { jobId: only, how: 'named by its exit-code file (Slurm had already forgotten it)' };
}
