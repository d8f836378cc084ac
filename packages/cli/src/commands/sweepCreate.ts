import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import {
  BadRequestError,
  PRIORITIES,
  SWEEP_PARALLEL_MAX,
  parseSweepConfigYaml,
  parseSweepJobRef,
  type Env,
  type PriorityName,
} from '@liftoff/core';
import { connect } from '../connection.js';
import { printJson } from '../output.js';
import { applySets, parsePairs } from '../runConfigFlags.js';
import { jobLaunchSpec } from './jobLaunch.js';
import { splitCommand, splitSecretEnv, uploadCode } from './launchRun.js';
import type { SweepCreateFlags } from './sweeps.js';

/**
 * `liftoff sweep create`: reads the sweep config (W&B's format; every problem reported at once, before anything is
 * uploaded), builds the trials' push as `liftoff launch` would, and creates the sweep; the server pushes the trials.
 */
export async function createSweep(file: string, flags: SweepCreateFlags, env: Env): Promise<void> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new BadRequestError(
      `${file}: cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}).`,
    );
  }
  const { config, notes } = parseSweepConfigYaml(text, file);
  const parallel = Number(flags.parallel);
  if (!Number.isInteger(parallel) || parallel < 1 || parallel > SWEEP_PARALLEL_MAX)
    throw new BadRequestError(
      `--parallel must be a whole number from 1 to ${SWEEP_PARALLEL_MAX}, got "${flags.parallel}".`,
    );
  const given = [flags.code, flags.git, flags.image, flags.job].filter(Boolean).length;
  // Without a source flag, a W&B launch-sweep file's `job` names the trials' job (the flag wins when both are given).
  const jobRef = flags.job ?? (given ? undefined : sweepJobOf(config.job, flags.entity, file));
  if (given > 1 || (!given && !jobRef))
    throw new BadRequestError(
      'Give exactly one source for the trials: --code DIR, --git URL, --image IMAGE or -j JOB (or a "job" in the config).',
    );
  if (flags.ref && !flags.git) throw new BadRequestError('--ref only applies to --git.');
  if (jobRef && flags.dockerfile)
    throw new BadRequestError(
      '--dockerfile and a job both give the build; a job version pins it (or create a new one).',
    );
  if (!config.program && !config.command && !flags.entryPoint && !flags.image && !jobRef)
    throw new BadRequestError(
      `${file} has no "program" or "command": give the trials' entry point with -E "PROGRAM ARGS" (they read their parameters from LIFTOFF_RUN_CONFIG).`,
    );
  if (flags.priority && !(flags.priority in PRIORITIES))
    throw new BadRequestError(
      `--priority must be one of ${Object.keys(PRIORITIES).join(', ')}, got "${flags.priority}".`,
    );
  for (const note of notes) process.stderr.write(`note: ${note}\n`);
  const client = await connect(flags, env);
  const rest = {
    entry_point: flags.entryPoint ? splitCommand(flags.entryPoint) : [],
    run_config: applySets(flags.config ? readBaseConfig(flags.config) : {}, flags.set),
    ...splitSecretEnv(parsePairs(flags.env, '--env')),
    ...(flags.dockerfile ? { dockerfile: flags.dockerfile } : {}),
    ...(flags.project ? { project: flags.project } : {}),
  };
  // A job's trials: its version resolved now (every trial runs that one, as `launch -j` pins it), the source and
  // entry point its; each trial's run config is checked against its schema by the server as the trial is pushed.
  const job = jobRef ? await jobLaunchSpec(client, flags.entity, jobRef, rest, false) : undefined;
  const spec = job
    ? job.spec
    : {
        ...rest,
        source: flags.image
          ? { type: 'image' as const, image: flags.image }
          : flags.git
            ? { type: 'git' as const, url: flags.git, ...(flags.ref ? { ref: flags.ref } : {}) }
            : { type: 'code' as const, archive_id: await uploadCode(client, flags.code as string, flags.entity) },
      };
  if (job) process.stderr.write(`the trials run job ${job.version.job}:${job.version.version}\n`);
  const sweep = await client.createSweep(flags.entity, {
    queue: flags.queue,
    config: config as Record<string, unknown>,
    parallel,
    ...(flags.name ? { name: flags.name } : {}),
    trial: {
      spec: spec as Record<string, unknown>,
      ...(flags.priority ? { priority: flags.priority as PriorityName } : {}),
      template_variables: parsePairs(flags.setVar, '--set-var'),
    },
  });
  if (flags.json) return printJson(sweep);
  process.stderr.write(`created sweep ${sweep.name} (${sweep.method}) on ${sweep.entity}/${sweep.queue}\n`);
  process.stdout.write(`${sweep.id}\n`);
}

/** The Liftoff job reference (`name[:alias]`) of a config's W&B `job`, which must be of the sweep's entity. */
function sweepJobOf(ref: string | undefined, entity: string, file: string): string | undefined {
  if (ref === undefined) return undefined;
  const parsed = parseSweepJobRef(ref);
  if (!parsed) throw new BadRequestError(`${file}: "job" must be [entity/[project/]]name[:alias], got "${ref}".`);
  if (parsed.entity !== undefined && parsed.entity !== entity)
    throw new BadRequestError(
      `${file}: "job" is of entity "${parsed.entity}" but the sweep is created in "${entity}": pass -e ${parsed.entity}, or -j NAME for a job of ${entity}.`,
    );
  return parsed.version ? `${parsed.name}:${parsed.version}` : parsed.name;
}

function readBaseConfig(file: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = parseYaml(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new BadRequestError(`--config ${file}: ${(e as Error).message.split('\n')[0]}`);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed))
    throw new BadRequestError(`--config ${file}: the top level must be a mapping of config keys.`);
  return parsed as Record<string, unknown>;
}
