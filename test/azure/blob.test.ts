import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { AzureEnvironmentError } from '@liftoff/core';
import { checkAzureEnvironment } from '../../packages/agent/src/environments/azure/check.js';
import type { AzureClientSettings } from '../../packages/agent/src/environments/types.js';
import { AzureBlobObjectStore, BLOCK_BYTES, parseBlobUri } from '../../packages/agent/src/objectStores/azblob.js';
import { objectStoreFor } from '../../packages/agent/src/objectStores/index.js';
import {
  ACCOUNT,
  adminClient,
  azuriteAvailable,
  httpsGet,
  startAzurite,
  type Azurite,
} from '../helpers/azureFake/azurite.js';
import { startFakeIdentity, type FakeIdentity } from '../helpers/azureFake/identity.js';
import { cleanupAll } from '../helpers/procs.js';
import { settingsFrom } from './env.js';

const CTX = `https://${ACCOUNT}.blob.core.windows.net/liftoff-ctx`;

/**
 * The Azure Blob store (issue 15) against Azurite, an implementation Liftoff did not write: over HTTPS with a test CA
 * the agent is told to trust (NODE_EXTRA_CA_CERTS), with `--oauth basic`, so every call of the store carries the
 * managed identity's bearer token and Azurite checks its issuer, audience and lifetime; the user-delegation SAS is
 * signed with a key Azurite hands out for that token and checked by Azurite on a GET without credentials.
 */
