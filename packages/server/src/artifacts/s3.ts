import type { Readable } from 'node:stream';
import type { S3Client } from '@aws-sdk/client-s3';
import { StorageError, describeCause } from '@liftoff/core';
import type { ArtifactStore, ArtifactStoreConfig } from './types.js';

type S3Config = Extract<ArtifactStoreConfig, { kind: 's3' }>;

/**
 * Chunks as objects under `s3://bucket/prefix`, for replicas that share no disk (and for outputs too large for the
 * database). Each chunk is one PutObject of a whole in-memory chunk (bounded by chunkBytes), so no multipart state
 * lives in S3 between requests: resuming is the database's business (store/outputs.ts). Everything comes from the
 * server's configuration: region, endpoint and credentials are passed in, never read from the environment here.
 * The SDK loads on first use, so a server without this store never loads it.
 */
export class S3ArtifactStore implements ArtifactStore {
  readonly kind = 's3';
  readonly chunkBytes = 8 * 1024 * 1024;
  private client: Promise<S3Client> | undefined;

  constructor(private readonly config: S3Config) {}

  private s3(): Promise<S3Client> {
    const c = this.config;
    this.client ??= import('@aws-sdk/client-s3').then(
      ({ S3Client }) =>
        new S3Client({
          region: c.region,
          ...(c.endpoint ? { endpoint: c.endpoint, forcePathStyle: true } : {}),
          ...(c.credentials ? { credentials: c.credentials } : {}),
        }),
    );
    return this.client;
  }

  private where(key: string): string {
    return `s3://${this.config.bucket}/${this.config.prefix}${key}`;
  }

  async put(key: string, data: Buffer): Promise<void> {
    const [{ PutObjectCommand }, client] = await Promise.all([import('@aws-sdk/client-s3'), this.s3()]);
    try {
      await client.send(
        new PutObjectCommand({
          Bucket: this.config.bucket,
          Key: this.config.prefix + key,
          Body: data,
          ContentLength: data.length,
        }),
      );
    } catch (e) {
      throw new StorageError(
        `Could not write ${this.where(key)}: ${describeCause(e)}. Check the bucket and the server's S3 credentials.`,
        e,
      );
    }
  }

  async get(key: string): Promise<Readable> {
    const [{ GetObjectCommand }, client] = await Promise.all([import('@aws-sdk/client-s3'), this.s3()]);
    try {
      const out = await client.send(
        new GetObjectCommand({ Bucket: this.config.bucket, Key: this.config.prefix + key }),
      );
      return out.Body as Readable;
    } catch (e) {
      throw new StorageError(`Could not read ${this.where(key)}: ${describeCause(e)}.`, e);
    }
  }

  async delete(keys: readonly string[]): Promise<void> {
    if (!keys.length) return;
    const [{ DeleteObjectsCommand }, client] = await Promise.all([import('@aws-sdk/client-s3'), this.s3()]);
    // DeleteObjects takes at most 1,000 keys a request.
    for (let i = 0; i < keys.length; i += 1000) {
      await client.send(
        new DeleteObjectsCommand({
          Bucket: this.config.bucket,
          Delete: { Objects: keys.slice(i, i + 1000).map((k) => ({ Key: this.config.prefix + k })), Quiet: true },
        }),
      );
    }
  }

  async close(): Promise<void> {
    if (this.client) (await this.client).destroy();
  }
}
