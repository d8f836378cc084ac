import type { TaskReading } from './state.js';
import type { Transport } from './transport.js';

type Ended = TaskReading & { kind: 'ended' };

/**
 * `sacct -P -n -X -j <id> -o JobID,State,ExitCode` lines → end readings by output key (`<id>` or `<id>_<task>`).
 * sacct writes `CANCELLED by 999` and `3:0`; lines of jobs still active are left out (squeue decides those).
 */
export function parseSacct(stdout: string): Map<string, Ended> {
  const out = new Map<string, Ended>();
  for (const line of stdout.split('\n')) {
    const [id, state, code] = line.trim().split('|');
    const word = state?.split(' ')[0];
    if (!id || !word || ['PENDING', 'RUNNING', 'REQUEUED', 'SUSPENDED', 'COMPLETING'].includes(word)) continue;
    const m = /^(\d+):(\d+)$/.exec(code ?? '');
    const exitCode = m ? (Number(m[2]) ? 128 + Number(m[2]) : Number(m[1])) : null;
    out.set(id, { kind: 'ended', state: word, reason: 'from sacct', exitCode: word === 'COMPLETED' ? 0 : exitCode });
  }
  return out;
}

/**
 * Slurm's accounting, when the cluster has it (slurmdbd): asked about jobs squeue already forgot, before the
 * exit-code file (which a job killed before its trap ran never wrote). Without accounting sacct answers "Slurm
 * accounting storage is disabled": remembered, and never asked again.
 */
export class Accounting {
  private disabled = false;

  constructor(private readonly transport: Transport) {}

  async ended(jobId: string): Promise<Map<string, Ended>> {
    if (this.disabled) return new Map();
    const r = await this.transport
      .run(['sacct', '-P', '-n', '-X', '-j', jobId, '-o', 'JobID,State,ExitCode'])
      .catch(() => undefined);
    if (!r) return new Map();
    if (r.code !== 0 || /accounting storage is disabled/i.test(r.stdout + r.stderr)) {
      this.disabled = /accounting storage is disabled|not configured|No such file|not found/i.test(r.stdout + r.stderr);
      return new Map();
    }
    return parseSacct(r.stdout);
  }
}
