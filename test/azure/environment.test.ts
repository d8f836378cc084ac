import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { AzureEnvironmentError } from '@liftoff/core';
import { checkAzureEnvironment } from '../../packages/agent/src/environments/azure/check.js';
import { azureClientSettings, endpointsFrom } from '../../packages/agent/src/environments/azure/settings.js';
import { CLIENT, TENANT, startFakeIdentity, type FakeIdentity } from '../helpers/azureFake/identity.js';
import { cleanupAll } from '../helpers/procs.js';
import { settingsFrom } from './env.js';

const ARM = 'https://management.azure.com';

/**
 * The azure environment (issue 15): a credential chain made from the injected environment; managed identity from a
 * fake App Service identity endpoint on loopback (one per file: MSAL keeps the endpoint it found for the process).
 */
describe('the azure environment', () => {
  let id: FakeIdentity;
  beforeAll(async () => {
    id = await startFakeIdentity();
  });
  afterEach(() => {
    vi.useRealTimers();
    vi.unstubAllEnvs();
    delete id.tokenStatus;
    id.expiresIn = 3600;
  });
  afterAll(cleanupAll);

  it('the fake identity endpoint refuses requests without the X-IDENTITY-HEADER secret, as App Service does', async () => {
    const url = `${id.url}?api-version=2019-08-01&resource=${encodeURIComponent(ARM)}`;
    const before = id.refused();
    expect((await fetch(url)).status).toBe(401);
    expect((await fetch(url, { headers: { 'x-identity-header': 'wrong' } })).status).toBe(401);
    expect(id.refused()).toBe(before + 2);
    const ok = await fetch(url, { headers: { 'x-identity-header': id.env.IDENTITY_HEADER as string } });
    const body = (await ok.json()) as { access_token: string };
    expect(id.issued(body.access_token, ARM)).toBe(true);
    expect(id.issued(body.access_token, 'https://storage.azure.com')).toBe(false);
  });

  it('one chain: concurrent callers share one token fetch per scope, and it is fetched again once near its expiry', async () => {
    const azure = await settingsFrom(id.env);
    const client = process.env.AZURE_CLIENT_ID as string;
    expect(azure.sources).toEqual([`managed identity (client id ${client})`]);
    const first = await Promise.all(Array.from({ length: 5 }, () => azure.token(`${ARM}/.default`)));
    expect(id.fetches(ARM, client)).toBe(1);
    expect(new Set(first.map((t) => t.token)).size).toBe(1);
    expect(id.issued(first[0]?.token as string, ARM)).toBe(true);
    expect((await azure.token(`${ARM}/.default`)).token).toBe(first[0]?.token); // cached
    expect(id.fetches(ARM, client)).toBe(1);
    // Another scope is another token.
    await azure.token('https://storage.azure.com/.default');
    expect(id.fetches('https://storage.azure.com', client)).toBe(1);
    // 56 minutes on: inside the 5-minute early-refresh window. Five callers at once, one fetch.
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(Date.now() + 56 * 60_000);
    const second = await Promise.all(Array.from({ length: 5 }, () => azure.token(`${ARM}/.default`)));
    expect(id.fetches(ARM, client)).toBe(2);
    expect(new Set(second.map((t) => t.token)).size).toBe(1);
    expect(second[0]?.token).not.toBe(first[0]?.token);
  });

  it('the start check gets a token and logs tenant and principal', async () => {
    const azure = await settingsFrom(id.env);
    const client = process.env.AZURE_CLIENT_ID as string;
    const lines: string[] = [];
    const identity = await checkAzureEnvironment(azure, {}, (l) => lines.push(l));
    expect(lines).toEqual([`azure: tenant ${TENANT}, principal ${client}`]);
    expect(identity).toEqual({ tenantId: TENANT, principal: client });
    expect(id.fetches(ARM, client)).toBe(1);
  });

  it('an identity endpoint that refuses the token stops the check with one line', async () => {
    id.tokenStatus = 400; // no identity assigned to the app
    const azure = await settingsFrom(id.env);
    const err = await checkAzureEnvironment(azure, {}, () => undefined).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AzureEnvironmentError);
    expect((err as Error).message).toMatch(
      /^Azure refused the agent's credentials when asked for an access token \(.*\); check AZURE_TENANT_ID/,
    );
    expect((err as Error).message).not.toContain('\n');
  });

  it('refuses malformed variables, naming them', async () => {
    await expect(azureClientSettings({ type: 'azure' }, { AZURE_TENANT_ID: 'not a tenant!' })).rejects.toThrow(
      'AZURE_TENANT_ID="not a tenant!" is not a tenant id',
    );
    await expect(
      azureClientSettings({ type: 'azure' }, { AZURE_AUTHORITY_HOST: 'http://login.example.com' }),
    ).rejects.toThrow('must be an https:// URL');
    expect(endpointsFrom({ LIFTOFF_AZURE_BLOB_ENDPOINT: 'https://127.0.0.1:10000/' })).toEqual({
      blob: 'https://127.0.0.1:10000',
    });
    expect(() => endpointsFrom({ LIFTOFF_AZURE_BLOB_ENDPOINT: 'http://127.0.0.1:10000' })).toThrow(
      'must be an https:// URL',
    );
    await expect(
      azureClientSettings({ type: 'azure' }, { NODE_EXTRA_CA_CERTS: '/nonexistent/ca.pem' }),
    ).rejects.toThrow('NODE_EXTRA_CA_CERTS="/nonexistent/ca.pem" cannot be read');
  });

  it('a service principal in the environment comes first in the chain', async () => {
    const azure = await azureClientSettings(
      { type: 'azure' },
      { AZURE_TENANT_ID: TENANT, AZURE_CLIENT_ID: CLIENT, AZURE_CLIENT_SECRET: 's3cret' },
    );
    expect(azure.sources).toEqual([
      'service principal (AZURE_CLIENT_SECRET)',
      `managed identity (client id ${CLIENT})`,
    ]);
    expect(azure.tenantId).toBe(TENANT);
  });
});
