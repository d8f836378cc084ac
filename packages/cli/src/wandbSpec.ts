import { parse as parseShell } from 'shell-quote';
import {
  PRIORITIES,
  RESOURCE_TYPES,
  WandbSpecInvalidError,
  WandbSpecKeyRefusedError,
  type PriorityName,
  type ResourceType,
} from '@liftoff/core/base';

/**
 * A W&B launch spec (what `wandb launch --config spec.json` takes; wandb-launch.md §2.1) mapped to a Liftoff push.
 * Each key W&B documents is either mapped or refused by name: nothing is dropped silently, so a spec that loads
 * means what it said. The mapping is pure (no I/O): the caller uploads a code directory or resolves a job.
 */
export type MappedSource =
  | { type: 'code'; dir: string }
  | { type: 'git'; url: string; ref?: string }
  | { type: 'image'; image: string }
  /** `job: entity/project/name:alias`: a Liftoff job of that entity (jobs.md). */
  | { type: 'job'; name: string; version?: string };

export interface MappedSpec {
  source: MappedSource;
  /** The spec's target entity (also the job's, for `job`); the queue's entity unless `-e` says otherwise. */
  entity?: string;
  entry_point?: string[];
  args: string[];
  run_config: Record<string, unknown>;
  resource?: ResourceType;
  resource_args: Record<string, Record<string, unknown>>;
  dockerfile?: string;
  name?: string;
  project?: string;
  priority?: PriorityName;
  template_variables: Record<string, string | number>;
}

/** Keys of a W&B spec Liftoff has no counterpart for, and why; each is refused by name. */
const REFUSED: Record<string, string> = {
  author: 'Liftoff records the author from the pushing API key, not from the spec.',
  builder: 'give build settings in resource_args.<resource>.builder (base_image) or in the agent config.',
  run_id: 'run ids are assigned by the Liftoff server.',
  sweep_id: 'sweeps are not part of a launch spec in Liftoff.',
  queue_entity: 'the queue is the one given with -q, of the entity given with -e.',
  python_version: 'the Python version comes from the base image (resource_args.<resource>.builder.base_image).',
  _resume_count: 'set by the W&B agent on preemption; Liftoff requeues preempted items itself.',
  _wandb_api_key: 'Liftoff does not hand W&B API keys to jobs; use --env VAR=secret:NAME.',
  additional_services: 'side resources are not supported.',
  'docker.user_id': 'containers run as the non-root user the agent chooses.',
  'overrides.artifacts': 'W&B artifacts are not supported.',
  'overrides.files': 'file overrides are not supported; put the values in overrides.run_config.',
  'overrides.working_dir': 'jobs start in their code directory.',
};
const TOP_KEYS = new Set([
  'uri',
  'job',
  'docker',
  'image_uri',
  'git',
  'entry_point',
  'overrides',
  'resource',
  'resource_args',
  'name',
  'project',
  'entity',
  'template_variables',
  'priority',
]);
const OVERRIDE_KEYS = new Set(['args', 'run_config', 'entry_point', 'dockerfile']);
const DOCKER_KEYS = new Set(['docker_image']);
const GIT_KEYS = new Set(['repo', 'version']);

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

function checkKeys(obj: Record<string, unknown>, known: Set<string>, prefix: string): void {
  for (const key of Object.keys(obj)) {
    const path = prefix ? `${prefix}.${key}` : key;
    const why = REFUSED[path];
    if (why) throw new WandbSpecKeyRefusedError(path, why);
    if (!known.has(key)) throw new WandbSpecKeyRefusedError(path, 'it is not a W&B launch spec key Liftoff knows.');
  }
}

