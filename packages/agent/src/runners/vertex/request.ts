import { createHash } from 'node:crypto';
import { RunnerError } from '@liftoff/core';
import { MESSAGE_FIELDS, NESTED, camel } from './fields.js';

/** Labels Liftoff sets itself; reconcile and the sweep trust them, so a job may not set them. */
export const LABEL_RUN = 'liftoff-run-id';
export const LABEL_AGENT = 'liftoff-agent';

/** W&B's `resource_args.vertex` sections and the keys each may hold (either spelling; snake_case is W&B's). */
const SPEC_KEYS = ['worker_pool_specs', 'staging_bucket', 'base_output_dir', 'encryption_spec_key_name', 'labels'];
const RUN_KEYS = [
  'timeout',
  'restart_job_on_worker_restart',
  'strategy',
  'max_wait_duration',
  'disable_retries',
  'service_account',
  'network',
  'enable_web_access',
  'tensorboard',
  'experiment',
  'experiment_run',
];
/** W&B's keys that the agent decides here, each with where it comes from instead. */
const REFUSED: Record<string, string> = {
  project: 'the project comes from the agent config (environment.project)',
  region: 'the region comes from the agent config (environment.region)',
  location: 'the region comes from the agent config (environment.region)',
};

const LABEL_KEY = /^[a-z][a-z0-9_-]{0,62}$/;
const LABEL_VALUE = /^[a-z0-9_-]{0,63}$/;

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const toSnake = (s: string) => s.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

export interface JobRequestContext {
  runId: string;
  agentId: string;
  /** The run's name (display name); the run id when the spec has none. */
  displayName: string;
  /** The built (or the job's own) image, used by every pool without an image_uri; absent when nothing was built. */
  image: string | undefined;
  entryPoint: readonly string[];
  args: readonly string[];
  runEnv: Readonly<Record<string, string>>;
}

/**
 * A Vertex label value for the agent's id: as is when it is one already (lower case, digits, `_`, `-`, at most 63),
 * else a lowered, cleaned prefix plus 8 hex digits of its hash, so that two agent names never share a label.
 */
export function agentLabel(agentId: string): string {
  if (LABEL_VALUE.test(agentId) && agentId.length) return agentId;
  const clean = agentId
    .toLowerCase()
    .replace(/[^a-z0-9_-]+/g, '-')
    .slice(0, 54);
  return `${clean}-${createHash('sha256').update(agentId).digest('hex').slice(0, 8)}`;
}

/** `resource_args.vertex` (W&B's `{spec, run}`) → one section's keys in snake_case, refusing unknown ones by name. */
function section(given: unknown, name: 'spec' | 'run', allowed: readonly string[]): Obj {
  if (given === undefined || given === null) return {};
  if (!isObj(given)) throw new RunnerError(`resource_args.vertex.${name} must be a map.`);
  const out: Obj = {};
  for (const [key, value] of Object.entries(given)) {
    if (value === null || value === undefined) continue;
    const k = toSnake(key);
    const why = REFUSED[k];
    if (why) throw new RunnerError(`resource_args.vertex.${name}.${key} is refused: ${why}.`);
    if (!allowed.includes(k)) {
      throw new RunnerError(
        `resource_args.vertex.${name}.${key} is not a key Liftoff knows (accepted: ${allowed.join(', ')}); see docs/vertex.md.`,
      );
    }
    if (k in out) throw new RunnerError(`resource_args.vertex.${name} sets ${k} twice (${key}).`);
    out[k] = value;
  }
  return out;
}

/** Unknown keys of a pool (and the messages inside it the runner knows), by their path; both spellings accepted. */
function checkFields(value: unknown, message: string, path: string): void {
  if (!isObj(value)) throw new RunnerError(`${path} must be a map.`);
  const fields = MESSAGE_FIELDS[message] ?? [];
  for (const [key, v] of Object.entries(value)) {
    const field = camel(key);
    if (!fields.includes(field)) {
      throw new RunnerError(
        `${path}.${key} is not a field of Vertex AI's ${message} (fields: ${fields.map(toSnake).join(', ')}).`,
      );
    }
    const nested = NESTED[message]?.[field];
    if (nested && v !== null && v !== undefined) checkFields(v, nested, `${path}.${key}`);
  }
}

