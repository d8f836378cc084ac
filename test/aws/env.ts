import { vi } from 'vitest';
import { awsClientSettings } from '../../packages/agent/src/environments/aws/settings.js';
import type { AwsClientSettings } from '../../packages/agent/src/environments/types.js';
import { AWS_CHAIN_VARIABLES } from '../helpers/moto.js';

/**
 * Makes `env` the AWS part of this test process's environment (every other credential source of the SDK's chain
 * unset, IMDS disabled) and builds the settings from it, as the CLI does from its own environment: the SDK's chain
 * reads the process's variables, so the test process is where they must be.
 */
export async function settingsFrom(env: Record<string, string>, region = 'us-east-1'): Promise<AwsClientSettings> {
  vi.unstubAllEnvs();
  for (const name of AWS_CHAIN_VARIABLES) vi.stubEnv(name, undefined);
  vi.stubEnv('AWS_EC2_METADATA_DISABLED', 'true');
  for (const [k, v] of Object.entries(env)) vi.stubEnv(k, v);
  return awsClientSettings({ type: 'aws', region }, process.env);
}
