import { homedir, hostname } from 'node:os';
import type { Logger } from 'pino';
import {
  LaunchAgent,
  agentIdentity,
  agentToolEnvironment,
  dockerServices,
  type AwsClientSettings,
  type AzureClientSettings,
  type GcpClientSettings,
  type ResolvedAgentConfig,
} from '@liftoff/agent';
import type { Env, LiftoffClient } from '@liftoff/core';

/** Runs `fn` once on the first SIGINT/SIGTERM, then exits 0; a second signal exits at once. */
export function onShutdown(fn: () => Promise<void>): void {
  let stopping = false;
  const handler = (signal: NodeJS.Signals) => {
    if (stopping) {
      process.exit(130);
    }
    stopping = true;
    process.stderr.write(`received ${signal}; shutting down\n`);
    fn().then(
      () => process.exit(0),
      (err: unknown) => {
        process.stderr.write(`liftoff: error during shutdown: ${(err as Error).message}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
}

/** A launch agent as both `liftoff launch-agent` and `liftoff up` build one: identity, services and job environment. */
export function createAgent(opts: {
  client: LiftoffClient;
  config: ResolvedAgentConfig;
  env: Env;
  dataDir: string;
  name?: string;
  logger: Logger;
  say: (line: string) => void;
  /** The agent's AWS settings, when its config has an aws environment (built from `env` by the caller). */
  aws?: AwsClientSettings;
  /** The agent's Google Cloud settings, when its config has a gcp environment (built from `env` by the caller). */
  gcp?: GcpClientSettings;
  /** The agent's Azure settings, when its config has an azure environment (built from `env` by the caller). */
  azure?: AzureClientSettings;
}): { agent: LaunchAgent; identity: { id: string; name: string } } {
  const { client, config, env, dataDir, logger, say } = opts;
  const host = hostname();
  const identity = agentIdentity({
    name: opts.name ?? config.name,
    hostname: host,
    entity: config.entity,
    queues: config.queues,
    configPath: config.source,
    dataDir,
  });
  const agent = new LaunchAgent({
    client,
    config,
    identity,
    hostname: host,
    dataDir,
    agentEnv: agentToolEnvironment(env),
    homeDir: env.HOME ?? homedir(),
    ...dockerServices(env, config.file.builder),
    logger,
    say,
    ...(opts.aws ? { aws: opts.aws } : {}),
    ...(opts.gcp ? { gcp: opts.gcp } : {}),
    ...(opts.azure ? { azure: opts.azure } : {}),
  });
  return { agent, identity };
}
