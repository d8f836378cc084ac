import { chmod, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type Dockerode from 'dockerode';
import { LiftoffError, NotSupportedError, type ResourceType } from '@liftoff/core';
import type { AgentOptions } from './agent.js';
import { BUILDERS, type Builder } from './builders/index.js';
import { JobUsers, detectUserSwitching } from './jobUsers.js';
import { assertWorkRootReachable } from './workDirAccess.js';
import { outputCapBytes } from './outputs/index.js';
import { registryFor } from './registries/index.js';
import { RUNNERS, type Runner, type RunnerDeps } from './runners/index.js';
import { describe } from './runOutcome.js';
import type { AwsIdentity } from './environments/aws/check.js';
import type { GcpIdentity } from './environments/gcp/check.js';
import type { AzureIdentity } from './environments/azure/check.js';
import { assertSecureModeServes } from './secureMode.js';

/** What an agent serves its queues with, made and checked once at start. */
export interface PreparedRunners {
  runners: Map<ResourceType, Runner>;
  builder?: Builder;
  /** Who local-process jobs run as; set when the agent serves a local-process queue. */
  jobUsers?: JobUsers;
  /** Who the agent is on AWS (an aws environment only), checked at start. */
  awsIdentity?: AwsIdentity;
  /** Who the agent is on Google Cloud (a gcp environment only), checked at start. */
  gcpIdentity?: GcpIdentity;
  /** Who the agent is on Azure (an azure environment only), checked at start. */
  azureIdentity?: AzureIdentity;
}

/** A runner per queue type (each checked), the builder when any queue runs containers, and the job users. */
export async function prepareRunners(opts: AgentOptions, say: (line: string) => void): Promise<PreparedRunners> {
  const { client, config } = opts;
  const runners = new Map<ResourceType, Runner>();
  let jobUsers: JobUsers | undefined;
  // Like a runner's check: an environment that cannot work stops the agent now (exit 2), one line naming the fix.
  const awsIdentity = opts.aws
    ? await (
        await import('./environments/aws/check.js')
      ).checkAwsEnvironment(opts.aws, { buildContextStore: config.file.builder?.['build-context-store'] }, say)
    : undefined;
  const gcpIdentity = opts.gcp
    ? await (
        await import('./environments/gcp/check.js')
      ).checkGcpEnvironment(opts.gcp, { buildContextStore: config.file.builder?.['build-context-store'] }, say)
    : undefined;
  const azureIdentity = opts.azure
    ? await (
        await import('./environments/azure/check.js')
      ).checkAzureEnvironment(opts.azure, { buildContextStore: config.file.builder?.['build-context-store'] }, say)
    : undefined;
  for (const q of (await client.listQueues(config.entity)).queues) {
    if (!config.queues.includes(q.name)) continue;
    const factory = RUNNERS[q.resource];
    if (!factory) {
      throw new NotSupportedError(
        `Queue "${q.name}" runs ${q.resource} jobs, which this Liftoff agent cannot run yet (it runs: ${Object.keys(RUNNERS).join(', ')}). Poll another queue.`,
      );
    }
    if (config.file.secure_mode) assertSecureModeServes(q.name, q.resource);
    // Kubernetes runs on the cluster; the engine is needed there only to build code jobs (checked at build time).
    if (q.resource === 'local-container') await assertDocker(opts.docker, q.name, q.resource);
    if (q.resource === 'local-process' && !jobUsers) jobUsers = await prepareJobUsers(opts, say);
    if (!runners.has(q.resource)) {
      const runner = await factory(runnerDeps(opts));
      await runner.check?.().catch((err: unknown) => {
        const code = err instanceof LiftoffError ? err.code : 'CONFIG_INVALID';
        throw new LiftoffError(code, `Queue "${q.name}" runs ${q.resource} jobs, but: ${describe(err)}`);
      });
      runners.set(q.resource, runner);
    }
  }
  // Slurm runs code jobs as processes on the cluster (no image is built for them).
  const builder = [...runners.keys()].some((r) => r !== 'local-process' && r !== 'slurm')
    ? await makeBuilder(opts, awsIdentity)
    : undefined;
  return {
    runners,
    ...(builder ? { builder } : {}),
    ...(jobUsers ? { jobUsers } : {}),
    ...(awsIdentity ? { awsIdentity } : {}),
    ...(gcpIdentity ? { gcpIdentity } : {}),
    ...(azureIdentity ? { azureIdentity } : {}),
  };
}

/** `run-as`: refuses an agent whose jobs would silently run as itself; lays out work and state dirs for job users. */
async function prepareJobUsers(opts: AgentOptions, say: (line: string) => void): Promise<JobUsers> {
  const switching = opts.userSwitching ?? detectUserSwitching();
  const users = await JobUsers.resolve(opts.config.file['run-as'], switching);
  const workRoot = join(opts.dataDir, 'work');
  await mkdir(workRoot, { recursive: true });
  await mkdir(join(opts.dataDir, 'runs'), { recursive: true, mode: 0o700 });
  await chmod(join(opts.dataDir, 'runs'), 0o700);
  // Job users enter their own dir here but cannot list the others.
  await chmod(workRoot, users.mode === 'agent' ? 0o700 : 0o711);
  if (users.mode !== 'agent') await assertWorkRootReachable(workRoot, switching.uid);
  say(users.summary);
  return users;
}

export function runnerDeps(opts: AgentOptions): RunnerDeps {
  const { logger, agentEnv, docker, credentials, homeDir } = opts;
  return {
    logger,
    processEnv: agentEnv,
    agentId: opts.identity.id,
    docker,
    credentials,
    kubernetes: opts.config.file.kubernetes ?? {},
    secureMode: opts.config.file.secure_mode === true,
    homeDir,
    ...(opts.aws ? { aws: opts.aws } : {}),
    ...(opts.gcp ? { gcp: opts.gcp } : {}),
    ...(opts.azure ? { azure: opts.azure } : {}),
    ...(opts.config.file.vertex ? { vertex: vertexTimes(opts.config.file.vertex) } : {}),
    ...(opts.config.file.slurm ? { slurm: opts.config.file.slurm } : {}),
    ...(opts.config.file['run-as'] !== undefined ? { runAs: opts.config.file['run-as'] } : {}),
    outputs: {
      uploadToken: async (runId) => (await opts.client.createUploadToken(runId, { agent_id: opts.identity.id })).token,
      podServerUrl: opts.config.file.kubernetes?.['pod-server-url'] ?? opts.client.baseUrl,
      capBytes: outputCapBytes(opts.config.file['outputs-max-mib']),
    },
  };
}

async function assertDocker(docker: Dockerode, queue: string, resource: string): Promise<void> {
  try {
    await docker.ping();
  } catch (e) {
    throw new NotSupportedError(
      `Queue "${queue}" runs ${resource} jobs, but no Docker engine answers (${describe(e)}). Start dockerd or set DOCKER_HOST.`,
    );
  }
}

/** `builder.type` from the config; without one, docker (the engine was just found reachable). */
async function makeBuilder(opts: AgentOptions, awsIdentity: AwsIdentity | undefined): Promise<Builder> {
  const cfg = opts.config.file.builder;
  const type = cfg?.type ?? 'docker';
  const registry = await registryFor(opts.config.file.registry, {
    docker: opts.docker,
    credentials: opts.credentials,
    destination: cfg?.destination,
    aws: opts.aws,
    awsIdentity,
    gcp: opts.gcp,
    azure: opts.azure,
  });
  return BUILDERS[type]({
    docker: opts.docker,
    registry,
    config: cfg ?? undefined,
    credentials: opts.credentials,
    runner: runnerDeps(opts),
  });
}

function vertexTimes(v: { 'poll-seconds'?: number; 'log-tail-seconds'?: number }): {
  pollMs?: number;
  tailMs?: number;
} {
  return {
    ...(v['poll-seconds'] !== undefined ? { pollMs: v['poll-seconds'] * 1000 } : {}),
    ...(v['log-tail-seconds'] !== undefined ? { tailMs: v['log-tail-seconds'] * 1000 } : {}),
  };
}
