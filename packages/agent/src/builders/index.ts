import type Dockerode from 'dockerode';
import type { Registry } from '../registries/types.js';
import { DockerBuilder } from './docker.js';
import { NoopBuilder } from './noop.js';
import type { Builder } from './types.js';

export { BuildError, DEFAULT_BASE_IMAGE, type BuildRequest, type BuildResult, type Builder } from './types.js';

export interface BuilderDeps {
  docker: Dockerode;
  registry: Registry;
}

/** Builder type → factory; config naming a type missing here is refused at start-up. */
export const BUILDERS: Record<'docker' | 'noop', (deps: BuilderDeps) => Builder> = {
  docker: (deps) => new DockerBuilder(deps.docker, deps.registry),
  noop: () => new NoopBuilder(),
};
