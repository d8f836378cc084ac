import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { AzureEnvironmentError } from '@liftoff/core';
import { checkAzureEnvironment } from '../../packages/agent/src/environments/azure/check.js';
import { startFakeEntra } from '../helpers/azureFake/entra.js';
import { CLIENT, TENANT } from '../helpers/azureFake/identity.js';
import { cleanupAll, tempDir } from '../helpers/procs.js';
import { settingsFrom } from './env.js';

/**
 * A service principal (AZURE_TENANT_ID + AZURE_CLIENT_ID + AZURE_CLIENT_SECRET), and workload identity (the same
 * with AZURE_FEDERATED_TOKEN_FILE), through MSAL's client credentials flow against a fake Entra authority on loopback (AZURE_AUTHORITY_HOST, HTTPS with a test CA given as
 * NODE_EXTRA_CA_CERTS): the agent's own settings turn instance discovery off for it, so nothing is asked of
 * login.microsoftonline.com.
 */
describe('an azure environment with a service principal or workload identity', () => {
  afterEach(() => vi.unstubAllEnvs());
  afterAll(cleanupAll);

  it('gets a token from the authority for the start check, and a wrong secret stops it with Entra’s reason', async () => {
    const entra = await startFakeEntra();
    const env = {
      AZURE_TENANT_ID: TENANT,
      AZURE_CLIENT_ID: CLIENT,
      AZURE_CLIENT_SECRET: entra.secret,
      AZURE_AUTHORITY_HOST: entra.origin,
      NODE_EXTRA_CA_CERTS: entra.caFile,
    };
    const azure = await settingsFrom(env);
    expect(azure.sources[0]).toBe('service principal (AZURE_CLIENT_SECRET)');
    const lines: string[] = [];
    await checkAzureEnvironment(azure, {}, (l) => lines.push(l));
    expect(lines).toEqual([`azure: tenant ${TENANT}, principal ${CLIENT}`]);
    expect(entra.tokenFetches()).toBe(1);
    expect(
      entra.issued((await azure.token('https://management.azure.com/.default')).token, 'https://management.azure.com'),
    ).toBe(true);
    expect(entra.unknown).toEqual([]);

    const wrong = await settingsFrom({ ...env, AZURE_CLIENT_SECRET: 'not-the-secret' });
    const err = await checkAzureEnvironment(wrong, {}, () => undefined).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AzureEnvironmentError);
    expect((err as Error).message).toMatch(
      /^Azure refused the agent's credentials when asked for an access token \(.*AADSTS7000215: Invalid client secret provided.*\); check AZURE_TENANT_ID, AZURE_CLIENT_ID and the secret/,
    );
    expect((err as Error).message).not.toContain('\n');

    // An authority whose certificate the agent does not trust: that source's problem, named, not "no credentials".
    const untrusted = await settingsFrom({ ...env, NODE_EXTRA_CA_CERTS: '' });
    const tlsErr = await checkAzureEnvironment(untrusted, {}, () => undefined).catch((e: unknown) => e);
    expect(tlsErr).toBeInstanceOf(AzureEnvironmentError);
    expect((tlsErr as Error).message).toMatch(
      /^Could not get an Azure token with the service principal \(AZURE_CLIENT_SECRET\) the agent's environment configures \(.*endpoints_resolution_error.*\); check AZURE_AUTHORITY_HOST/,
    );
  });

  it('a service principal with a certificate: the assertion MSAL signs with its key is accepted', async () => {
    const entra = await startFakeEntra();
    const env = {
      AZURE_TENANT_ID: TENANT,
      AZURE_CLIENT_ID: CLIENT,
      AZURE_CLIENT_CERTIFICATE_PATH: entra.certificateFile,
      AZURE_AUTHORITY_HOST: entra.origin,
      NODE_EXTRA_CA_CERTS: entra.caFile,
    };
    const azure = await settingsFrom(env);
    expect(azure.sources[0]).toBe('service principal (AZURE_CLIENT_CERTIFICATE_PATH)');
    await checkAzureEnvironment(azure, {}, () => undefined);
    expect(entra.tokenFetches()).toBe(1);
    // Another application's certificate is refused by the authority.
    const other = await startFakeEntra();
    const wrong = await settingsFrom({ ...env, AZURE_CLIENT_CERTIFICATE_PATH: other.certificateFile });
    await expect(checkAzureEnvironment(wrong, {}, () => undefined)).rejects.toBeInstanceOf(AzureEnvironmentError);
    expect(entra.unknown).toEqual([]);
  });

  it('workload identity: the federated token file is the client assertion', async () => {
    const entra = await startFakeEntra();
    const file = join(tempDir('liftoff-wi-'), 'token');
    writeFileSync(file, entra.assertion);
    const env = {
      AZURE_TENANT_ID: TENANT,
      AZURE_CLIENT_ID: CLIENT,
      AZURE_FEDERATED_TOKEN_FILE: file,
      AZURE_AUTHORITY_HOST: entra.origin,
      NODE_EXTRA_CA_CERTS: entra.caFile,
    };
    const azure = await settingsFrom(env);
    expect(azure.sources[0]).toBe('workload identity (AZURE_FEDERATED_TOKEN_FILE)');
    await checkAzureEnvironment(azure, {}, () => undefined);
    expect(entra.tokenFetches()).toBe(1);
    // Another token in the file (a rotated or foreign one) is refused by the authority.
    writeFileSync(file, 'eyJ.someone-else');
    const other = await settingsFrom(env);
    await expect(checkAzureEnvironment(other, {}, () => undefined)).rejects.toBeInstanceOf(AzureEnvironmentError);
    expect(entra.unknown).toEqual([]);
  });
});
