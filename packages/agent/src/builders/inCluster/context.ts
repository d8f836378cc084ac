import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { createGzip } from 'node:zlib';
import { LiftoffError } from '@liftoff/core';
import { listCode, packCode } from '../codeTree.js';
import { GENERATED_DIR, GENERATED_WORKDIR, resolveDockerfile, type ResolvedDockerfile } from '../dockerfile.js';
import { BuildError, type BuildRequest } from '../types.js';

export interface PreparedContext {
  dockerfile: ResolvedDockerfile;
  /** The content tag: the same digest of the build inputs the docker builder uses, so both builders share images. */
  tag: string;
  /** Where generated images hold the code (`workCopyAt` of the result), else undefined. */
  workCopyAt: string | undefined;
}

/** The Dockerfile (the job's own or generated) and the content tag, as the docker builder computes them. */
export async function prepareContext(req: BuildRequest): Promise<PreparedContext> {
  const dockerfile = await resolveDockerfile(req.codeDir, req.spec, req.baseImage).catch((e: unknown) =>
    Promise.reject(asBuildError(e)),
  );
  const tag = createHash('sha256')
    .update(JSON.stringify([req.sourceIdentity, dockerfile.path, dockerfile.text, req.baseImage]))
    .digest('hex')
    .slice(0, 16);
  return { dockerfile, tag, workCopyAt: dockerfile.origin === 'generated' ? GENERATED_WORKDIR : undefined };
}

/**
 * The build context as a gzipped tar stream: the code as it is (links not followed, refused if they lead outside),
 * with the generated files added, owned by root. Nothing is written into the job's code or to disk.
 */
export async function packContext(req: BuildRequest, dockerfile: ResolvedDockerfile): Promise<Readable> {
  const generatedDir = dockerfile.generated.length > 0;
  const entries = await listCode(req.codeDir, (rel) => generatedDir && rel === GENERATED_DIR).catch((e: unknown) =>
    Promise.reject(asBuildError(e)),
  );
  const tar = packCode(req.codeDir, entries, { uid: 0, gid: 0, generated: dockerfile.generated });
  const gzip = createGzip();
  tar.on('error', (e) => gzip.destroy(e));
  return tar.pipe(gzip);
}

/** `<store>/<runId>.tgz` (W&B's key), whether or not the store URI ends in "/". */
export function contextUri(store: string, runId: string): string {
  return `${store.replace(/\/+$/, '')}/${runId}.tgz`;
}

export const asBuildError = (e: unknown): BuildError =>
  e instanceof BuildError ? e : new BuildError(e instanceof LiftoffError ? e.message : (e as Error).message, e);
