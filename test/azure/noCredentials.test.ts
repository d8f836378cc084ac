import { afterEach, describe, expect, it, vi } from 'vitest';
import { AzureCredentialsMissingError } from '@liftoff/core';
import { checkAzureEnvironment } from '../../packages/agent/src/environments/azure/check.js';
import { settingsFrom } from './env.js';

/**
 * An azure environment with nothing to authenticate with: no service principal or workload identity variables, no
 * managed-identity endpoint, and the VM identity endpoint (IMDS) looked for on a closed loopback port instead of
 * 169.254.169.254. A file of its own: MSAL keeps the first managed-identity endpoint it finds for the process.
 */
describe('an azure environment without credentials', () => {
  afterEach(() => vi.unstubAllEnvs());

  it('fails the start check with the named error saying every way to provide them', async () => {
    const azure = await settingsFrom({});
    const err = await checkAzureEnvironment(azure, {}, () => undefined).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AzureCredentialsMissingError);
    expect((err as Error).message).toMatch(
      /^The agent config has an azure environment, but no Azure credentials were found \(tried: managed identity \(client id [0-9a-f-]+\)\)\. Provide them to the agent process: a service principal \(AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET/,
    );
    expect((err as Error).message).not.toContain('\n');
  });
});
