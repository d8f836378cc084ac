import type { Readable } from 'node:stream';
import type { AwsClientSettings, AzureClientSettings, GcpClientSettings } from '../environments/types.js';

/**
 * Where builds put files a build pod fetches (the Kaniko builder's build context): a cloud bucket named by a URI
 * (`builder.build-context-store`, e.g. `s3://bucket/prefix/`). Every method takes the full URI of what it works on.
 */
export interface ObjectStore {
  /** The URI scheme this store serves (`s3`). */
  readonly scheme: string;
  /** At agent start: the URI's bucket exists and the agent's credentials reach it. Throws a message naming the fix. */
  verify(uri: string): Promise<void>;
  /** Writes `body` to exactly `uri` (an object key, not a prefix), in parts when it is large. */
  upload(uri: string, body: Readable | Buffer, opts?: { contentType?: string }): Promise<void>;
  /** A URL that GETs the object at `uri` without credentials for `ttlSeconds` (a build pod then needs none). */
  presign(uri: string, ttlSeconds: number): Promise<string>;
}

/** What stores are made from: the agent's cloud environment settings. */
export interface ObjectStoreDeps {
  aws?: AwsClientSettings;
  gcp?: GcpClientSettings;
  azure?: AzureClientSettings;
}
