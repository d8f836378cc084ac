import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type Dockerode from 'dockerode';
import type { AgentConfigFile, Env } from '@liftoff/core';
import { registryHost, RegistryCredentials } from './credentials.js';
import { loadDockerode } from './loadDockerode.js';

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
  const docker = lazyDockerode(
    env.DOCKER_HOST ? dockerHostOptions(env.DOCKER_HOST) : { socketPath: '/var/run/docker.sock' },
    env.DOCKER_HOST?.startsWith('ssh://') ?? false,
  );
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

/**
 * A Docker client that loads dockerode on first use. dockerode pulls in docker-modem, and with it ssh2 (whose
 * WebAssembly allocates ~17 MB at import), gRPC and protobufjs (for BuildKit sessions, which the agent's builds do not
 * use): ~30 MB and ~40 ms for every agent, though only container queues and image builds ever talk to Docker, and the
 * agent learns its queues' resource types from the server only after it started. So the agent is handed this stand-in:
 * each property read (a method, `modem`) creates the real client once, synchronously (dockerode is CommonJS), and
 * forwards to it, methods bound to it. An agent serving local-process queues never loads dockerode; one that does
 * loads it without ssh2 and gRPC (see loadDockerode).
 */
export function lazyDockerode(options: Dockerode.DockerOptions, ssh: boolean): Dockerode {
  let real: Dockerode | undefined;
  const client = (): Dockerode => {
    if (!real) {
      const Docker = loadDockerode(ssh);
      real = new Docker(options);
    }
    return real;
  };
  return new Proxy({} as Dockerode, {
    get(_target, prop) {
      const target = client();
      const value: unknown = Reflect.get(target, prop, target);
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
    has: (_target, prop) => Reflect.has(client(), prop),
  });
}
