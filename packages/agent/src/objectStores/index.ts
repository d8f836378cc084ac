import { NotSupportedError } from '@liftoff/core';
import { AzureBlobObjectStore } from './azblob.js';
import { GcsObjectStore } from './gcs.js';
import { S3ObjectStore } from './s3.js';
import type { ObjectStore, ObjectStoreDeps } from './types.js';

export type { ObjectStore, ObjectStoreDeps } from './types.js';
export { parseS3Uri } from './s3.js';

/** URI scheme → store factory (https: Azure Blob URLs, the one https store; its parser refuses any other host). */
export const OBJECT_STORES: Record<string, (deps: ObjectStoreDeps) => ObjectStore> = {
  s3: (deps) => new S3ObjectStore(deps),
  gs: (deps) => new GcsObjectStore(deps),
  https: (deps) => new AzureBlobObjectStore(deps),
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
