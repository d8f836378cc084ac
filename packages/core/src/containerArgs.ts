import { z } from 'zod';
import { BadRequestError } from './errors.js';
import { assertBaseImage } from './launchSpec.js';

/**
 * `resource_args.local-container`: the docker-run options a job may set, through an allow-list. Anything that
 * widens what the container can reach on the host (privileged, volumes, network, capabilities, devices, ...) is
 * refused by name, as is any key not listed, so a queue config cannot be used to escape the container.
 */
const REFUSED: Record<string, string> = {
  privileged: 'privileged containers can take over the host',
  volumes: 'host volumes expose the host filesystem',
  volume: 'host volumes expose the host filesystem',
  mount: 'host mounts expose the host filesystem',
  mounts: 'host mounts expose the host filesystem',
  network: 'the container network is chosen by the agent',
  net: 'the container network is chosen by the agent',
  'cap-add': 'added capabilities widen what the container may do',
  devices: 'host devices are not handed to jobs (use gpus)',
  device: 'host devices are not handed to jobs (use gpus)',
  'security-opt': 'security options can disable confinement',
  pid: 'sharing the host pid namespace exposes host processes',
  ipc: 'sharing the host ipc namespace exposes host memory',
  userns: 'the user namespace is chosen by the agent',
  'volumes-from': 'volumes of other containers are not shared with jobs',
};

const Size = z.union([
  z.number().int().positive(),
  z.string().regex(/^\d+(\.\d+)?\s*[bkmgt]?b?$/i, 'must be a size such as 512m or 2g'),
]);

export const LocalContainerArgs = z
  .object({
    cpus: z.number().positive().optional(),
    memory: Size.optional(),
    'memory-swap': Size.optional(),
    gpus: z.union([z.literal('all'), z.number().int().positive()]).optional(),
    env: z.union([z.record(z.string(), z.string()), z.array(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*=/))]).optional(),
    'shm-size': Size.optional(),
    ulimit: z
      .record(z.string(), z.union([z.number().int(), z.object({ soft: z.number().int(), hard: z.number().int() })]))
      .optional(),
    workdir: z.string().startsWith('/').optional(),
    name: z
      .string()
      .regex(/^[a-zA-Z0-9][a-zA-Z0-9_.-]+$/)
      .optional(),
    'pids-limit': z.number().int().positive().optional(),
    /**
     * An init process as PID 1 (docker run --init; default true in Liftoff, false in Docker): it forwards SIGTERM to
     * the job, which as PID 1 itself would ignore it and be killed at the end of the grace period.
     */
    init: z.boolean().optional(),
    platform: z
      .string()
      .regex(/^[a-z0-9]+\/[a-z0-9_]+(\/[a-z0-9]+)?$/)
      .optional(),
    user: z
      .string()
      .regex(/^[a-z0-9_-]+(:[a-z0-9_-]+)?$/i)
      .optional(),
    hostname: z
      .string()
      .regex(/^[a-zA-Z0-9.-]+$/)
      .optional(),
    labels: z.record(z.string(), z.string()).optional(),
    /** Base image of generated Dockerfiles (W&B: resource_args.<resource>.builder.base_image). */
    builder: z
      .object({
        base_image: z
          .string()
          .superRefine((v, ctx) => {
            try {
              assertBaseImage(v, 'base image');
            } catch (e) {
              ctx.addIssue({ code: 'custom', message: (e as Error).message });
            }
          })
          .optional(),
      })
      .strict()
      .optional(),
  })
  .strict();
export type LocalContainerArgs = z.infer<typeof LocalContainerArgs>;

/** One problem of a config: the dotted field it is about and what is wrong there (worded for any client). */
export interface ConfigProblem {
  field: string;
  message: string;
}

/** Every problem of local-container resource args (refused keys, unknown keys, bad values), in key order. */
export function localContainerArgsProblems(raw: Record<string, unknown> | undefined): ConfigProblem[] {
  const args = raw ?? {};
  const at = (path: readonly PropertyKey[]) => ['resource_args', 'local-container', ...path.map(String)].join('.');
  const problems: ConfigProblem[] = [];
  for (const key of Object.keys(args)) {
    const why = REFUSED[key];
    if (why) problems.push({ field: at([key]), message: `is refused: ${why}` });
  }
  const refused = (key: PropertyKey) => typeof key === 'string' && key in REFUSED;
  const parsed = LocalContainerArgs.safeParse(args);
  for (const issue of parsed.success ? [] : parsed.error.issues) {
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys.filter((k) => !(issue.path.length === 0 && refused(k)))) {
        problems.push({
          field: at([...issue.path, key]),
          message:
            issue.path.length === 0
              ? `is not an allowed option (allowed: ${Object.keys(LocalContainerArgs.shape).join(', ')})`
              : 'is not an allowed option',
        });
      }
    } else problems.push({ field: at(issue.path), message: issue.message });
  }
  return problems;
}

/** Validates local-container resource args, naming the first offending key. */
export function parseLocalContainerArgs(raw: Record<string, unknown> | undefined): LocalContainerArgs {
  const first = localContainerArgsProblems(raw)[0];
  if (first) {
    const sep = /^is (refused|not an allowed)/.test(first.message) ? ' ' : ': ';
    throw new BadRequestError(`${first.field}${sep}${first.message}.`);
  }
  return LocalContainerArgs.parse(raw ?? {});
}

/** "512m" → bytes. */
export function parseSize(size: string | number): number {
  if (typeof size === 'number') return size;
  const m = /^(\d+(?:\.\d+)?)\s*([bkmgt]?)b?$/i.exec(size.trim());
  if (!m) throw new BadRequestError(`"${size}" is not a size such as 512m or 2g.`);
  const unit = { '': 1, b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 }[(m[2] ?? '').toLowerCase()] ?? 1;
  return Math.round(Number(m[1]) * unit);
}