describe.skipIf(!azuriteAvailable())('the Azure Blob store', () => {
  let azurite: Azurite;
  let id: FakeIdentity;
  let azure: AzureClientSettings;
  let store: AzureBlobObjectStore;
  let env: Record<string, string>;
  beforeAll(async () => {
    [azurite, id] = await Promise.all([startAzurite(), startFakeIdentity()]);
    await (await adminClient(azurite)).createContainer('liftoff-ctx');
    env = { ...id.env, LIFTOFF_AZURE_BLOB_ENDPOINT: azurite.origin, NODE_EXTRA_CA_CERTS: azurite.caFile };
    azure = await settingsFrom(env);
    store = new AzureBlobObjectStore({ azure });
  }, 60_000);
  afterAll(async () => {
    vi.unstubAllEnvs();
    await cleanupAll();
  });

  it('verify: the container exists; a missing container is refused, naming the az command that creates it', async () => {
    await store.verify(`${CTX}/ctx/`);
    const err = await store.verify(`https://${ACCOUNT}.blob.core.windows.net/no-such-container/ctx/`).catch((e) => e);
    expect(err).toBeInstanceOf(AzureEnvironmentError);
    expect((err as Error).message).toBe(
      `builder.build-context-store https://${ACCOUNT}.blob.core.windows.net/no-such-container/ctx/: container "no-such-container" does not exist in storage account ${ACCOUNT}; create it (az storage container create --account-name ${ACCOUNT} --name no-such-container --auth-mode login) or fix the URI.`,
    );
  });

  it('Azurite checks the bearer token: one for another audience is refused, and the store names the role', async () => {
    // The same chain, but every storage call carries an ARM token (what a misconfigured scope would send).
    const wrong: AzureClientSettings = {
      ...azure,
      credential: { getToken: () => azure.credential.getToken('https://management.azure.com/.default') },
    };
    const err = await new AzureBlobObjectStore({ azure: wrong }).verify(`${CTX}/ctx/`).catch((e) => e);
    expect(err).toBeInstanceOf(AzureEnvironmentError);
    expect((err as Error).message).toMatch(
      /^builder\.build-context-store .*: container "liftoff-ctx" of storage account devstoreaccount1 is not accessible to the agent's Azure credentials \(HTTP 403: .*AuthenticationFailed.*\); assign the agent's principal Storage Blob Data Contributor/,
    );
  });

  it('uploads a large body in 8 MiB blocks (buffer and stream) and reads back the same bytes', async () => {
    const body = randomBytes(2 * BLOCK_BYTES + 12345);
    await store.upload(`${CTX}/ctx/big.tar.gz`, body, { contentType: 'application/gzip' });
    const admin = (await adminClient(azurite)).getContainerClient('liftoff-ctx');
    const blocks = await admin.getBlockBlobClient('ctx/big.tar.gz').getBlockList('committed');
    expect(blocks.committedBlocks?.map((b) => b.size)).toEqual([BLOCK_BYTES, BLOCK_BYTES, 12345]);
    expect((await admin.getBlobClient('ctx/big.tar.gz').downloadToBuffer()).equals(body)).toBe(true);
    expect((await admin.getBlobClient('ctx/big.tar.gz').getProperties()).contentType).toBe('application/gzip');
    // A stream: what the kaniko builder hands over (a tar.gz made on the fly).
    await store.upload(
      `${CTX}/ctx/stream.tar.gz`,
      Readable.from([body.subarray(0, BLOCK_BYTES + 7), body.subarray(BLOCK_BYTES + 7)]),
    );
    const streamed = await admin.getBlockBlobClient('ctx/stream.tar.gz').getBlockList('committed');
    expect(streamed.committedBlocks?.length).toBe(3);
    expect((await admin.getBlobClient('ctx/stream.tar.gz').downloadToBuffer()).equals(body)).toBe(true);
    // A small body is one request.
    await store.upload(`${CTX}/ctx/small`, Buffer.from('hello'));
    expect((await admin.getBlobClient('ctx/small').downloadToBuffer()).toString()).toBe('hello');
  }, 120_000);

  it('presign: a user-delegation SAS GETs the blob without credentials, for that blob only and read only', async () => {
    await store.upload(`${CTX}/ctx/presigned.txt`, Buffer.from('context bytes'));
    const url = await store.presign(`${CTX}/ctx/presigned.txt`, 600);
    expect(url.startsWith(`${azurite.origin}/${ACCOUNT}/liftoff-ctx/ctx/presigned.txt?`)).toBe(true);
    const params = new URL(url).searchParams;
    expect(params.get('sp')).toBe('r');
    expect(params.get('skoid')).toBeTruthy(); // signed with a user-delegation key, not an account key
    const got = await httpsGet(url, azurite.ca);
    expect(got.status).toBe(200);
    expect(got.body.toString()).toBe('context bytes');
    // The same signature on another blob, or altered, is refused by Azurite.
    await store.upload(`${CTX}/ctx/other.txt`, Buffer.from('other'));
    expect((await httpsGet(url.replace('presigned.txt', 'other.txt'), azurite.ca)).status).toBe(403);
    const sig = params.get('sig') as string;
    const tampered = url.replace(
      encodeURIComponent(sig),
      encodeURIComponent(`${sig.startsWith('A') ? 'B' : 'A'}${sig.slice(1)}`),
    );
    expect((await httpsGet(tampered, azurite.ca)).status).toBe(403);
    // Without a signature at all, no access.
    expect((await httpsGet(url.split('?')[0] as string, azurite.ca)).status).not.toBe(200);
    await expect(store.presign(`${CTX}/ctx/presigned.txt`, 8 * 24 * 3600)).rejects.toThrow('lives 1 to 604800 seconds');
    await expect(store.presign(`${CTX}/ctx/`, 60)).rejects.toThrow('names no blob');
  });

  it('the agent start check finds the build-context container, and stops on a missing one', async () => {
    const lines: string[] = [];
    await checkAzureEnvironment(azure, { buildContextStore: `${CTX}/ctx/` }, (l) => lines.push(l));
    expect(lines[1]).toBe(`azure: build-context store ${CTX}/ctx/ is reachable`);
    expect(id.fetches('https://storage.azure.com')).toBeGreaterThanOrEqual(1);
    await expect(
      checkAzureEnvironment(
        azure,
        { buildContextStore: `https://${ACCOUNT}.blob.core.windows.net/gone/` },
        () => undefined,
      ),
    ).rejects.toThrow('container "gone" does not exist');
  });

  it('parses Blob URIs and refuses other hosts and malformed names', () => {
    expect(parseBlobUri(`${CTX}/a/b.tar.gz`)).toEqual({
      account: ACCOUNT,
      container: 'liftoff-ctx',
      path: 'a/b.tar.gz',
    });
    expect(parseBlobUri(CTX).path).toBe('');
    for (const bad of [
      'https://acct.blob.core.windows.net.evil.com/c/x',
      'https://Acct.blob.core.windows.net/ctx/x',
      'https://acct.blob.core.windows.net/Bad_Container/x',
      'https://acct.blob.core.windows.net/a--b/x',
      'http://acct.blob.core.windows.net/ctx/x',
    ]) {
      expect(() => parseBlobUri(bad), bad).toThrow(AzureEnvironmentError);
    }
    expect(() => objectStoreFor(`${CTX}/x`, {})).toThrow('add environment: {type: azure}');
  });
});
