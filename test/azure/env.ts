import { randomUUID } from 'node:crypto';
import { vi } from 'vitest';
import { azureClientSettings } from '../../packages/agent/src/environments/azure/settings.js';
import type { AzureClientSettings } from '../../packages/agent/src/environments/types.js';
import { AZURE_VARIABLES } from '../helpers/azureFake/identity.js';

/** Where the VM identity endpoint (IMDS) is looked for in tests: a closed loopback port, never 169.254.169.254. */
export const NO_IMDS = { AZURE_POD_IDENTITY_AUTHORITY_HOST: 'http://127.0.0.1:9' };

/**
 * Makes `extra` the Azure part of this test process's environment (every other identity source unset, IMDS pointed
 * at a closed loopback port) and builds the settings from it, as the CLI does from its own environment: MSAL reads
 * the process's variables to pick a managed-identity endpoint, so that is where they go. Each call names a new
 * user-assigned identity (AZURE_CLIENT_ID) unless `extra` names one: MSAL keeps managed-identity tokens in one
 * process-wide cache keyed by identity, and a test must not be served another test's token.
 */
export async function settingsFrom(extra: Record<string, string>): Promise<AzureClientSettings> {
  vi.unstubAllEnvs();
  for (const name of AZURE_VARIABLES) vi.stubEnv(name, undefined);
  const env = { ...NO_IMDS, AZURE_CLIENT_ID: randomUUID(), ...extra };
  for (const [k, v] of Object.entries(env)) vi.stubEnv(k, v);
  return azureClientSettings({ type: 'azure' }, process.env);
}
