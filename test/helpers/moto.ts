import { spawn, spawnSync } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { onCleanup, Proc, tempDir } from './procs.js';

/**
 * moto (`moto_server`, an independent implementation of the AWS APIs) on 127.0.0.1 with a port of its own. Missing:
 * the AWS suites skip with a loud reason, unless LIFTOFF_REQUIRE_SERVICES=1, where that is a failure.
 * `scripts/services/aws.sh` checks it is installed.
 */
export function motoAvailable(): boolean {
  const r = spawnSync('moto_server', ['--help'], { stdio: 'ignore' });
  if (r.status === 0) return true;
  const reason = 'moto_server missing: run scripts/services/aws.sh';
  if (process.env.LIFTOFF_REQUIRE_SERVICES === '1') throw new Error(`${reason} (LIFTOFF_REQUIRE_SERVICES=1)`);
  console.warn(`\n*** SKIPPING AWS suites: ${reason} ***\n`);
  return false;
}

/** moto's fixed account and the caller ARN its GetCallerIdentity answers for any key. */
export const MOTO_ACCOUNT = '123456789012';

export interface Moto {
  url: string;
  proc: Proc;
  stop(): Promise<void>;
}

/**
 * Starts moto_server. `enforceAuth`: every request is checked against moto's IAM (INITIAL_NO_AUTH_ACTION_COUNT=0),
 * so a key moto never issued is refused as AWS refuses it (InvalidClientTokenId).
 */
export async function startMoto(opts: { enforceAuth?: boolean } = {}): Promise<Moto> {
  const env: Record<string, string> = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: tempDir('liftoff-moto-') };
  if (process.env.PYENV_ROOT) env.PYENV_ROOT = process.env.PYENV_ROOT;
  if (opts.enforceAuth) env.INITIAL_NO_AUTH_ACTION_COUNT = '0';
  // moto's ECR tokens expire at its local midnight of 2015-01-01: UTC makes that instant fixed.
  env.TZ = 'UTC';
  const proc = new Proc(
    spawn('moto_server', ['-H', '127.0.0.1', '-p', '0'], { env, stdio: ['ignore', 'pipe', 'pipe'] }),
  );
  const [, url] = (await proc.waitFor(/Running on (http:\/\/127\.0\.0\.1:\d+)/, 30_000)) as unknown as [string, string];
  return {
    url,
    proc,
    async stop() {
      proc.kill('SIGTERM');
      await proc.exited;
    },
  };
}

/**
 * The environment of an agent (or of this test process) that talks to `moto` only: static test keys, every
 * endpoint at moto, the instance metadata service disabled and the shared config files at empty temp paths, so
 * nothing but 127.0.0.1 is ever contacted.
 */
export function motoEnv(moto: Moto, extra: Record<string, string> = {}): Record<string, string> {
  const dir = tempDir('liftoff-aws-home-');
  return {
    AWS_ACCESS_KEY_ID: 'AKIDLIFTOFFTEST',
    AWS_SECRET_ACCESS_KEY: 'liftoff-test-secret',
    AWS_REGION: 'us-east-1',
    AWS_ENDPOINT_URL: moto.url,
    AWS_EC2_METADATA_DISABLED: 'true',
    AWS_CONFIG_FILE: join(dir, 'config'),
    AWS_SHARED_CREDENTIALS_FILE: join(dir, 'credentials'),
    ...extra,
  };
}

/** Names of the variables `motoEnv` sets and the other credential sources of the SDK's chain. */
export const AWS_CHAIN_VARIABLES = [
  'AWS_ACCESS_KEY_ID',
  'AWS_SECRET_ACCESS_KEY',
  'AWS_SESSION_TOKEN',
  'AWS_PROFILE',
  'AWS_REGION',
  'AWS_DEFAULT_REGION',
  'AWS_ENDPOINT_URL',
  'AWS_CONFIG_FILE',
  'AWS_SHARED_CREDENTIALS_FILE',
  'AWS_CONTAINER_CREDENTIALS_FULL_URI',
  'AWS_CONTAINER_CREDENTIALS_RELATIVE_URI',
  'AWS_CONTAINER_AUTHORIZATION_TOKEN',
  'AWS_WEB_IDENTITY_TOKEN_FILE',
  'AWS_ROLE_ARN',
];

/**
 * moto's ECR has no registry behind it: its GetAuthorizationToken names `https://<account>.dkr.ecr.<region>
 * .amazonaws.com`, which is not on this machine. This loopback front forwards every request to moto unchanged and
 * rewrites only that answer's `proxyEndpoint` to a local Distribution registry, so Liftoff pushes where ECR says to,
 * as it would to a real ECR registry. Point AWS_ENDPOINT_URL_ECR at `url`.
 */
export async function ecrFront(moto: Moto, registryHost: string): Promise<{ url: string; tokenCalls: () => number }> {
  let tokenCalls = 0;
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const headers = new Headers();
      for (const [k, v] of Object.entries(req.headers)) {
        if (typeof v === 'string' && !['host', 'content-length', 'connection'].includes(k)) headers.set(k, v);
      }
      const target = String(req.headers['x-amz-target'] ?? '');
      void fetch(`${moto.url}${req.url ?? '/'}`, {
        method: req.method ?? 'POST',
        headers,
        ...(chunks.length ? { body: Buffer.concat(chunks) } : {}),
      })
        .then(async (up) => {
          let body = Buffer.from(await up.arrayBuffer());
          if (target.endsWith('.GetAuthorizationToken') && up.status === 200) {
            tokenCalls++;
            const json = JSON.parse(body.toString('utf8')) as { authorizationData: Array<{ proxyEndpoint: string }> };
            for (const d of json.authorizationData) d.proxyEndpoint = `http://${registryHost}`;
            body = Buffer.from(JSON.stringify(json));
          }
          res.writeHead(up.status, { 'content-type': up.headers.get('content-type') ?? 'application/json' });
          res.end(body);
        })
        .catch((e: unknown) => {
          res.writeHead(502);
          res.end(String(e));
        });
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  onCleanup(
    () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  );
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, tokenCalls: () => tokenCalls };
}

/** Creates `bucket` in moto's S3 as a test's setup (path-style, moto's test credentials). */
export async function createMotoBucket(moto: Moto, bucket: string): Promise<void> {
  const { CreateBucketCommand, S3Client } = await import('@aws-sdk/client-s3');
  const s3 = new S3Client({
    region: 'us-east-1',
    endpoint: moto.url,
    forcePathStyle: true,
    credentials: { accessKeyId: 'AKIDLIFTOFFTEST', secretAccessKey: 'x' },
  });
  try {
    await s3.send(new CreateBucketCommand({ Bucket: bucket }));
  } finally {
    s3.destroy();
  }
}
