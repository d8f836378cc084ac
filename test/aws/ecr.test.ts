import { CreateRepositoryCommand, ECRClient } from '@aws-sdk/client-ecr';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { AwsEnvironmentError } from '@liftoff/core';
import type Dockerode from 'dockerode';
import { RegistryCredentials } from '../../packages/agent/src/docker/credentials.js';
import { awsClientConfig } from '../../packages/agent/src/environments/aws/settings.js';
import type { AwsClientSettings } from '../../packages/agent/src/environments/types.js';
import {
  createEcrRegistry,
  EcrLogins,
  parseEcrUri,
  REFRESH_BEFORE_MS,
} from '../../packages/agent/src/registries/ecr.js';
import { MOTO_ACCOUNT, motoAvailable, motoEnv, startMoto, type Moto } from '../helpers/moto.js';
import { cleanupAll } from '../helpers/procs.js';
import { settingsFrom } from './env.js';

const OTHER_ACCOUNT = '210987654321';
/** moto's tokens: `AWS:<registry id>-auth-token`, expiring at 2015-01-01T00:00Z. */
const MOTO_EXPIRY = Date.UTC(2015, 0, 1);
const identity = { account: MOTO_ACCOUNT, partition: 'aws', principal: `arn:aws:iam::${MOTO_ACCOUNT}:user/t` };
const noDocker = {} as Dockerode;

/** The `ecr` registry (issue 13) with the real ECR client against moto on loopback. */
describe.skipIf(!motoAvailable())('the ecr registry', () => {
  let moto: Moto;
  let settings: AwsClientSettings;
  let calls = 0;
  /** An ECR client counting the GetAuthorizationToken calls it sends. */
  const countingClient = () => {
    const client = new ECRClient(awsClientConfig(settings, 'ecr'));
    client.middlewareStack.add(
      (next, context) => (args) => {
        if (context.commandName === 'GetAuthorizationTokenCommand') calls++;
        return next(args);
      },
      { step: 'initialize' },
    );
    return client;
  };

  beforeAll(async () => {
    moto = await startMoto();
    settings = await settingsFrom(motoEnv(moto));
    const ecr = new ECRClient(awsClientConfig(settings, 'ecr'));
    await ecr.send(new CreateRepositoryCommand({ repositoryName: 'my-ecr-repo' }));
    await ecr.send(new CreateRepositoryCommand({ repositoryName: 'team/shared', registryId: OTHER_ACCOUNT }));
    ecr.destroy();
  }, 60_000);
  afterAll(async () => {
    vi.unstubAllEnvs();
    await cleanupAll();
  });

  it('caches the token until shortly before its expiresAt, one fetch for concurrent callers', async () => {
    let now = MOTO_EXPIRY - 12 * 3600_000;
    const logins = new EcrLogins(countingClient(), undefined, () => now);
    calls = 0;
    const three = await Promise.all([logins.login(), logins.login(), logins.login()]);
    expect(three.map((l) => `${l.username}:${l.password}`)).toEqual(Array(3).fill(`AWS:${MOTO_ACCOUNT}-auth-token`));
    expect(calls).toBe(1);
    now = MOTO_EXPIRY - REFRESH_BEFORE_MS - 1;
    await logins.login();
    expect(calls).toBe(1);
    now = MOTO_EXPIRY - REFRESH_BEFORE_MS;
    await logins.login();
    expect(calls).toBe(2);
    await logins.login();
    expect(calls).toBe(3); // still past the refresh point: each use fetches anew
  });

  it('keeps no token that has already expired when it arrives', async () => {
    const logins = new EcrLogins(countingClient(), undefined); // the real clock: moto's 2015 expiry is past
    calls = 0;
    await logins.login();
    await logins.login();
    expect(calls).toBe(2);
  });

  it('with `repository`: the own account (from STS), the region of the environment, the token proxyEndpoint as host', async () => {
    const credentials = new RegistryCredentials([]);
    const registry = await createEcrRegistry(
      { type: 'ecr', repository: 'my-ecr-repo' },
      { docker: noDocker, credentials, aws: settings, awsIdentity: identity },
    );
    const host = `${MOTO_ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com`;
    expect(registry.repository).toBe(`${host}/my-ecr-repo`);
    expect(await credentials.authFor(`${host}/my-ecr-repo:abc`)).toEqual({
      username: 'AWS',
      password: `${MOTO_ACCOUNT}-auth-token`,
      serveraddress: host,
    });
  });

  it("with another account's URI: that registry id is asked for (cross-account)", async () => {
    const credentials = new RegistryCredentials([]);
    const uri = `${OTHER_ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/team/shared`;
    const registry = await createEcrRegistry(
      { type: 'ecr', uri },
      { docker: noDocker, credentials, aws: settings, awsIdentity: identity },
    );
    expect(registry.repository).toBe(uri);
    const login = await credentials.get(`${OTHER_ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com`);
    expect(login?.password).toBe(`${OTHER_ACCOUNT}-auth-token`);
  });

  it('stops at a repository that does not exist, saying how to create it', async () => {
    const err = await createEcrRegistry(
      { type: 'ecr', repository: 'not-there' },
      { docker: noDocker, credentials: new RegistryCredentials([]), aws: settings, awsIdentity: identity },
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AwsEnvironmentError);
    expect((err as Error).message).toBe(
      `ECR repository "not-there" does not exist in account ${MOTO_ACCOUNT}, region us-east-1: create it (aws ecr create-repository --repository-name not-there --region us-east-1) or fix the registry config.`,
    );
  });

  it('parses ECR URIs and refuses other hosts and names', async () => {
    expect(parseEcrUri('123456789012.dkr.ecr.eu-west-1.amazonaws.com/a/b')).toEqual({
      account: '123456789012',
      region: 'eu-west-1',
      repository: 'a/b',
      host: '123456789012.dkr.ecr.eu-west-1.amazonaws.com',
    });
    expect(parseEcrUri('123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn/repo')?.region).toBe('cn-north-1');
    expect(parseEcrUri('evil.example.com/123456789012.dkr.ecr.us-east-1.amazonaws.com/r')).toBeUndefined();
    expect(parseEcrUri('123456789012.dkr.ecr.us-east-1.amazonaws.com/UPPER')).toBeUndefined();
    await expect(
      createEcrRegistry(
        { type: 'ecr', uri: '127.0.0.1:5000/jobs' },
        { docker: noDocker, credentials: new RegistryCredentials([]), aws: settings, awsIdentity: identity },
      ),
    ).rejects.toThrow('is not an ECR repository URI');
  });
});
