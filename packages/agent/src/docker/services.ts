import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import Dockerode from 'dockerode';
import type { AgentConfigFile, Env } from '@liftoff/core';
import { registryHost, RegistryCredentials } from './credentials.js';

/**
 * The Docker client and registry credentials an agent is given. Called by the entry point with the process
 * environment: DOCKER_HOST selects the engine (default: the local socket), DOCKER_CONFIG (or ~/.docker) holds
 * config.json with registry logins, and `builder.credentials` in the agent config adds the destination's login.
 * Logins are kept for the destination's registry only.
 */
export function dockerServices(
  env: Env,
  builder: AgentConfigFile['builder'],
): { docker: Dockerode; credentials: RegistryCredentials } {
  const docker = env.DOCKER_HOST
    ? new Dockerode(dockerHostOptions(env.DOCKER_HOST))
    : new Dockerode({ socketPath: '/var/run/docker.sock' });
  // Only the agent's own registry (builder.destination) gets the agent's logins; see RegistryCredentials.
  const host = builder?.destination ? registryHost(builder.destination) : undefined;
  const credentials = new RegistryCredentials(host ? [host] : []);
  const configPath = join(env.DOCKER_CONFIG ?? join(env.HOME ?? homedir(), '.docker'), 'config.json');
  try {
    credentials.addDockerConfig(JSON.parse(readFileSync(configPath, 'utf8')));
  } catch {
    // No docker login on this machine.
  }
  const c = builder?.credentials as { username?: unknown; password?: unknown } | undefined;
  if (host && typeof c?.username === 'string' && typeof c.password === 'string')
    credentials.set(host, c.username, c.password);
  return { docker, credentials };
}

function dockerHostOptions(host: string): Dockerode.DockerOptions {
  if (host.startsWith('unix://')) return { socketPath: host.slice('unix://'.length) };
  const url = new URL(host.replace(/^tcp:/, 'http:'));
  return { host: url.hostname, port: Number(url.port || 2375), protocol: 'http' };
}
