import { generateKeyPairSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { Storage } from '@google-cloud/storage';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { GcpEnvironmentError } from '@liftoff/core';
import { checkGcpEnvironment } from '../../packages/agent/src/environments/gcp/check.js';
import { RegistryCredentials } from '../../packages/agent/src/docker/credentials.js';
import { objectStoreFor } from '../../packages/agent/src/objectStores/index.js';
import { createGarRegistry } from '../../packages/agent/src/registries/gar.js';
import { CHUNK_BYTES, parseGsUri } from '../../packages/agent/src/objectStores/gcs.js';
import { startFakeGcs, type FakeGcs } from '../helpers/gcpFake/gcs.js';
import { startFakeIam } from '../helpers/gcpFake/iam.js';
import { startFakeMetadata, type FakeMetadata } from '../helpers/gcpFake/metadata.js';
import { cleanupAll, tempDir } from '../helpers/procs.js';
import { PROJECT, settingsFrom } from './env.js';

/**
 * The gs:// object store (issue 14) against a fake GCS JSON API on loopback, itself cross-checked with Google's own
 * client (@google-cloud/storage through STORAGE_EMULATOR_HOST), with ADC from the fake metadata server.
 */
describe('the gs:// object store', () => {
  let md: FakeMetadata;
  let gcs: FakeGcs;
  const env = () => ({ ...md.env, STORAGE_EMULATOR_HOST: gcs.url });
  /** Google's client, pointed at the fake through the variable it documents, with ADC from the fake metadata. */
  const google = () => new Storage({ projectId: PROJECT, useAuthWithCustomEndpoint: true });

  beforeAll(async () => {
    md = await startFakeMetadata();
    gcs = await startFakeGcs({ buckets: ['liftoff-ctx'], acceptToken: (t) => md.tokens.includes(t) });
  });
  afterEach(() => {
    vi.useRealTimers();
    vi.unstubAllEnvs();
  });
  afterAll(cleanupAll);

  it('the fake agrees with @google-cloud/storage: bucket lookups, media, multipart and resumable uploads, reads, errors', async () => {
    // The process environment @google-cloud/storage reads. Its resumable uploads send no token to a custom endpoint
    // (its `useAuthWithCustomEndpoint` reaches only the JSON calls), so this part runs on a fake that checks none;
    // the token check is cross-checked below, on the strict fake.
    const open = await startFakeGcs({ buckets: ['liftoff-ctx'] });
    await settingsFrom({ ...md.env, STORAGE_EMULATOR_HOST: open.url });
    const storage = google();
    expect((await storage.bucket('liftoff-ctx').exists())[0]).toBe(true);
    expect((await storage.bucket('no-such-bucket').exists())[0]).toBe(false);
    const small = storage.bucket('liftoff-ctx').file('a/small.txt');
    await small.save('hello gcs', { resumable: false, contentType: 'text/plain' });
    expect(open.calls).toContain('multipart-upload');
    expect((await small.download())[0].toString()).toBe('hello gcs');
    expect((await small.getMetadata())[0]).toMatchObject({ name: 'a/small.txt', size: '9', contentType: 'text/plain' });
    const big = Buffer.alloc(600 * 1024, 7);
    const file = storage.bucket('liftoff-ctx').file('a/big.bin');
    await file.save(big, { resumable: true, chunkSize: 256 * 1024 });
    expect(open.calls.filter((c) => c === 'resumable-chunk').length).toBeGreaterThanOrEqual(3);
    expect((await file.download())[0].equals(big)).toBe(true);
    const missing = await storage
      .bucket('liftoff-ctx')
      .file('nope')
      .download()
      .catch((e: unknown) => e as { code?: number; message?: string });
    expect(missing).toMatchObject({ code: 404 });
    expect(open.calls.filter((c) => c.startsWith('unknown'))).toEqual([]);
    // On the strict fake: ADC's token (from the fake metadata server) is taken; one it never issued gets GCS's 401.
    await settingsFrom(env());
    expect((await google().bucket('liftoff-ctx').getMetadata())[0]).toMatchObject({ name: 'liftoff-ctx' });
    const stranger = new Storage({
      projectId: PROJECT,
      authClient: {
        getAccessToken: async () => ({ token: 'forged' }),
        getRequestHeaders: async () => new Headers({ authorization: 'Bearer forged' }),
      } as never,
    });
    const refused = await stranger
      .bucket('liftoff-ctx')
      .getMetadata()
      .catch((e: unknown) => e as { code?: number });
    expect(refused).toMatchObject({ code: 401 });
  });

  it('verify: a bucket GET; a missing bucket and refused credentials stop with one line naming the fix', async () => {
    const gcp = await settingsFrom(env());
    const lines: string[] = [];
    await checkGcpEnvironment(gcp, { buildContextStore: 'gs://liftoff-ctx/builds/' }, (l) => lines.push(l));
    expect(lines[1]).toBe('gcp: build-context store gs://liftoff-ctx/builds/ is reachable');
    const err = await checkGcpEnvironment(
      gcp,
      { buildContextStore: 'gs://liftoff-missing/ctx/' },
      () => undefined,
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GcpEnvironmentError);
    expect((err as Error).message).toBe(
      `builder.build-context-store gs://liftoff-missing/ctx/: bucket "liftoff-missing" does not exist; create it (gcloud storage buckets create gs://liftoff-missing --project ${PROJECT} --location us-central1) or fix the URI.`,
    );
    const strict = await startFakeGcs({ buckets: ['liftoff-ctx'], acceptToken: () => false });
    const denied = await settingsFrom({ ...md.env, STORAGE_EMULATOR_HOST: strict.url });
    await expect(objectStoreFor('gs://liftoff-ctx/x', { gcp: denied }).verify('gs://liftoff-ctx/x')).rejects.toThrow(
      /bucket "liftoff-ctx" is not accessible to the agent's credentials \(HTTP 401: UNAUTHENTICATED: Request is missing valid authentication credential\.\); grant/,
    );
  });

  it("uploads more than 10 MB as a resumable upload in 8 MiB chunks, read back by Google's client byte for byte", async () => {
    const gcp = await settingsFrom(env());
    const data = Buffer.alloc(12 * 1024 * 1024);
    for (let i = 0; i < data.length; i += 4) data.writeUInt32LE(i, i);
    gcs.calls.length = 0;
    // A stream in odd-sized pieces, as a tar packer writes it.
    const pieces = function* () {
      for (let at = 0; at < data.length; at += 1_000_003) yield data.subarray(at, at + 1_000_003);
    };
    await objectStoreFor('gs://liftoff-ctx/builds/ctx.tgz', { gcp }).upload(
      'gs://liftoff-ctx/builds/ctx.tgz',
      Readable.from(pieces()),
      {
        contentType: 'application/gzip',
      },
    );
    expect(gcs.calls).toEqual(['resumable-start', 'resumable-chunk', 'resumable-chunk']);
    expect(CHUNK_BYTES).toBe(8 * 1024 * 1024);
    const [read] = await google().bucket('liftoff-ctx').file('builds/ctx.tgz').download();
    expect(read.equals(data)).toBe(true);
    expect(gcs.buckets.get('liftoff-ctx')?.get('builds/ctx.tgz')?.contentType).toBe('application/gzip');
    // A Buffer body of exactly one chunk, and an empty one, end in one final request each.
    gcs.calls.length = 0;
    const store = objectStoreFor('gs://liftoff-ctx/x', { gcp });
    await store.upload('gs://liftoff-ctx/one-chunk', data.subarray(0, CHUNK_BYTES));
    await store.upload('gs://liftoff-ctx/empty', Buffer.alloc(0));
    expect(gcs.calls).toEqual(['resumable-start', 'resumable-chunk', 'resumable-start', 'resumable-chunk']);
    expect(gcs.buckets.get('liftoff-ctx')?.get('empty')?.data.length).toBe(0);
    await expect(store.upload('gs://liftoff-missing/x', Buffer.from('x'))).rejects.toThrow(
      'starting the resumable upload answered HTTP 404 (NOT_FOUND: The specified bucket does not exist.)',
    );
  });

  it('signs a V4 GET URL with a service-account key that plain fetch can read, and the fake checks signatures as Google signs them', async () => {
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const email = `signer@${PROJECT}.iam.gserviceaccount.com`;
    const keyFile = join(tempDir('liftoff-gcp-key-'), 'key.json');
    writeFileSync(
      keyFile,
      JSON.stringify({
        type: 'service_account',
        project_id: PROJECT,
        private_key_id: 'k1',
        private_key: privateKey.export({ type: 'pkcs8', format: 'pem' }),
        client_email: email,
        client_id: '1',
        token_uri: 'https://oauth2.googleapis.com/token',
      }),
    );
    gcs.signers.set(email, publicKey);
    // A key file's tokens come from oauth2.googleapis.com, which no test may reach: signing needs none.
    const gcp = await settingsFrom({ GOOGLE_APPLICATION_CREDENTIALS: keyFile, STORAGE_EMULATOR_HOST: gcs.url });
    gcs.buckets.get('liftoff-ctx')?.set("dir/it's (1).tgz", {
      data: Buffer.from('context bytes'),
      contentType: 'application/gzip',
      generation: '1',
    });
    const url = await objectStoreFor('gs://x/y', { gcp }).presign("gs://liftoff-ctx/dir/it's (1).tgz", 600);
    expect(url.startsWith(`${gcs.url}/liftoff-ctx/dir/it%27s%20%281%29.tgz?X-Goog-Algorithm=GOOG4-RSA-SHA256&`)).toBe(
      true,
    );
    expect(url).toContain('X-Goog-Expires=600');
    const got = await fetch(url);
    expect(got.status).toBe(200);
    expect(await got.text()).toBe('context bytes');
    // Another object under the same signature, or a longer lifetime: refused.
    expect((await fetch(url.replace('%281%29', '%282%29'))).status).toBe(403);
    expect((await fetch(url.replace('X-Goog-Expires=600', 'X-Goog-Expires=6000'))).status).toBe(403);
    // Google's own signer, with the same key, passes the same check: the fake verifies what GCS verifies.
    const [googleUrl] = await google()
      .bucket('liftoff-ctx')
      .file("dir/it's (1).tgz")
      .getSignedUrl({ version: 'v4', action: 'read', expires: Date.now() + 600_000 });
    const viaGoogle = await fetch(googleUrl);
    expect(viaGoogle.status, `${googleUrl}: ${await viaGoogle.clone().text()}`).toBe(200);
    await expect(objectStoreFor('gs://x/y', { gcp }).presign('gs://liftoff-ctx/a', 8 * 24 * 3600)).rejects.toThrow(
      'A signed GCS URL lives 1 to 604800 seconds',
    );
  });

  it('with metadata-server credentials, signs through IAM signBlob as the service account, and fetch reads the URL', async () => {
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const email = `liftoff-agent@${PROJECT}.iam.gserviceaccount.com`; // what the fake metadata server names
    const iam = await startFakeIam({ keys: new Map([[email, privateKey]]), acceptToken: (t) => md.tokens.includes(t) });
    gcs.signers.set(email, publicKey);
    const gcp = await settingsFrom({
      ...env(),
      CLOUDSDK_API_ENDPOINT_OVERRIDES_IAMCREDENTIALS: iam.url,
    });
    gcs.buckets.get('liftoff-ctx')?.set('ctx/signed.tgz', {
      data: Buffer.from('signed by IAM'),
      contentType: 'application/gzip',
      generation: '1',
    });
    const url = await objectStoreFor('gs://x/y', { gcp }).presign('gs://liftoff-ctx/ctx/signed.tgz', 900);
    expect(iam.calls).toEqual([email]);
    expect(url).toContain(`X-Goog-Credential=${encodeURIComponent(email)}%2F`);
    const got = await fetch(url);
    expect(got.status).toBe(200);
    expect(await got.text()).toBe('signed by IAM');
    // An account IAM has no key for: one line naming the role signBlob needs.
    const other = await settingsFrom({
      ...env(),
      CLOUDSDK_API_ENDPOINT_OVERRIDES_IAMCREDENTIALS: (await startFakeIam({ keys: new Map(), acceptToken: () => true }))
        .url,
    });
    await expect(
      objectStoreFor('gs://x/y', { gcp: other }).presign('gs://liftoff-ctx/ctx/signed.tgz', 900),
    ).rejects.toThrow(
      /^Signing a URL for gs:\/\/liftoff-ctx\/ctx\/signed\.tgz as liftoff-agent@.* failed \(.*\); without a key file the service account needs roles\/iam\.serviceAccountTokenCreator on itself/,
    );
  });

  it('the store, the registry login and the start check share the one auth client: one token fetch per expiry', async () => {
    const gcp = await settingsFrom(env());
    const credentials = new RegistryCredentials([]);
    await createGarRegistry(
      { type: 'gcr', repository: 'jobs', 'image-name': 'trainer' },
      { docker: {} as never, credentials, gcp },
    );
    const store = objectStoreFor('gs://liftoff-ctx/x', { gcp });
    const everyone = () =>
      Promise.all([
        store.verify('gs://liftoff-ctx/x'),
        credentials.get('us-central1-docker.pkg.dev'),
        checkGcpEnvironment(gcp, {}, () => undefined),
        store.upload('gs://liftoff-ctx/shared.txt', Buffer.from('x')),
      ]);
    const before = md.tokenFetches();
    await everyone();
    await everyone();
    expect(md.tokenFetches()).toBe(before + 1);
    // Past the refresh point (the token lives an hour; the library refreshes 5 minutes early): one more for all.
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(Date.now() + 56 * 60_000);
    await everyone();
    expect(md.tokenFetches()).toBe(before + 2);
    expect((await credentials.get('us-central1-docker.pkg.dev'))?.password).toBe(md.tokens.at(-1));
  });

  it('parses gs:// URIs and refuses malformed ones', () => {
    expect(parseGsUri('gs://liftoff-ctx/a/b.tgz')).toEqual({ bucket: 'liftoff-ctx', key: 'a/b.tgz' });
    expect(parseGsUri('gs://liftoff-ctx')).toEqual({ bucket: 'liftoff-ctx', key: '' });
    expect(() => parseGsUri('gs://UPPER/x')).toThrow('is not a GCS URI');
    expect(() => parseGsUri('gs://../x')).toThrow('is not a GCS URI');
    expect(() => parseGsUri('s3://b/x')).toThrow('is not a GCS URI');
  });
});
