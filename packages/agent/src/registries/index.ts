import type Dockerode from 'dockerode';
import type { AgentConfigFile } from '@liftoff/core';
import type { RegistryCredentials } from '../docker/credentials.js';
import type { AwsIdentity } from '../environments/aws/check.js';
import type { AwsClientSettings, AzureClientSettings, GcpClientSettings } from '../environments/types.js';
import { LocalRegistry } from './local.js';
import { OciRegistry } from './oci.js';
import type { Registry } from './types.js';

export type { Registry } from './types.js';
export { RegistryError } from './oci.js';

/** Repository of locally stored images when no destination is configured. */
export const LOCAL_REPOSITORY = 'liftoff/jobs';

/** What a registry is made from: the engine, the agent's logins, and its cloud environment when it has one. */
export interface RegistryDeps {
  docker: Dockerode;
  credentials: RegistryCredentials;
  /** `builder.destination`, when set. */
  destination?: string | undefined;
  aws?: AwsClientSettings | undefined;
  awsIdentity?: AwsIdentity | undefined;
  gcp?: GcpClientSettings | undefined;
  azure?: AzureClientSettings | undefined;
}

type RegistryConfig = NonNullable<AgentConfigFile['registry']>;

/**
 * `registry.type` → factory (each loads its cloud SDK only when used); a type missing here is refused at start-up
 * (plugins.ts).
 */
export const REGISTRIES: Partial<
  Record<RegistryConfig['type'], (cfg: RegistryConfig, deps: RegistryDeps) => Promise<Registry>>
> = {
  ecr: async (cfg, deps) => (await import('./ecr.js')).createEcrRegistry(cfg, deps),
  gcr: async (cfg, deps) => (await import('./gar.js')).createGarRegistry(cfg, deps),
  acr: async (cfg, deps) => (await import('./acr.js')).createAcrRegistry(cfg, deps),
};

/**
 * The registry built images go to: the config's `registry` (a cloud registry); else, in an aws environment, a
 * `builder.destination` that is an ECR URI (as W&B infers it), or in a gcp environment one on a `-docker.pkg.dev` host, or in
 * an azure environment one on an `.azurecr.io` host; else `builder.destination` as a plain OCI registry
 * repository; else the engine's own image store.
 */
export async function registryFor(config: RegistryConfig | null | undefined, deps: RegistryDeps): Promise<Registry> {
  const { destination, docker, credentials } = deps;
  if (!config && deps.aws && destination && /\.dkr\.ecr(-fips)?\.[a-z0-9-]+\.amazonaws\.com/.test(destination)) {
    config = { type: 'ecr', uri: destination };
  }
  if (!config && deps.gcp && destination && /^[a-z0-9-]+-docker\.pkg\.dev\//.test(destination)) {
    config = { type: 'gcr', uri: destination };
  }
  if (!config && deps.azure && destination && /^[a-z0-9]+\.azurecr\.io\//.test(destination)) {
    config = { type: 'acr', uri: destination };
  }
  if (config) {
    const factory = REGISTRIES[config.type];
    if (factory) return factory(config, deps);
  }
  return destination ? new OciRegistry(docker, destination, credentials) : new LocalRegistry(docker, LOCAL_REPOSITORY);
}
