import { SlurmOptionRefusedError } from '@liftoff/core';

/**
 * `resource_args.slurm` → sbatch options through an allow-list (W&B's local-container allow-list is the model).
 * Everything else is refused naming the key, because an unknown option could undo what Liftoff relies on: the
 * options below marked owned are set by the runner itself (where output goes, that the agent's environment is not
 * exported, the job name and comment it finds the job again by).
 */
const ALLOWED = {
  partition: '--partition',
  account: '--account',
  qos: '--qos',
  time: '--time',
  nodes: '--nodes',
  ntasks: '--ntasks',
  ntasks_per_node: '--ntasks-per-node',
  cpus_per_task: '--cpus-per-task',
  mem: '--mem',
  mem_per_cpu: '--mem-per-cpu',
  gpus: '--gpus',
  gpus_per_node: '--gpus-per-node',
  gres: '--gres',
  constraint: '--constraint',
  exclusive: '--exclusive',
  reservation: '--reservation',
  array: '--array',
  requeue: '--requeue',
  signal: '--signal',
} as const;
type Key = keyof typeof ALLOWED;

/** Options the runner sets itself; named in the refusal so that users know why. */
const OWNED = new Set([
  'wrap',
  'export',
  'export_file',
  'output',
  'error',
  'input',
  'chdir',
  'open_mode',
  'job_name',
  'comment',
  'uid',
  'gid',
  'parsable',
]);

/** Keys of resource_args.slurm that are not sbatch options. */
const NOT_OPTIONS = new Set(['sbatch', 'builder']);

export interface SbatchOptions {
  /** `--key=value` argv elements, in a stable order. */
  argv: string[];
  /** The `--array` spec when given: one run is several Slurm jobs (tasks). */
  array: string | undefined;
  /** The entry point goes through srun (several nodes or tasks), else the batch script runs it itself. */
  srun: boolean;
}

/** `--cpus-per-task`, `cpus-per-task`, `cpus_per_task` all name the same key. */
const normalize = (key: string) => key.replace(/^-+/, '').replace(/-/g, '_');

function refuse(where: string, key: string, why: string): never {
  throw new SlurmOptionRefusedError(`${where}.${key}: ${why}`);
}

function valueOf(where: string, key: string, value: unknown): string | boolean {
  if (typeof value === 'boolean') return value;
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  if (typeof value !== 'string') refuse(where, key, 'must be a string, a number or a boolean');
  // One sbatch option value: printable text only (a newline or control character is never part of one).
  if (!value.length || value.length > 1024 || [...value].some((c) => c.charCodeAt(0) < 0x20 || c === '\u007f')) {
    refuse(where, key, 'must be 1–1024 printable characters');
  }
  return value;
}

function option(where: string, rawKey: string, value: unknown): [Key, string | boolean] {
  const key = normalize(rawKey);
  if (OWNED.has(key)) {
    refuse(where, rawKey, `Liftoff sets --${key.replace(/_/g, '-')} itself (docs/slurm.md); remove it`);
  }
  if (!(key in ALLOWED)) {
    refuse(where, rawKey, `is not an sbatch option Liftoff passes on (allowed: ${Object.keys(ALLOWED).join(', ')})`);
  }
  return [key as Key, valueOf(where, rawKey, value)];
}

/** The sbatch options of `resource_args.slurm`; throws SlurmOptionRefusedError naming the first bad key. */
export function sbatchOptions(args: unknown): SbatchOptions {
  const where = 'resource_args.slurm';
  if (args === undefined || args === null) return { argv: [], array: undefined, srun: false };
  if (typeof args !== 'object' || Array.isArray(args)) refuse('resource_args', 'slurm', 'must be an object');
  const chosen = new Map<Key, string | boolean>();
  for (const [k, v] of Object.entries(args)) {
    if (NOT_OPTIONS.has(k)) continue;
    const [key, value] = option(where, k, v);
    chosen.set(key, value);
  }
  const extra = (args as Record<string, unknown>).sbatch;
  if (extra !== undefined) {
    if (typeof extra !== 'object' || extra === null || Array.isArray(extra))
      refuse(where, 'sbatch', 'must be an object');
    for (const [k, v] of Object.entries(extra)) {
      const [key, value] = option(`${where}.sbatch`, k, v);
      if (chosen.has(key)) refuse(`${where}.sbatch`, k, `is given twice (also as ${where}.${key})`);
      chosen.set(key, value);
    }
  }
  const argv: string[] = [];
  for (const key of Object.keys(ALLOWED) as Key[]) {
    const value = chosen.get(key);
    if (value === undefined) continue;
    const flag = ALLOWED[key];
    if (key === 'requeue') {
      if (typeof value !== 'boolean') refuse(where, key, 'must be true (--requeue) or false (--no-requeue)');
      argv.push(value ? '--requeue' : '--no-requeue');
    } else if (key === 'exclusive') {
      if (value === false) continue;
      argv.push(value === true ? flag : `${flag}=${value}`);
    } else {
      if (typeof value === 'boolean') refuse(where, key, 'needs a value, not true/false');
      argv.push(`${flag}=${value}`);
    }
  }
  const count = (k: Key) => {
    const v = chosen.get(k);
    return typeof v === 'string' ? Number(/^\d+/.exec(v)?.[0] ?? 1) : 1;
  };
  return {
    argv,
    array: typeof chosen.get('array') === 'string' ? (chosen.get('array') as string) : undefined,
    srun: count('nodes') > 1 || count('ntasks') > 1 || count('ntasks_per_node') > 1,
  };
}
