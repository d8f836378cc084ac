import { createHash } from 'node:crypto';
import type Dockerode from 'dockerode';
import { LiftoffError } from '@liftoff/core';
import { followProgress } from '../docker/progress.js';
import type { Registry } from '../registries/types.js';
import { BuildTrail } from './buildTrail.js';
import { listCode, packCode } from './codeTree.js';
import { GENERATED_DIR, GENERATED_WORKDIR, resolveDockerfile } from './dockerfile.js';
import { BuildError, type BuildRequest, type BuildResult, type Builder } from './types.js';

/**
 * Builds through the Docker Engine API. The tag is a digest of the build inputs (code identity, Dockerfile, base
 * image): an image with that tag in the target registry means the same build already happened, so it is skipped.
 */
export class DockerBuilder implements Builder {
  readonly type = 'docker' as const;

  constructor(
    private readonly docker: Dockerode,
    private readonly registry: Registry,
  ) {}

  async build(req: BuildRequest): Promise<BuildResult> {
    const dockerfile = await resolveDockerfile(req.codeDir, req.spec, req.baseImage).catch((e: unknown) =>
      Promise.reject(asBuildError(e)),
    );
    const digest = createHash('sha256')
      .update(JSON.stringify([req.sourceIdentity, dockerfile.path, dockerfile.text, req.baseImage]))
      .digest('hex')
      .slice(0, 16);
    const image = `${this.registry.repository}:${digest}`;
    const layout = dockerfile.origin === 'generated' ? { workCopyAt: GENERATED_WORKDIR } : {};
    if (await this.registry.imageExists(image).catch((e: unknown) => Promise.reject(asBuildError(e)))) {
      req.onLog(`image ${image} already exists (same code, Dockerfile and base image): skipping the build\n`);
      return { image, built: false, ...layout };
    }
    const from = dockerfile.origin === 'generated' ? 'a generated Dockerfile' : dockerfile.path;
    req.onLog(`building ${image} from ${from} (FROM ${firstFrom(dockerfile.text)})\n`);
    // The context is streamed from the code as it is (links not followed, and refused if they lead outside), with
    // the generated files added to the stream: nothing is written into the job's code.
    const generatedDir = dockerfile.generated.length > 0;
    const entries = await listCode(req.codeDir, (rel) => generatedDir && rel === GENERATED_DIR).catch((e: unknown) =>
      Promise.reject(asBuildError(e)),
    );
    const context = packCode(req.codeDir, entries, { uid: 0, gid: 0, generated: dockerfile.generated });
    const trail = new BuildTrail();
    try {
      const stream = await this.docker.buildImage(context as unknown as NodeJS.ReadableStream, {
        t: image,
        dockerfile: dockerfile.path,
        rm: true,
        forcerm: true,
      });
      await followProgress(this.docker, stream, (text) => {
        trail.feed(text);
        req.onLog(text);
      });
    } catch (e) {
      throw new BuildError(trail.describe((e as Error).message), e);
    }
    try {
      await this.registry.publish(image, req.onLog);
    } catch (e) {
      throw asBuildError(e);
    }
    return { image, built: true, ...layout };
  }
}

const firstFrom = (text: string): string => /^\s*FROM\s+(\S+)/im.exec(text)?.[1] ?? 'its base image';
const asBuildError = (e: unknown): BuildError =>
  e instanceof BuildError ? e : new BuildError(e instanceof LiftoffError ? e.message : (e as Error).message, e);
