import { readFileSync } from 'node:fs';
import {
  ConfigInvalidError,
  defaultAgentConfigPath,
  parseAgentConfigYaml,
  type AgentConfigFile,
  type Env,
} from '@liftoff/core';

/** Flags of `liftoff launch-agent`; undefined means "not given". */
export interface AgentFlags {
  queues?: string[];
  entity?: string;
  maxJobs?: number;
  config?: string;
  verbosity?: number;
  name?: string;
  /** Seconds between short polls instead of one long-poll (W&B's behaviour; for benchmarks and hostile proxies). */
  pollIntervalSeconds?: number;
}

/** The agent's settings after defaults < file < environment < flags. */
export interface ResolvedAgentConfig {
  entity: string;
  /** Infinity when unlimited (-1). */
  maxJobs: number;
  queues: string[];
  verbosity: number;
  name?: string;
  /** Seconds between SIGTERM and SIGKILL when a run is cancelled or the agent stops. */
  stopGraceSeconds: number;
  /** 0: long-poll (the default); otherwise poll without waiting every this many milliseconds. */
  pollIntervalMs: number;
  file: AgentConfigFile;
  /** The config file that was read, if any. */
  source?: string;
}

export const DEFAULT_STOP_GRACE_SECONDS = 10;

/**
 * Reads the YAML file (the explicit `--config`, which must exist, or the default path, which may not), then applies
 * LIFTOFF_ENTITY / LIFTOFF_LAUNCH_MAX_JOBS and the flags. `--queue` flags replace the file's queues.
 */
export function resolveAgentConfig(flags: AgentFlags, env: Env): ResolvedAgentConfig {
  const path = flags.config ?? defaultAgentConfigPath(env);
  let file: AgentConfigFile = {};
  let source: string | undefined;
  let text: string | undefined;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if (flags.config) {
      throw new ConfigInvalidError(path, [
        `it cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`,
      ]);
    }
  }
  if (text !== undefined) {
    file = parseAgentConfigYaml(text, path);
    source = path;
  }

  let entity = file.entity ?? 'default';
  let maxJobs = file.max_jobs ?? 1;
  let queues = [...(file.queues ?? [])];
  if (file.queue && !queues.includes(file.queue)) queues.push(file.queue);

  if (env.LIFTOFF_ENTITY) entity = env.LIFTOFF_ENTITY;
  if (env.LIFTOFF_LAUNCH_MAX_JOBS !== undefined && env.LIFTOFF_LAUNCH_MAX_JOBS !== '') {
    maxJobs = parseMaxJobs(env.LIFTOFF_LAUNCH_MAX_JOBS, 'LIFTOFF_LAUNCH_MAX_JOBS');
  }
  if (flags.entity) entity = flags.entity;
  if (flags.maxJobs !== undefined) maxJobs = parseMaxJobs(String(flags.maxJobs), '--max-jobs');
  if (flags.queues?.length) queues = [...new Set(flags.queues)];

  const interval = flags.pollIntervalSeconds;
  if (interval !== undefined && !(Number.isFinite(interval) && interval > 0)) {
    throw new ConfigInvalidError('--poll-interval', [
      `value ${JSON.stringify(interval)}: must be a positive number of seconds`,
    ]);
  }
  if (!queues.length) {
    throw new ConfigInvalidError('the launch agent configuration', [
      'no queue to poll: pass -q QUEUE (repeatable) or list them under "queues:" in the config file',
    ]);
  }
  return {
    entity,
    maxJobs: maxJobs === -1 ? Infinity : maxJobs,
    queues,
    verbosity: flags.verbosity ?? file.verbosity ?? 0,
    name: flags.name ?? file.name,
    stopGraceSeconds: file.stopped_run_timeout ?? DEFAULT_STOP_GRACE_SECONDS,
    pollIntervalMs: Math.round((flags.pollIntervalSeconds ?? 0) * 1000),
    file,
    source,
  };
}

export function parseMaxJobs(raw: string, where: string): number {
  const n = Number(raw);
  if (!Number.isInteger(n) || (n !== -1 && n < 1)) {
    throw new ConfigInvalidError(where, [`value ${JSON.stringify(raw)}: must be -1 (unlimited) or a positive integer`]);
  }
  return n;
}
