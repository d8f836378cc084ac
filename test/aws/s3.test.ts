import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { CreateBucketCommand, HeadObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { AwsEnvironmentError } from '@liftoff/core';
import { awsClientConfig } from '../../packages/agent/src/environments/aws/settings.js';
import type { AwsClientSettings } from '../../packages/agent/src/environments/types.js';
import { objectStoreFor, type ObjectStore } from '../../packages/agent/src/objectStores/index.js';
import { motoAvailable, motoEnv, startMoto, type Moto } from '../helpers/moto.js';
import { cleanupAll } from '../helpers/procs.js';
import { settingsFrom } from './env.js';

/** The s3:// object store (issue 13; the Kaniko builder's build contexts) with the real SDK against moto. */
describe.skipIf(!motoAvailable())('the s3:// object store', () => {
  let moto: Moto;
  let settings: AwsClientSettings;
  let store: ObjectStore;
  let s3: S3Client;
  beforeAll(async () => {
    moto = await startMoto();
    settings = await settingsFrom(motoEnv(moto));
    s3 = new S3Client({ ...awsClientConfig(settings, 's3'), forcePathStyle: true });
    await s3.send(new CreateBucketCommand({ Bucket: 'liftoff-contexts' }));
    store = objectStoreFor('s3://liftoff-contexts/ctx/', { aws: settings });
  }, 60_000);
  afterAll(async () => {
    s3.destroy();
    vi.unstubAllEnvs();
    await cleanupAll();
  });

  it('uploads a stream of more than 10 MB in parts, and a presigned GET fetches it back without credentials', async () => {
    const data = randomBytes(12 * 1024 * 1024 + 17);
    await store.upload('s3://liftoff-contexts/ctx/run-1.tar.gz', Readable.from([data]), {
      contentType: 'application/gzip',
    });
    const head = await s3.send(new HeadObjectCommand({ Bucket: 'liftoff-contexts', Key: 'ctx/run-1.tar.gz' }));
    // A multipart upload's ETag is "<md5 of the parts' md5s>-<number of parts>": 5 MiB parts make 3.
    expect(head.ETag).toMatch(/-3"$/);
    expect(head.ContentLength).toBe(data.length);
    const url = await store.presign('s3://liftoff-contexts/ctx/run-1.tar.gz', 600);
    expect(new URL(url).searchParams.get('X-Amz-Expires')).toBe('600');
    expect(url).toContain('X-Amz-Signature=');
    const res = await fetch(url);
    expect(res.status).toBe(200);
    const got = Buffer.from(await res.arrayBuffer());
    expect(createHash('sha256').update(got).digest('hex')).toBe(createHash('sha256').update(data).digest('hex'));
  }, 120_000);

  it('verify is HeadBucket: an existing bucket passes, a missing one is named with the fix', async () => {
    await store.verify('s3://liftoff-contexts/ctx/');
    await expect(store.verify('s3://liftoff-not-a-bucket/ctx/')).rejects.toThrow(
      'bucket "liftoff-not-a-bucket" does not exist; create it (aws s3 mb s3://liftoff-not-a-bucket)',
    );
  });

  it('refuses URIs that name no object, presign lifetimes beyond SigV4 limits, and other schemes', async () => {
    await expect(store.upload('s3://liftoff-contexts/ctx/', Buffer.from('x'))).rejects.toThrow('names no object');
    await expect(store.presign('s3://liftoff-contexts/ctx/a', 8 * 24 * 3600)).rejects.toThrow(
      'lives 1 to 604800 seconds',
    );
    await expect(store.presign('s3://Bad_Bucket/a', 60)).rejects.toThrow(AwsEnvironmentError);
    expect(() => objectStoreFor('ftp://acct.example.com/c/ctx/', { aws: settings })).toThrow(
      'is not in an object store this Liftoff version can use (it has: s3://, gs://, https://)',
    );
    expect(() => objectStoreFor('https://acct.blob.core.windows.net/c/ctx/', { aws: settings })).toThrow(
      'add environment: {type: azure}',
    );
    expect(() => objectStoreFor('gs://bucket/ctx/', { aws: settings })).toThrow('add environment: {type: gcp');
    expect(() => objectStoreFor('s3://bucket/ctx/', {})).toThrow('add environment: {type: aws}');
  });
});
