import type Dockerode from 'dockerode';
import type { RegistryCredentials } from '../docker/credentials.js';
import { LocalRegistry } from './local.js';
import { OciRegistry } from './oci.js';
import type { Registry } from './types.js';

export type { Registry } from './types.js';
export { RegistryError } from './oci.js';

/** Repository of locally stored images when no destination is configured. */
export const LOCAL_REPOSITORY = 'liftoff/jobs';

/** `builder.destination` names an OCI registry repository; without it images stay in the engine's store. */
export function registryFor(
  destination: string | undefined,
  docker: Dockerode,
  credentials: RegistryCredentials,
): Registry {
  return destination ? new OciRegistry(docker, destination, credentials) : new LocalRegistry(docker, LOCAL_REPOSITORY);
}
