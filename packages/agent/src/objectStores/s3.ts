import type { Readable } from 'node:stream';
import type { S3Client } from '@aws-sdk/client-s3';
import { AwsEnvironmentError, describeCause } from '@liftoff/core';
import { awsClientConfig } from '../environments/aws/settings.js';
import type { AwsClientSettings } from '../environments/types.js';
import type { ObjectStore, ObjectStoreDeps } from './types.js';

/** AWS's bucket naming rules (general purpose buckets): 3–63 of a-z 0-9 . -, starting and ending alnum. */
const BUCKET = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;
/** SigV4 presigned URLs live at most 7 days. */
const MAX_PRESIGN_SECONDS = 7 * 24 * 3600;

/** `s3://bucket/key` → bucket and key (the key may be empty: a bucket, or a prefix ending in "/"). */
export function parseS3Uri(uri: string): { bucket: string; key: string } {
  const m = /^s3:\/\/([^/]+)(?:\/(.*))?$/.exec(uri);
  if (!m || !BUCKET.test(m[1] ?? '')) {
    throw new AwsEnvironmentError(
      `"${uri}" is not an S3 URI: write s3://<bucket>/<key>, with a bucket name of 3-63 lower-case letters, digits, "." or "-".`,
    );
  }
  return { bucket: m[1] as string, key: m[2] ?? '' };
}

/**
 * `s3://` through the AWS SDK: verify = HeadBucket, upload = lib-storage's multipart Upload (a build context can be
 * large), presign = a SigV4 presigned GET. The SDK modules load on first use. With an endpoint override
 * (AWS_ENDPOINT_URL_S3: a VPC endpoint, an S3-compatible server) buckets are addressed by path, which those accept;
 * AWS's own endpoints get the SDK's default virtual-host addressing.
 */
export class S3ObjectStore implements ObjectStore {
  readonly scheme = 's3';
  private client: Promise<S3Client> | undefined;
  private readonly aws: AwsClientSettings;

  constructor(deps: ObjectStoreDeps) {
    if (!deps.aws) {
      throw new AwsEnvironmentError(
        's3:// stores need AWS credentials and a region: add environment: {type: aws} to the agent config.',
      );
    }
    this.aws = deps.aws;
  }

  private s3(): Promise<S3Client> {
    this.client ??= import('@aws-sdk/client-s3').then(
      ({ S3Client }) =>
        new S3Client({
          ...awsClientConfig(this.aws, 's3'),
          ...(this.aws.endpoints.s3 ? { forcePathStyle: true } : {}),
        }),
    );
    return this.client;
  }

  async verify(uri: string): Promise<void> {
    const { bucket } = parseS3Uri(uri);
    const [{ HeadBucketCommand }, client] = await Promise.all([import('@aws-sdk/client-s3'), this.s3()]);
    try {
      await client.send(new HeadBucketCommand({ Bucket: bucket }));
    } catch (e) {
      throw new AwsEnvironmentError(headBucketProblem(uri, bucket, this.aws.region, e), e);
    }
  }

  async upload(uri: string, body: Readable | Buffer, opts: { contentType?: string } = {}): Promise<void> {
    const { bucket, key } = objectOf(uri);
    const [{ Upload }, client] = await Promise.all([import('@aws-sdk/lib-storage'), this.s3()]);
    const upload = new Upload({
      client,
      params: { Bucket: bucket, Key: key, Body: body, ...(opts.contentType ? { ContentType: opts.contentType } : {}) },
      // lib-storage aborts the multipart upload when a part fails, so no orphaned parts are left billed.
      leavePartsOnError: false,
    });
    try {
      await upload.done();
    } catch (e) {
      throw new AwsEnvironmentError(`Uploading to ${uri} failed: ${describeCause(e)}.`, e);
    }
  }

  async presign(uri: string, ttlSeconds: number): Promise<string> {
    const { bucket, key } = objectOf(uri);
    if (!Number.isInteger(ttlSeconds) || ttlSeconds < 1 || ttlSeconds > MAX_PRESIGN_SECONDS) {
      throw new AwsEnvironmentError(
        `A presigned S3 URL lives 1 to ${MAX_PRESIGN_SECONDS} seconds (got ${ttlSeconds}).`,
      );
    }
    const [{ GetObjectCommand }, { getSignedUrl }, client] = await Promise.all([
      import('@aws-sdk/client-s3'),
      import('@aws-sdk/s3-request-presigner'),
      this.s3(),
    ]);
    return getSignedUrl(client, new GetObjectCommand({ Bucket: bucket, Key: key }), { expiresIn: ttlSeconds });
  }
}

function objectOf(uri: string): { bucket: string; key: string } {
  const parsed = parseS3Uri(uri);
  if (!parsed.key || parsed.key.endsWith('/')) {
    throw new AwsEnvironmentError(`"${uri}" names no object: add the object's key after the bucket.`);
  }
  return parsed;
}

/** HeadBucket answers with a status only (no body): 404 missing, 403 no access, 301 another region. */
function headBucketProblem(uri: string, bucket: string, region: string, e: unknown): string {
  const status = (e as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
  const where = `builder.build-context-store ${uri}`;
  if (status === 404)
    return `${where}: bucket "${bucket}" does not exist; create it (aws s3 mb s3://${bucket}) or fix the URI.`;
  if (status === 403)
    return `${where}: bucket "${bucket}" is not accessible to the agent's AWS credentials (HTTP 403); grant them s3:ListBucket on it, and s3:PutObject / s3:GetObject on its keys.`;
  if (status === 301)
    return `${where}: bucket "${bucket}" is in another region than ${region}; set environment.region (or AWS_REGION) to the bucket's region.`;
  return `${where}: could not check bucket "${bucket}" (${describeCause(e)}); check the network and AWS_ENDPOINT_URL_S3.`;
}
