import { readFileSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { parse as parseShell } from 'shell-quote';
import { create as createTar } from 'tar';
import { parse as parseYaml } from 'yaml';
import {
  BadRequestError,
  LiftoffError,
  PayloadTooLargeError,
  PRIORITIES,
  PUSH_BATCH_MAX,
  RESOURCE_TYPES,
  isTerminal,
  type Env,
  type LaunchSpecInput,
  type LiftoffClient,
  type PriorityName,
  type PushBody,
  type ResourceType,
  RunConfigLooksLikeSpecError,
} from '@liftoff/core';
import { codeFilter } from '../codeIgnore.js';
import { connect } from '../connection.js';
import { applySets, parsePairs } from '../runConfigFlags.js';
import { uploadProgress } from '../uploadProgress.js';
import { specLookalikeKey } from '../wandbSpec.js';
import { readWandbSpec, specEntity, specFromMapped } from './launchSpecFile.js';
import { assertNoSourceFlags, jobLaunchSpec } from './jobLaunch.js';
import { printJson, writeLog } from '../output.js';

/** `liftoff launch`'s work, loaded by its action (commands/launch.ts holds the flags and help). */
export interface LaunchFlags {
  caFile?: string;
  queue: string;
  entity: string;
  code?: string;
  git?: string;
  ref?: string;
  image?: string;
  dockerfile?: string;
  entryPoint?: string;
  config?: string;
  set: string[];
  sweep: string[];
  env: string[];
  setVar: string[];
  priority?: string;
  resource?: string;
  resourceArgs?: string;
  name?: string;
  project?: string;
  wait?: boolean;
  json?: boolean;
  url?: string;
  /** A W&B launch spec file (launchSpecFile.ts). */
  spec?: string;
  /** Whether -e was given (else the spec's entity, or `default`). */
  entityGiven?: boolean;
  /** Opt in to the environment W&B's agent sets (WANDB_CONFIG, ...). */
  wandbEnv?: boolean;
  /** `NAME[:vN|:alias]` of a job of the entity (jobLaunch.ts). */
  job?: string;
}

export async function runLaunch(args: string[], flags: LaunchFlags, env: Env): Promise<void> {
  const client = await connect({ url: flags.url, caFile: flags.caFile }, env);
  let body: PushBody;
  if (flags.spec) {
    body = await pushFromWandbSpec(client, args, flags);
  } else {
    if (flags.config) refuseSpecLookalike(flags.config, readConfigFile(flags.config));
    const spec = await buildSpec(client, args, flags, env);
    if (flags.sweep.length) return pushSweep(client, spec, flags);
    body = {
      spec,
      ...(flags.priority ? { priority: flags.priority as PriorityName } : {}),
      // The server checks each value against the queue's schema (and casts numbers); nothing is substituted here.
      template_variables: parsePairs(flags.setVar, '--set-var'),
    };
  }
  const item = await client.push(flags.entity, flags.queue, body);
  if (flags.json && !flags.wait) return printJson(item);
  process.stderr.write(
    `queued item ${item.id} on ${item.entity}/${item.queue}${item.position ? ` (position ${item.position})` : ''}\n`,
  );
  if (!flags.wait) {
    process.stdout.write(`${item.id}\n`);
    return;
  }
  process.exitCode = await waitForItem(client, item.id);
}

/**
 * `--sweep lr=0.1,0.01 --sweep bs=32,64`: one item per combination of the values (here 4), each with the keys set
 * in its run config as `--set` sets them (values parse as JSON when they can), pushed in one batched request, so
 * either all are queued or none. The code archive is uploaded once for all of them.
 */
async function pushSweep(client: LiftoffClient, spec: LaunchSpecInput, flags: LaunchFlags): Promise<void> {
  if (flags.wait)
    throw new BadRequestError('--wait follows one item; drop it with --sweep (follow each with "liftoff runs logs").');
  let combos: string[][] = [[]];
  for (const [key, values] of Object.entries(parsePairs(flags.sweep, '--sweep'))) {
    const list = values.split(',');
    if (list.some((v) => v === '')) throw new BadRequestError(`--sweep ${key}=${values}: a value is empty.`);
    combos = combos.flatMap((c) => list.map((v) => [...c, `${key}=${v}`]));
  }
  if (combos.length > PUSH_BATCH_MAX)
    throw new BadRequestError(
      `--sweep makes ${combos.length} items, more than the ${PUSH_BATCH_MAX} one push may hold; sweep fewer values at once.`,
    );
  const { ids } = await client.pushBatch(flags.entity, flags.queue, {
    items: combos.map((combo) => ({
      spec: { ...spec, run_config: runConfig({ ...flags, set: [...flags.set, ...combo] }) },
      ...(flags.priority ? { priority: flags.priority as PriorityName } : {}),
      template_variables: parsePairs(flags.setVar, '--set-var'),
    })),
  });
  if (flags.json) return printJson({ ids });
  process.stderr.write(`queued ${ids.length} items on ${flags.entity}/${flags.queue}\n`);
  process.stdout.write(ids.map((id) => `${id}\n`).join(''));
}

async function buildSpec(
  client: LiftoffClient,
  args: string[],
  flags: LaunchFlags,
  env: Env,
): Promise<LaunchSpecInput> {
  const image = flags.image ?? (!flags.code && !flags.git ? env.LIFTOFF_DOCKER || undefined : undefined);
  if (!flags.job && [flags.code, flags.git, image].filter(Boolean).length !== 1) {
    throw new BadRequestError(
      'Give exactly one source: --code DIR, --git URL or --image IMAGE (or set LIFTOFF_DOCKER).',
    );
  }
  if (flags.ref && !flags.git) throw new BadRequestError('--ref only applies to --git.');
  if (flags.dockerfile && image)
    throw new BadRequestError('--dockerfile needs code to build (--code or --git), not an image.');
  if (!flags.entryPoint && !image && !flags.job)
    throw new BadRequestError('--entry-point (-E) is required for --code and --git jobs.');
  if (flags.priority && !(flags.priority in PRIORITIES)) {
    throw new BadRequestError(
      `--priority must be one of ${Object.keys(PRIORITIES).join(', ')}, got "${flags.priority}".`,
    );
  }
  if (flags.resource && !(RESOURCE_TYPES as readonly string[]).includes(flags.resource)) {
    throw new BadRequestError(`--resource must be one of ${RESOURCE_TYPES.join(', ')}, got "${flags.resource}".`);
  }
  if (flags.job) {
    assertNoSourceFlags(flags as unknown as Record<string, unknown>);
    const sweeping = flags.sweep.length > 0;
    return (await jobLaunchSpec(client, flags.entity, flags.job, await specRest(client, args, flags), !sweeping)).spec;
  }
  const source = image
    ? { type: 'image' as const, image }
    : flags.git
      ? { type: 'git' as const, url: flags.git, ...(flags.ref ? { ref: flags.ref } : {}) }
      : {
          type: 'code' as const,
          archive_id: await uploadCode(client, flags.code as string, flags.entity),
        };
  return {
    source,
    ...(flags.dockerfile ? { dockerfile: flags.dockerfile } : {}),
    ...(await specRest(client, args, flags)),
  };
}

/** Everything of the spec but its source: the same for a one-off push and a launch of a job. */
async function specRest(client: LiftoffClient, args: string[], flags: LaunchFlags) {
  return {
    entry_point: flags.entryPoint ? splitCommand(flags.entryPoint) : [],
    args,
    run_config: runConfig(flags),
    ...splitSecretEnv(parsePairs(flags.env, '--env')),
    ...(flags.resource ? { resource: flags.resource as ResourceType } : {}),
    resource_args: flags.resourceArgs
      ? resourceArgs(flags, flags.resource ?? (await client.getQueue(flags.entity, flags.queue)).resource)
      : {},
    ...(flags.name ? { name: flags.name } : {}),
    ...(flags.project ? { project: flags.project } : {}),
    ...(flags.wandbEnv ? { wandb_env: true } : {}),
  };
}

export function splitCommand(command: string): string[] {
  // Variables are not ours to expand: $HOME stays $HOME for the job (or the shell it starts) to read.
  const parts = parseShell(command, (name) => `$${name}`);
  if (!parts.length) throw new BadRequestError('--entry-point is empty.');
  return parts.map((p) => {
    if (typeof p !== 'string') {
      throw new BadRequestError(
        `--entry-point "${command}" contains shell syntax (${JSON.stringify(p)}); it is run without a shell, so give the program and its arguments only.`,
      );
    }
    return p;
  });
}

/** Packs and uploads `--code DIR`; a refusal for its size says how big the archive was and how to make it smaller. */
export async function uploadCode(client: LiftoffClient, dir: string, entity: string): Promise<string> {
  const archive = await packDirectory(dir);
  const progress = uploadProgress(`the code archive of ${dir}`, archive.length);
  try {
    return (await client.uploadArchive(archive, entity, progress && ((sent) => progress(sent)))).id;
  } catch (e) {
    if (!(e instanceof LiftoffError) || e.code !== 'PAYLOAD_TOO_LARGE') throw e;
    const mib = (archive.length / 1024 / 1024).toFixed(1);
    throw new PayloadTooLargeError(
      `${e.message} The archive of ${dir} is ${mib} MiB packed. Leave data and checkpoints out with a .liftoffignore ` +
        `(or .gitignore) in the directory, same syntax as .gitignore, e.g. "data/" or "*.ckpt".`,
    );
  }
}

/**
 * A .tar.gz of `dir` for `--code`, without what codeIgnore.ts leaves out (.git, node_modules, virtualenvs, and
 * whatever .gitignore and .liftoffignore files exclude).
 */
export async function packDirectory(dir: string): Promise<Buffer> {
  const root = resolve(dir);
  let isDir = false;
  try {
    isDir = statSync(root).isDirectory();
  } catch {
    isDir = false;
  }
  if (!isDir) throw new BadRequestError(`--code ${dir}: not a directory.`);
  const skip = codeFilter(root);
  const chunks: Buffer[] = [];
  const stream = createTar(
    {
      gzip: true,
      cwd: root,
      portable: true,
      filter: (path, stat) => !skip(path, 'isDirectory' in stat ? stat.isDirectory() : stat.type === 'Directory'),
    },
    ['.'],
  );
  for await (const chunk of stream as AsyncIterable<Buffer>) chunks.push(chunk);
  return Buffer.concat(chunks);
}

function readConfigFile(file: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = parseYaml(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new BadRequestError(`--config ${file}: ${(e as Error).message.split('\n')[0]}`);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new BadRequestError(`--config ${file}: the top level must be a mapping of config keys.`);
  }
  return parsed as Record<string, unknown>;
}

/** `-c` is the run config in Liftoff but the launch spec in W&B: a file that looks like a spec is refused. */
function refuseSpecLookalike(file: string, config: Record<string, unknown>): void {
  const key = specLookalikeKey(config);
  if (key) throw new RunConfigLooksLikeSpecError(file, key);
}

function runConfig(flags: LaunchFlags): Record<string, unknown> {
  return applySets(flags.config ? readConfigFile(flags.config) : {}, flags.set);
}

/** `--spec FILE`: a W&B launch spec mapped to a push (wandbSpec.ts); --set, --set-var and --env still apply. */
async function pushFromWandbSpec(client: LiftoffClient, args: string[], flags: LaunchFlags): Promise<PushBody> {
  const mapped = readWandbSpec(flags.spec as string, flags as unknown as Record<string, unknown>, args);
  flags.entity = specEntity(mapped, flags.entity, flags.entityGiven ?? true);
  const mappedSpec = await specFromMapped(client, mapped, flags.entity, uploadCode);
  const rest = {
    ...mappedSpec,
    run_config: applySets(mappedSpec.run_config ?? {}, flags.set),
    ...splitSecretEnv(parsePairs(flags.env, '--env')),
  };
  const src = mapped.source;
  const spec =
    src.type === 'job'
      ? (await jobLaunchSpec(client, flags.entity, `${src.name}${src.version ? `:${src.version}` : ''}`, rest)).spec
      : (rest as LaunchSpecInput);
  return {
    spec,
    ...(mapped.priority ? { priority: mapped.priority } : {}),
    template_variables: { ...mapped.template_variables, ...parsePairs(flags.setVar, '--set-var') },
  };
}

/**
 * `--env NAME=secret:SECRET` refers to a secret of the entity instead of giving a value: it goes to the spec's
 * `secret_env`, which holds names only. Any other value is the variable's literal value.
 */
export function splitSecretEnv(pairs: Record<string, string>): {
  env: Record<string, string>;
  secret_env: Record<string, string>;
} {
  const env: Record<string, string> = {};
  const secretEnv: Record<string, string> = {};
  for (const [k, v] of Object.entries(pairs)) {
    if (v.startsWith('secret:')) secretEnv[k] = v.slice('secret:'.length);
    else env[k] = v;
  }
  return { env, secret_env: secretEnv };
}

/** `--resource-args` given as the resource's own object applies to --resource, else to the queue's resource. */
function resourceArgs(flags: LaunchFlags, queueResource: string): Record<string, Record<string, unknown>> {
  if (!flags.resourceArgs) return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(flags.resourceArgs);
  } catch (e) {
    throw new BadRequestError(`--resource-args is not valid JSON: ${(e as Error).message}`);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new BadRequestError('--resource-args must be a JSON object.');
  }
  const obj = parsed as Record<string, unknown>;
  const keyed =
    Object.keys(obj).length > 0 && Object.keys(obj).every((k) => (RESOURCE_TYPES as readonly string[]).includes(k));
  if (keyed) return obj as Record<string, Record<string, unknown>>;
  return { [flags.resource ?? queueResource]: obj };
}

