import { execFileSync, spawnSync } from 'node:child_process';

/**
 * The one-node Slurm of `scripts/services/slurm.sh` (slurmctld and slurmd on 127.0.0.1, config in /etc/slurm).
 * Missing or not answering: the Slurm suites skip with a loud reason, unless LIFTOFF_REQUIRE_SERVICES=1, where that
 * is a failure. They also need root (jobs are submitted with --uid as the ordinary user `liftoff-tester`).
 */
export function slurmAvailable(): boolean {
  const r = spawnSync('sinfo', ['-h', '-N', '-o', '%T'], { encoding: 'utf8' });
  const idle = r.status === 0 && /idle|mixed|allocated/.test(r.stdout);
  const tester =
    spawnSync('id', ['-u', 'liftoff-tester']).status === 0 && spawnSync('id', ['-u', 'liftoff-slurm']).status === 0;
  const root = process.getuid?.() === 0;
  if (idle && tester && root) return true;
  const reason = !idle
    ? `Slurm not answering (${(r.stderr || r.stdout || String(r.error)).trim()}): run scripts/services/slurm.sh`
    : !tester
      ? 'users liftoff-tester or liftoff-slurm missing: run scripts/services/base.sh and slurm.sh'
      : 'the Slurm suite runs as root';
  if (process.env.LIFTOFF_REQUIRE_SERVICES === '1') throw new Error(`${reason} (LIFTOFF_REQUIRE_SERVICES=1)`);
  console.warn(`\n*** SKIPPING Slurm suites: ${reason} ***\n`);
  return false;
}

/** Runs a Slurm CLI command as the test (root), outside Liftoff. */
export function slurm(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8' });
}

/** squeue's `%T|%r` of a job, or undefined once Slurm forgot it. */
export function slurmState(jobId: string): { state: string; reason: string } | undefined {
  const r = spawnSync('squeue', ['-h', '--states=all', '-j', jobId, '-o', '%T|%r'], { encoding: 'utf8' });
  const line = r.status === 0 ? r.stdout.split('\n')[0] : undefined;
  if (!line) return undefined;
  const [state = '', reason = ''] = line.split('|');
  return { state, reason };
}

/** The Slurm job id a run's log names (`slurm job <id> submitted`). */
export const slurmJobIdOf = (log: string): string | undefined => /slurm job (\d+) submitted/.exec(log)?.[1];
