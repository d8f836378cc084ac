import type Dockerode from 'dockerode';
import { BUSYBOX, docker, type TestRegistry } from '../docker.js';

/** Pushes BUSYBOX as `image` with the token login, then drops the local tag so that a run must pull it. */
export async function pushTestImage(engine: Dockerode, registry: TestRegistry, image: string): Promise<void> {
  docker('tag', BUSYBOX, image);
  const auth = { username: registry.username, password: registry.password, serveraddress: registry.host };
  const stream = await engine.getImage(image).push({ authconfig: auth });
  await new Promise<void>((res, rej) =>
    engine.modem.followProgress(stream, (e, out: Array<{ error?: string }>) => {
      const failed = out?.find((o) => o.error);
      return e || failed ? rej(e ?? new Error(failed?.error)) : res();
    }),
  );
  docker('rmi', image);
}
