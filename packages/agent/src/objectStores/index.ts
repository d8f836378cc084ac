import { NotSupportedError } from '@liftoff/core';
import { GcsObjectStore } from './gcs.js';
import { S3ObjectStore } from './s3.js';
import type { ObjectStore, ObjectStoreDeps } from './types.js';

export type { ObjectStore, ObjectStoreDeps } from './types.js';
export { parseS3Uri } from './s3.js';

/** URI scheme → store factory. Azure blob URLs are valid W&B config but have no store yet. */
export const OBJECT_STORES: Record<string, (deps: ObjectStoreDeps) => ObjectStore> = {
  s3: (deps) => new S3ObjectStore(deps),
  gs: (deps) => new GcsObjectStore(deps),
};

/** The store serving `uri` (e.g. builder.build-context-store); refuses schemes without one. */
export function objectStoreFor(uri: string, deps: ObjectStoreDeps): ObjectStore {
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(uri)?.[1]?.toLowerCase() ?? '';
  const factory = OBJECT_STORES[scheme];
  if (!factory) {
    throw new NotSupportedError(
      `"${uri}" is not in an object store this Liftoff version can use (it has: ${Object.keys(OBJECT_STORES)
        .map((s) => `${s}://`)
        .join(', ')}).`,
    );
  }
  return factory(deps);
}
