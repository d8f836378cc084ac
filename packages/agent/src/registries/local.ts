import type Dockerode from 'dockerode';
import { isNotFound } from '../docker/progress.js';
import type { Registry } from './types.js';

/** The engine's own image store: nothing to push, existence is an image inspect. */
export class LocalRegistry implements Registry {
  constructor(
    private readonly docker: Dockerode,
    readonly repository: string,
  ) {}

  async imageExists(image: string): Promise<boolean> {
    try {
      await this.docker.getImage(image).inspect();
      return true;
    } catch (e) {
      if (isNotFound(e)) return false;
      throw e;
    }
  }

  async publish(): Promise<void> {}
}