/**
 * Waits for the item's run, streams its logs, and returns the exit status to exit with. A preempted or lost run is
 * not the end when its item is requeued, so this waits for the next run and follows it too.
 */
export async function waitForItem(client: LiftoffClient, itemId: string): Promise<number> {
  let item = await client.getItem(itemId);
  let announced = '';
  let preempted: string | null = null;
  for (;;) {
    while (!item.run_id || item.run_id === preempted) {
      if (isTerminal(item.state)) {
        process.stderr.write(`item ${itemId} ended ${item.state} ${preempted ? 'after' : 'before'} it started\n`);
        return 1;
      }
      const status =
        item.state === 'pending'
          ? `pending (position ${item.position ?? '?'}): ${item.pending_reason?.message ?? ''}`
          : item.state;
      if (status !== announced) process.stderr.write(`item ${itemId}: ${status}\n`);
      announced = status;
      await new Promise((r) => setTimeout(r, 300));
      item = await client.getItem(itemId);
    }
    process.stderr.write(`run ${item.run_id} started\n`);
    const run = await client.followLogs(item.run_id, writeLog);
    const detail =
      (run.status === 'failed' || run.status === 'preempted' || run.status === 'lost') && run.error_message
        ? `: ${run.error_message}`
        : '';
    const stage = run.status === 'failed' && detail ? ` (stage ${run.error_stage ?? '?'})` : '';
    process.stderr.write(
      `run ${run.id} ${run.status}${run.exit_code !== null ? ` with exit code ${run.exit_code}` : ''}${detail}${stage}\n`,
    );
    if (run.status !== 'preempted' && run.status !== 'lost') {
      if (run.status === 'finished') return 0;
      if (run.exit_code !== null && run.exit_code > 0 && run.exit_code < 256) return run.exit_code;
      return 1;
    }
    preempted = run.id;
    item = await client.getItem(itemId);
  }
}