/** The value under either spelling of `snakeKey` (W&B's snake_case or proto3 JSON's lowerCamelCase). */
function pick(o: Obj, snakeKey: string): { key: string; value: unknown } | undefined {
  for (const key of [snakeKey, camel(snakeKey)])
    if (o[key] !== undefined && o[key] !== null) return { key, value: o[key] };
  return undefined;
}

/** A Duration as proto3 JSON wants it: seconds (W&B's int `timeout`) → "<n>s"; "<n>s" kept; anything else refused. */
function duration(v: unknown, path: string): string {
  if (typeof v === 'number' && Number.isFinite(v) && v > 0) return `${v}s`;
  if (typeof v === 'string' && /^\d+(\.\d{1,9})?s$/.test(v)) return v;
  throw new RunnerError(`${path} must be a number of seconds or a duration like "3600s" (got ${JSON.stringify(v)}).`);
}

/**
 * `resource_args.vertex` → the CustomJob body, in snake_case as W&B writes it (Vertex's JSON transcoding accepts
 * both spellings, so the pools go as given). Per pool: the built image when it has no image_uri; command = the
 * job's entry point and args = its args when it has them; the run's environment appended to the pool's env.
 * Everything here is local: a refused job makes no Google call.
 */
export function buildJob(resourceArgs: Obj | undefined, ctx: JobRequestContext): Obj {
  const top = resourceArgs ?? {};
  for (const key of Object.keys(top)) {
    if (key !== 'spec' && key !== 'run' && key !== 'builder') {
      throw new RunnerError(
        `resource_args.vertex.${key} is not a section Liftoff knows (spec, run); see docs/vertex.md.`,
      );
    }
  }
  const spec = section(top.spec, 'spec', SPEC_KEYS);
  const run = section(top.run, 'run', RUN_KEYS);
  const pools = spec.worker_pool_specs;
  if (!Array.isArray(pools) || pools.length === 0) {
    throw new RunnerError(
      'resource_args.vertex.spec.worker_pool_specs is missing: give at least one worker pool (docs/vertex.md).',
    );
  }
  const env = Object.entries(ctx.runEnv).map(([name, value]) => ({ name, value }));
  const workerPools = pools.map((pool: unknown, i) => {
    const at = `resource_args.vertex.spec.worker_pool_specs[${i}]`;
    checkFields(pool, 'WorkerPoolSpec', at);
    const p = { ...(pool as Obj) };
    if (pick(p, 'python_package_spec')) {
      throw new RunnerError(
        `${at}.python_package_spec is not supported: Liftoff runs the job's container (give container_spec).`,
      );
    }
    const found = pick(p, 'container_spec');
    if (!found || !isObj(found.value))
      throw new RunnerError(`${at}.container_spec is missing: every pool runs a container.`);
    delete p[found.key];
    const c = { ...found.value };
    const uri = pick(c, 'image_uri');
    if (!uri) {
      if (!ctx.image) {
        throw new RunnerError(
          `${at}.container_spec.image_uri is missing and the job built no image: set it, or give the job code or an image to build.`,
        );
      }
      c.image_uri = ctx.image;
    } else if (typeof uri.value !== 'string' || !uri.value) {
      throw new RunnerError(`${at}.container_spec.${uri.key} must be an image reference.`);
    }
    if (ctx.entryPoint.length) {
      c.command = [...ctx.entryPoint];
    }
    if (ctx.args.length) c.args = [...ctx.args];
    const own: unknown = c.env ?? [];
    if (!Array.isArray(own)) throw new RunnerError(`${at}.container_spec.env must be a list of {name, value}.`);
    for (const [j, e] of own.entries()) {
      if (!isObj(e) || typeof e.name !== 'string' || typeof e.value !== 'string') {
        throw new RunnerError(`${at}.container_spec.env[${j}] must be {name: string, value: string}.`);
      }
      if (e.name.startsWith('LIFTOFF_')) {
        throw new RunnerError(
          `${at}.container_spec.env[${j}] (${e.name}) is refused: LIFTOFF_* variables are Liftoff's.`,
        );
      }
    }
    c.env = [...(own as Array<{ name: string; value: string }>), ...env];
    return { ...p, container_spec: c };
  });
  const labels = jobLabels(spec.labels, ctx);
  const staging = spec.staging_bucket;
  const outputDir =
    spec.base_output_dir ??
    (typeof staging === 'string' ? `${staging.replace(/\/+$/, '')}/liftoff/${ctx.runId}` : undefined);
  if (typeof outputDir !== 'string' || !/^gs:\/\/[a-z0-9][a-z0-9._-]{1,221}(\/|$)/.test(outputDir)) {
    throw new RunnerError(
      outputDir === undefined
        ? "resource_args.vertex.spec.staging_bucket (or base_output_dir) is missing: give a gs:// bucket for the job's outputs."
        : `resource_args.vertex.spec.${spec.base_output_dir ? 'base_output_dir' : 'staging_bucket'} must be a gs:// URI (got ${JSON.stringify(outputDir)}).`,
    );
  }
  const scheduling: Obj = {};
  if (run.timeout !== undefined) scheduling.timeout = duration(run.timeout, 'resource_args.vertex.run.timeout');
  if (run.max_wait_duration !== undefined) {
    scheduling.max_wait_duration = duration(run.max_wait_duration, 'resource_args.vertex.run.max_wait_duration');
  }
  for (const k of ['restart_job_on_worker_restart', 'strategy', 'disable_retries'] as const) {
    if (run[k] !== undefined) scheduling[k] = run[k];
  }
  const jobSpec: Obj = { worker_pool_specs: workerPools, base_output_directory: { output_uri_prefix: outputDir } };
  for (const k of [
    'service_account',
    'network',
    'enable_web_access',
    'tensorboard',
    'experiment',
    'experiment_run',
  ] as const) {
    if (run[k] !== undefined) jobSpec[k] = run[k];
  }
  if (Object.keys(scheduling).length) jobSpec.scheduling = scheduling;
  return {
    display_name: ctx.displayName.slice(0, 128),
    labels,
    ...(spec.encryption_spec_key_name ? { encryption_spec: { kms_key_name: spec.encryption_spec_key_name } } : {}),
    job_spec: jobSpec,
  };
}

function jobLabels(given: unknown, ctx: JobRequestContext): Record<string, string> {
  if (given !== undefined && !isObj(given))
    throw new RunnerError('resource_args.vertex.spec.labels must be a map of strings.');
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(given ?? {})) {
    if (k === LABEL_RUN || k === LABEL_AGENT) {
      throw new RunnerError(`resource_args.vertex.spec.labels.${k} is refused: the label is set by Liftoff.`);
    }
    if (typeof v !== 'string' || !LABEL_KEY.test(k) || !LABEL_VALUE.test(v)) {
      throw new RunnerError(
        `resource_args.vertex.spec.labels.${k} is not a valid Vertex label: keys start with a lower-case letter, keys and values hold only lower-case letters, digits, _ and -, at most 63 characters.`,
      );
    }
    out[k] = v;
  }
  if (Object.keys(out).length > 62)
    throw new RunnerError(
      'resource_args.vertex.spec.labels has more than 62 labels (Vertex allows 64, Liftoff sets 2).',
    );
  out[LABEL_RUN] = ctx.runId;
  out[LABEL_AGENT] = agentLabel(ctx.agentId);
  return out;
}
