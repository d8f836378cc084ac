import type { Env } from '@liftoff/core';

/** Where a job runs: a process on the agent host gets a minimal base; a container or pod keeps its image's. */
export type JobPlace = 'process' | 'container';

/** Agent variables every local process gets (when the agent has them): enough to find programs and speak UTF-8. */
const PROCESS_BASE = ['PATH', 'LANG', 'TZ'] as const;
const DEFAULT_PATH = '/usr/local/bin:/usr/bin:/bin';

export interface JobEnvInput {
  /** The agent's own environment: read only for the base names and those listed in `job-env`. */
  agentEnv: Env;
  /** The agent config's `job-env`: more agent variables operators pass on on purpose. */
  allowed: readonly string[];
  /** The spec's `env`. */
  specEnv: Readonly<Record<string, string>>;
  /** The values of the spec's `secret_env`, fetched for this run from the server (never in the spec itself). */
  secretEnv?: Readonly<Record<string, string>>;
  /** LIFTOFF_RUN_ID and friends; nothing may override them. */
  runVars: Readonly<Record<string, string>>;
  place: JobPlace;
  /** Local processes: HOME (their work dir) and, for a user of its own, USER/LOGNAME. */
  home?: string;
  user?: string;
}

/**
 * The one place a job's environment is computed, for every runner. It is built from an allow-list and never from
 * the agent's whole environment: an agent holds secrets (its API key, cloud credentials, tokens) that a job must not
 * see. Order: base < job-env < the spec's env and secrets < LIFTOFF_* run variables.
 */
export function jobEnvironment(input: JobEnvInput): Record<string, string> {
  const env: Record<string, string> = {};
  if (input.place === 'process') {
    for (const name of PROCESS_BASE) {
      const v = input.agentEnv[name];
      if (v !== undefined) env[name] = v;
    }
    env.PATH ??= DEFAULT_PATH;
    if (input.home !== undefined) env.HOME = input.home;
    // getpass.getuser() and friends look here first; a dynamic uid has no passwd entry to fall back on.
    if (input.user !== undefined) env.USER = env.LOGNAME = input.user;
  }
  for (const name of input.allowed) {
    const v = input.agentEnv[name];
    if (v !== undefined) env[name] = v;
  }
  Object.assign(env, input.specEnv, input.secretEnv ?? {}, input.runVars);
  return env;
}

/**
 * The environment of the agent's own helper processes (git fetches, Kubernetes exec plugins): the agent's, which
 * they may need (SSH_AUTH_SOCK, proxies, HOME), minus the agent's API key, which none of them needs. Never a job's.
 */
export function agentToolEnvironment(env: Env): Env {
  const { LIFTOFF_API_KEY: _key, ...rest } = env;
  return rest;
}

/** W&B splits WANDB_CONFIG into WANDB_CONFIG_0..N past this many characters (wandb-launch.md §9, utils.py:L91-92). */
export const WANDB_CONFIG_CHUNK = 32670;

export interface WandbEnvInput {
  runId: string;
  itemId: string;
  queue: string;
  entity: string;
  runConfig: Readonly<Record<string, unknown>>;
  name?: string;
  project?: string;
  author?: string;
  /** The image of an image source (WANDB_DOCKER). */
  image?: string;
}

/**
 * The variables W&B's agent sets in a launched run (wandb-launch.md §9), for a spec that opted in (`wandb_env`), so
 * code instrumented with wandb reads its config as it would under W&B's agent. WANDB_BASE_URL and WANDB_API_KEY are
 * never set: Liftoff is no W&B server and hands no keys to jobs (a job that logs to a W&B server of its own gets its
 * key as a secret, `--env WANDB_API_KEY=secret:NAME`).
 */
export function wandbEnvironment(input: WandbEnvInput): Record<string, string> {
  const env: Record<string, string> = {
    WANDB_LAUNCH: 'True',
    WANDB_RUN_ID: input.runId,
    WANDB_ENTITY: input.entity,
    WANDB_LAUNCH_QUEUE_NAME: input.queue,
    WANDB_LAUNCH_QUEUE_ENTITY: input.entity,
    WANDB_LAUNCH_TRACE_ID: input.itemId,
  };
  if (input.project) env.WANDB_PROJECT = input.project;
  if (input.name) env.WANDB_NAME = input.name;
  if (input.author) env.WANDB_USERNAME = input.author;
  if (input.image) env.WANDB_DOCKER = input.image;
  const config = JSON.stringify(input.runConfig);
  if (config.length <= WANDB_CONFIG_CHUNK) env.WANDB_CONFIG = config;
  else
    for (let i = 0; i * WANDB_CONFIG_CHUNK < config.length; i++)
      env[`WANDB_CONFIG_${i}`] = config.slice(i * WANDB_CONFIG_CHUNK, (i + 1) * WANDB_CONFIG_CHUNK);
  return env;
}
