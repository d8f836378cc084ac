import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { ECRClient, GetAuthorizationTokenCommand } from '@aws-sdk/client-ecr';
import { ListBucketsCommand, S3Client } from '@aws-sdk/client-s3';
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { awsClientConfig } from '../../packages/agent/src/environments/aws/settings.js';
import type { AwsClientSettings } from '../../packages/agent/src/environments/types.js';
import { motoAvailable, startMoto, type Moto } from '../helpers/moto.js';
import { cleanupAll, tempDir } from '../helpers/procs.js';
import { settingsFrom } from './env.js';

const TOKEN = 'container-auth-token-for-tests';
const LIFETIME_MS = 10 * 60_000;

/**
 * The one shared credential provider refreshes temporary credentials when they expire, once for all clients (W&B
 * freezes the credentials it found at start). Credentials come from a loopback container-credentials endpoint (as
 * on ECS/EKS) that hands out a new access key each time, valid 10 minutes; the clock is moved past that.
 */
describe.skipIf(!motoAvailable())('the shared AWS credential provider', () => {
  let moto: Moto;
  let endpoint: Server;
  let issued = 0;
  let refused = 0;
  let settings: AwsClientSettings;
  const keysSeen: string[] = [];

  beforeAll(async () => {
    moto = await startMoto();
    endpoint = createServer((req, res) => {
      if (req.url !== '/creds' || req.headers.authorization !== TOKEN) {
        refused++;
        res.writeHead(403).end();
        return;
      }
      issued++;
      res.writeHead(200, { 'content-type': 'application/json' }).end(
        JSON.stringify({
          AccessKeyId: `ASIATEST${issued}`,
          SecretAccessKey: `secret-${issued}`,
          Token: `session-${issued}`,
          Expiration: new Date(Date.now() + LIFETIME_MS).toISOString(),
        }),
      );
    });
    await new Promise<void>((r) => endpoint.listen(0, '127.0.0.1', r));
    const dir = tempDir('liftoff-aws-home-');
    settings = await settingsFrom({
      HOME: dir,
      AWS_CONFIG_FILE: join(dir, 'config'),
      AWS_SHARED_CREDENTIALS_FILE: join(dir, 'credentials'),
      AWS_ENDPOINT_URL: moto.url,
      AWS_CONTAINER_CREDENTIALS_FULL_URI: `http://127.0.0.1:${(endpoint.address() as AddressInfo).port}/creds`,
      AWS_CONTAINER_AUTHORIZATION_TOKEN: TOKEN,
    });
  }, 60_000);
  afterAll(async () => {
    vi.useRealTimers();
    vi.unstubAllEnvs();
    endpoint.closeAllConnections();
    endpoint.close();
    await cleanupAll();
  });

  /** Records the access key id each signed request carries (after signing, before sending). */
  function recording<T extends { middlewareStack: STSClient['middlewareStack'] }>(client: T): T {
    client.middlewareStack.add(
      (next) => (args) => {
        const auth = String((args.request as { headers: Record<string, string> }).headers.authorization ?? '');
        keysSeen.push(/Credential=([^/]+)\//.exec(auth)?.[1] ?? 'unsigned');
        return next(args);
      },
      { step: 'deserialize' },
    );
    return client;
  }

  it('fetches once for every client, and once more for all of them after the expiry, with a new key', async () => {
    const sts = recording(new STSClient(awsClientConfig(settings, 'sts')));
    const s3 = recording(
      new S3Client({ ...awsClientConfig(settings, 's3'), forcePathStyle: true }) as never,
    ) as S3Client;
    const ecr = recording(new ECRClient(awsClientConfig(settings, 'ecr')) as never) as ECRClient;
    const round = async () => {
      await sts.send(new GetCallerIdentityCommand({}));
      await s3.send(new ListBucketsCommand({}));
      await ecr.send(new GetAuthorizationTokenCommand({}));
      await Promise.all([sts.send(new GetCallerIdentityCommand({})), s3.send(new ListBucketsCommand({}))]);
    };
    await round();
    expect(issued).toBe(1);
    expect(keysSeen).toEqual(Array(5).fill('ASIATEST1'));
    // Past the expiry (the SDK reads the time from Date): every client needs new credentials, the endpoint is asked once.
    vi.useFakeTimers({ toFake: ['Date'], now: Date.now() + LIFETIME_MS + 60_000 });
    keysSeen.length = 0;
    await round();
    expect(issued).toBe(2);
    expect(keysSeen).toEqual(Array(5).fill('ASIATEST2'));
    expect(refused).toBe(0);
    for (const c of [sts, s3, ecr]) c.destroy();
  });
});