function optString(obj: Record<string, unknown>, key: string, path = key): string | undefined {
  const v = obj[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string' || v === '') throw new WandbSpecInvalidError(`"${path}" must be a non-empty string.`);
  return v;
}

function stringList(v: unknown, path: string): string[] {
  if (!Array.isArray(v) || !v.every((a) => typeof a === 'string'))
    throw new WandbSpecInvalidError(`"${path}" must be a list of strings (as W&B requires).`);
  return v as string[];
}

/** W&B's `entry_point` is a list; a string is split like `-E` splits it (never run by a shell). */
function entryPoint(v: unknown, path: string): string[] {
  if (typeof v !== 'string') return stringList(v, path);
  const parts = parseShell(v, (name) => `$${name}`);
  if (!parts.length || !parts.every((p) => typeof p === 'string'))
    throw new WandbSpecInvalidError(`"${path}" must be a program and its arguments, without shell syntax.`);
  return parts as string[];
}

/** W&B's job reference `entity/project/name:alias` (entity and project optional). */
function parseJob(ref: string): { entity?: string; project?: string; name: string; version?: string } {
  const m = /^(?:(?:([^/:]+)\/)?([^/:]+)\/)?([^/:]+)(?::([^/:]+))?$/.exec(ref);
  if (!m) throw new WandbSpecInvalidError(`"job" must be [entity/[project/]]name[:alias], got "${ref}".`);
  const [, entity, project, name, version] = m;
  return {
    name: name as string,
    ...(entity ? { entity } : {}),
    ...(project ? { project } : {}),
    ...(version ? { version } : {}),
  };
}

function priority(v: unknown): PriorityName | undefined {
  if (v === undefined || v === null) return undefined;
  // W&B takes the names or their numbers 0 (critical) to 3 (low).
  const byNumber = Object.entries(PRIORITIES).find(([, n]) => n === v)?.[0];
  if (byNumber) return byNumber as PriorityName;
  if (typeof v === 'string' && v in PRIORITIES) return v as PriorityName;
  throw new WandbSpecInvalidError(
    `"priority" must be one of ${Object.keys(PRIORITIES).join(', ')} or 0-3, got ${JSON.stringify(v)}.`,
  );
}

/**
 * Maps a parsed spec. `isDir` tells whether a `uri` names a local directory (then its code is uploaded, as W&B's
 * `--uri DIR` does); any other `uri` is a git remote.
 */
export function mapWandbSpec(raw: unknown, isDir: (path: string) => boolean): MappedSpec {
  if (!isObject(raw)) throw new WandbSpecInvalidError('the top level must be a mapping of spec keys.');
  checkKeys(raw, TOP_KEYS, '');
  const overrides = raw.overrides ?? {};
  if (!isObject(overrides)) throw new WandbSpecInvalidError('"overrides" must be a mapping.');
  checkKeys(overrides, OVERRIDE_KEYS, 'overrides');
  const docker = raw.docker ?? {};
  if (!isObject(docker)) throw new WandbSpecInvalidError('"docker" must be a mapping.');
  checkKeys(docker, DOCKER_KEYS, 'docker');
  const git = raw.git ?? {};
  if (!isObject(git)) throw new WandbSpecInvalidError('"git" must be a mapping.');
  checkKeys(git, GIT_KEYS, 'git');

  const sources: MappedSource[] = [];
  let entity = optString(raw, 'entity');
  let project = optString(raw, 'project');
  const uri = optString(raw, 'uri');
  if (uri) {
    if (uri.startsWith('placeholder'))
      throw new WandbSpecKeyRefusedError('uri', `"${uri}" marks a W&B sweep scheduler, which Liftoff does not run.`);
    if (/^https?:\/\/([^/]*\.)?wandb\.(ai|io)\//.test(uri))
      throw new WandbSpecKeyRefusedError('uri', 'W&B run URIs need a W&B server; give a git remote or a directory.');
    const ref = optString(git, 'version', 'git.version');
    if (isDir(uri)) {
      if (ref) throw new WandbSpecInvalidError('"git.version" applies to a git uri, not a directory.');
      sources.push({ type: 'code', dir: uri });
    } else sources.push({ type: 'git', url: uri, ...(ref ? { ref } : {}) });
  } else if (git.repo !== undefined) {
    const ref = optString(git, 'version', 'git.version');
    sources.push({ type: 'git', url: optString(git, 'repo', 'git.repo') as string, ...(ref ? { ref } : {}) });
  } else if (git.version !== undefined) throw new WandbSpecInvalidError('"git.version" needs "uri" or "git.repo".');
  const job = optString(raw, 'job');
  if (job) {
    const parsed = parseJob(job);
    if (parsed.entity && entity && parsed.entity !== entity)
      throw new WandbSpecInvalidError(`"job" is of entity "${parsed.entity}" but "entity" is "${entity}".`);
    entity ??= parsed.entity;
    project ??= parsed.project;
    sources.push({ type: 'job', name: parsed.name, ...(parsed.version ? { version: parsed.version } : {}) });
  }
  const image = optString(docker, 'docker_image', 'docker.docker_image') ?? optString(raw, 'image_uri');
  if (image) sources.push({ type: 'image', image });
  if (docker.docker_image !== undefined && raw.image_uri !== undefined)
    throw new WandbSpecInvalidError('give the image once: "docker.docker_image" or "image_uri".');
  if (sources.length !== 1)
    throw new WandbSpecInvalidError(
      sources.length
        ? 'give exactly one source: "uri", "job" and "docker.docker_image"/"image_uri" exclude each other.'
        : 'no source: give "uri" (a git remote or a directory), "job", or "docker.docker_image"/"image_uri".',
    );

  const runConfig = overrides.run_config ?? {};
  if (!isObject(runConfig)) throw new WandbSpecInvalidError('"overrides.run_config" must be a mapping.');
  const resource = optString(raw, 'resource');
  if (resource !== undefined && !(RESOURCE_TYPES as readonly string[]).includes(resource))
    throw new WandbSpecKeyRefusedError('resource', `"${resource}" is not one of ${RESOURCE_TYPES.join(', ')}.`);
  const resourceArgs = raw.resource_args ?? {};
  if (!isObject(resourceArgs) || !Object.values(resourceArgs).every(isObject))
    throw new WandbSpecInvalidError('"resource_args" must be {<resource>: {...}}.');
  const templateVariables = raw.template_variables ?? {};
  if (
    !isObject(templateVariables) ||
    !Object.values(templateVariables).every((v) => typeof v === 'string' || typeof v === 'number')
  )
    throw new WandbSpecInvalidError('"template_variables" must map names to strings or numbers.');
  // overrides.entry_point replaces the command, as in W&B.
  const command =
    overrides.entry_point !== undefined
      ? entryPoint(overrides.entry_point, 'overrides.entry_point')
      : raw.entry_point !== undefined && raw.entry_point !== null
        ? entryPoint(raw.entry_point, 'entry_point')
        : undefined;
  const dockerfile = optString(overrides, 'dockerfile', 'overrides.dockerfile');
  const name = optString(raw, 'name');
  const prio = priority(raw.priority);
  return {
    source: sources[0] as MappedSource,
    ...(entity ? { entity } : {}),
    ...(command ? { entry_point: command } : {}),
    args: overrides.args === undefined ? [] : stringList(overrides.args, 'overrides.args'),
    run_config: runConfig,
    ...(resource ? { resource: resource as ResourceType } : {}),
    resource_args: resourceArgs as Record<string, Record<string, unknown>>,
    ...(dockerfile ? { dockerfile } : {}),
    ...(name ? { name } : {}),
    // W&B lower-cases the project (_project_spec.py:L120).
    ...(project ? { project: project.toLowerCase() } : {}),
    ...(prio ? { priority: prio } : {}),
    template_variables: templateVariables as Record<string, string | number>,
  };
}

/** Keys that mark a W&B launch spec passed to `-c` (which is the run config in Liftoff); the first found, if any. */
export function specLookalikeKey(config: Record<string, unknown>): string | undefined {
  const overrides = config.overrides;
  if (isObject(overrides) && Object.keys(overrides).some((k) => OVERRIDE_KEYS.has(k))) return 'overrides';
  if (isObject(config.docker) && 'docker_image' in config.docker) return 'docker.docker_image';
  if (isObject(config.resource_args)) return 'resource_args';
  // A run config may have a key "uri" or "name"; two spec keys together are a spec.
  const keys = ['uri', 'job', 'image_uri', 'entry_point', 'resource', 'entity', 'project', 'template_variables'];
  const found = keys.filter((k) => k in config);
  return found.length >= 2 ? found[0] : undefined;
}
