import { docker, pushToRegistry, type TestRegistry } from '../docker.js';

/** Pushes BUSYBOX as `image` with the registry's login, then drops the local tag so that a run must pull it. */
export async function pushTestImage(registry: TestRegistry, image: string): Promise<void> {
  await pushToRegistry(registry, image);
  docker('rmi', image);
}
