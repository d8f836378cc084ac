import { vi } from 'vitest';
import { gcpClientSettings } from '../../packages/agent/src/environments/gcp/settings.js';
import type { GcpClientSettings } from '../../packages/agent/src/environments/types.js';
import { GCP_VARIABLES, gcpEnv } from '../helpers/gcpFake/metadata.js';
import { tempDir } from '../helpers/procs.js';

export const PROJECT = 'liftoff-test-project';
export const REGION = 'us-central1';

/**
 * Makes `extra` the Google part of this test process's environment (every other ADC source unset: no key file, an
 * empty gcloud config dir, no metadata server unless `extra` points at the fake) and builds the settings from it, as
 * the CLI does from its own environment: the auth library reads the process's variables, so that is where they go.
 */
export async function settingsFrom(extra: Record<string, string>): Promise<GcpClientSettings> {
  vi.unstubAllEnvs();
  for (const name of GCP_VARIABLES) vi.stubEnv(name, undefined);
  for (const [k, v] of Object.entries(gcpEnv(tempDir('liftoff-gcp-home-'), extra))) vi.stubEnv(k, v);
  return gcpClientSettings({ type: 'gcp', project: PROJECT, region: REGION }, process.env);
}
