import type Dockerode from 'dockerode';
import { InClusterBuilderConfigError } from '@liftoff/core';
import type { RegistryCredentials } from '../docker/credentials.js';
import type { Registry } from '../registries/types.js';
import type { RunnerDeps } from '../runners/types.js';
import { DockerBuilder } from './docker.js';
import type { KanikoBuilder } from './inCluster/kaniko.js';
import type { BuilderConfigFile } from './inCluster/job.js';
import { NoopBuilder } from './noop.js';
import type { Builder } from './types.js';

export {
  BuildCancelledError,
  BuildError,
  DEFAULT_BASE_IMAGE,
  type BuildRequest,
  type BuildResult,
  type Builder,
} from './types.js';

export interface BuilderDeps {
  docker: Dockerode;
  registry: Registry;
  /** In-cluster builders: the agent config's builder section, its logins and cluster access. */
  config?: BuilderConfigFile | undefined;
  credentials?: RegistryCredentials;
  runner?: RunnerDeps;
}

/** In-cluster builders need what the docker builder does not; absent only when wired wrongly. */
function inCluster(deps: BuilderDeps): ConstructorParameters<typeof KanikoBuilder>[0] {
  if (!deps.config || !deps.credentials || !deps.runner)
    throw new InClusterBuilderConfigError(
      'In-cluster builders need the builder config, registry logins and cluster access.',
    );
  return { registry: deps.registry, credentials: deps.credentials, runner: deps.runner, config: deps.config };
}

/**
 * Builder type → factory; config naming a type missing here is refused at start-up. The in-cluster builders load
 * (and with them the Kubernetes client) only for agents whose config names them.
 */
export const BUILDERS: Record<'docker' | 'noop' | 'kaniko' | 'buildah', (deps: BuilderDeps) => Promise<Builder>> = {
  docker: async (deps) => new DockerBuilder(deps.docker, deps.registry),
  noop: async () => new NoopBuilder(),
  kaniko: async (deps) => new (await import('./inCluster/kaniko.js')).KanikoBuilder(inCluster(deps)),
  buildah: async (deps) => new (await import('./inCluster/buildah.js')).BuildahBuilder(inCluster(deps)),
};
