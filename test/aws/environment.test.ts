import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { AwsCredentialsMissingError, AwsEnvironmentError } from '@liftoff/core';
import { checkAwsEnvironment } from '../../packages/agent/src/environments/aws/check.js';
import { awsClientConfig } from '../../packages/agent/src/environments/aws/settings.js';
import { MOTO_ACCOUNT, motoAvailable, motoEnv, startMoto, type Moto } from '../helpers/moto.js';
import { cleanupAll, tempDir } from '../helpers/procs.js';
import { settingsFrom } from './env.js';

/** The agent-start check of an aws environment (issue 13), with the real SDK clients against moto on loopback. */
describe.skipIf(!motoAvailable())('the aws environment check at agent start', () => {
  let moto: Moto;
  let strict: Moto;
  beforeAll(async () => {
    [moto, strict] = await Promise.all([startMoto(), startMoto({ enforceAuth: true })]);
    const settings = await settingsFrom(motoEnv(moto));
    const s3 = new S3Client({ ...awsClientConfig(settings, 's3'), forcePathStyle: true });
    await s3.send(new CreateBucketCommand({ Bucket: 'liftoff-contexts' }));
    s3.destroy();
  }, 60_000);
  afterAll(async () => {
    vi.unstubAllEnvs();
    await cleanupAll();
  });

  it('logs the account, partition and principal STS names, and checks an s3:// build-context store', async () => {
    const lines: string[] = [];
    const settings = await settingsFrom(motoEnv(moto));
    const identity = await checkAwsEnvironment(
      settings,
      { buildContextStore: 's3://liftoff-contexts/contexts/' },
      (l) => lines.push(l),
    );
    expect(identity).toEqual({
      account: MOTO_ACCOUNT,
      partition: 'aws',
      principal: expect.stringMatching(new RegExp(`^arn:aws:(sts|iam)::${MOTO_ACCOUNT}:`)),
    });
    expect(lines[0]).toBe(
      `aws: account ${MOTO_ACCOUNT}, partition aws, principal ${identity.principal}, region us-east-1`,
    );
    expect(lines[1]).toBe('aws: build-context store s3://liftoff-contexts/contexts/ is reachable');
  });

  it('stops at a build-context bucket that does not exist (HeadBucket 404), naming it and the fix', async () => {
    const settings = await settingsFrom(motoEnv(moto));
    const err = await checkAwsEnvironment(
      settings,
      { buildContextStore: 's3://no-such-bucket-here/ctx/' },
      () => {},
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AwsEnvironmentError);
    expect((err as Error).message).toBe(
      'builder.build-context-store s3://no-such-bucket-here/ctx/: bucket "no-such-bucket-here" does not exist; create it (aws s3 mb s3://no-such-bucket-here) or fix the URI.',
    );
  });

  it('stops when STS refuses the credentials, in one line saying what to check', async () => {
    const settings = await settingsFrom(motoEnv(strict));
    const err = await checkAwsEnvironment(settings, {}, () => {}).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AwsEnvironmentError);
    const message = (err as Error).message;
    expect(message).toMatch(/^AWS STS refused the agent's credentials \(InvalidClientTokenId: /);
    expect(message).toContain('check the credentials the agent process is given');
    expect(message).not.toContain('\n');
  });

  it('stops when STS cannot be reached, naming the endpoint', async () => {
    const settings = await settingsFrom(motoEnv(moto, { AWS_ENDPOINT_URL_STS: 'http://127.0.0.1:1' }));
    const err = await checkAwsEnvironment(settings, {}, () => {}).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AwsEnvironmentError);
    expect((err as Error).message).toMatch(/^Could not reach AWS STS at http:\/\/127\.0\.0\.1:1 \(.*ECONNREFUSED/);
  });

  it('without any credentials fails with a named error saying how to provide them', async () => {
    const env = motoEnv(moto);
    const { AWS_ACCESS_KEY_ID: _k, AWS_SECRET_ACCESS_KEY: _s, ...noKeys } = env;
    const settings = await settingsFrom({ ...noKeys, HOME: tempDir() });
    const err = await checkAwsEnvironment(settings, {}, () => {}).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AwsCredentialsMissingError);
    expect((err as Error).message).toContain('no AWS credentials were found');
    expect((err as Error).message).toContain('AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY');
    expect((err as Error).message).toContain('AWS_PROFILE');
  });
});
