import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import {
  BadRequestError,
  PRIORITIES,
  SWEEP_PARALLEL_MAX,
  parseSweepConfigYaml,
  type Env,
  type PriorityName,
} from '@liftoff/core';
import { connect } from '../connection.js';
import { printJson } from '../output.js';
import { applySets, parsePairs } from '../runConfigFlags.js';
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
  if ([flags.code, flags.git, flags.image].filter(Boolean).length !== 1)
    throw new BadRequestError('Give exactly one source for the trials: --code DIR, --git URL or --image IMAGE.');
  if (flags.ref && !flags.git) throw new BadRequestError('--ref only applies to --git.');
  if (!config.program && !config.command && !flags.entryPoint && !flags.image)
    throw new BadRequestError(
      `${file} has no "program" or "command": give the trials' entry point with -E "PROGRAM ARGS" (they read their parameters from LIFTOFF_RUN_CONFIG).`,
    );
  if (flags.priority && !(flags.priority in PRIORITIES))
    throw new BadRequestError(
      `--priority must be one of ${Object.keys(PRIORITIES).join(', ')}, got "${flags.priority}".`,
    );
  for (const note of notes) process.stderr.write(`note: ${note}\n`);
  const client = await connect(flags, env);
  const source = flags.image
    ? { type: 'image' as const, image: flags.image }
    : flags.git
      ? { type: 'git' as const, url: flags.git, ...(flags.ref ? { ref: flags.ref } : {}) }
      : { type: 'code' as const, archive_id: await uploadCode(client, flags.code as string, flags.entity) };
  const sweep = await client.createSweep(flags.entity, {
    queue: flags.queue,
    config: config as Record<string, unknown>,
    parallel,
    ...(flags.name ? { name: flags.name } : {}),
    trial: {
      spec: {
        source,
        entry_point: flags.entryPoint ? splitCommand(flags.entryPoint) : [],
        run_config: applySets(flags.config ? readBaseConfig(flags.config) : {}, flags.set),
        ...splitSecretEnv(parsePairs(flags.env, '--env')),
        ...(flags.dockerfile ? { dockerfile: flags.dockerfile } : {}),
        ...(flags.project ? { project: flags.project } : {}),
      },
      ...(flags.priority ? { priority: flags.priority as PriorityName } : {}),
      template_variables: parsePairs(flags.setVar, '--set-var'),
    },
  });
  if (flags.json) return printJson(sweep);
  process.stderr.write(`created sweep ${sweep.name} (${sweep.method}) on ${sweep.entity}/${sweep.queue}\n`);
  process.stdout.write(`${sweep.id}\n`);
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
