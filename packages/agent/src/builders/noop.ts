import { BuildError, type BuildRequest, type BuildResult, type Builder } from './types.js';

export const CODE_MOUNT = '/mnt/liftoff/code';

/**
 * Never builds. Code and git jobs run on the base image with their code (W&B Launch mounts it; Liftoff's
 * local-container runner puts a per-run copy into the container instead, never a view of the agent's files); the
 * base image must already hold the job's dependencies.
 */
export class NoopBuilder implements Builder {
  readonly type = 'noop' as const;

  async build(req: BuildRequest): Promise<BuildResult> {
    if (!req.baseImage) {
      throw new BuildError(
        'The noop builder needs a base image to run code on: set resource_args.local-container.builder.base_image, or configure builder: {type: docker}.',
      );
    }
    req.onLog(`no build (noop builder): running ${req.baseImage} with a copy of the code at ${CODE_MOUNT}\n`);
    return { image: req.baseImage, built: false, mountCodeAt: CODE_MOUNT };
  }
}
