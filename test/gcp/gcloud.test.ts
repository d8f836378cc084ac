import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { objectStoreFor } from '../../packages/agent/src/objectStores/index.js';
import { startFakeGcs, type FakeGcs } from '../helpers/gcpFake/gcs.js';
import { startFakeMetadata, type FakeMetadata } from '../helpers/gcpFake/metadata.js';
import { gcloudAvailable, gcloudEnv, runGcloud } from '../helpers/gcloud.js';
import { cleanupAll, tempDir } from '../helpers/procs.js';
import { settingsFrom } from './env.js';

/**
 * The preinstalled Google Cloud CLI, a client Liftoff did not write, against the same fakes (issue 14): `gcloud
 * storage cp` / `cat` through `api_endpoint_overrides/storage`, authenticated by the fake metadata server. Its config
 * dir is a temp dir (no account, usage reporting and update checks off), and every proxy variable points at a dead
 * loopback port with only 127.0.0.1 exempt, so a request for anything beyond loopback fails instead of leaving.
 */
describe.skipIf(!gcloudAvailable('the gcloud cross-check'))(
  'gcloud against the fake metadata server and fake GCS',
  () => {
    let md: FakeMetadata;
    let gcs: FakeGcs;
    let env: Record<string, string>;
    const gcloud = (...args: string[]) => runGcloud(env, ...args);

    beforeAll(async () => {
      md = await startFakeMetadata();
      gcs = await startFakeGcs({ buckets: ['liftoff-ctx'], acceptToken: (t) => md.tokens.includes(t) });
      env = gcloudEnv('liftoff-test-project', {
        CLOUDSDK_API_ENDPOINT_OVERRIDES_STORAGE: `${gcs.url}/storage/v1/`,
        ...md.env,
      });
    });
    afterAll(async () => {
      vi.unstubAllEnvs();
      await cleanupAll();
    });

    it('gcloud storage cp uploads to the fake and cat reads back what Liftoff uploaded', async () => {
      const file = join(tempDir(), 'hello.txt');
      writeFileSync(file, 'written by gcloud\n');
      const cp = await gcloud('storage', 'cp', file, 'gs://liftoff-ctx/from-gcloud.txt');
      expect(cp.code, `${cp.output} ${gcs.calls.join(', ')}`).toBe(0);
      expect(gcs.buckets.get('liftoff-ctx')?.get('from-gcloud.txt')?.data.toString()).toBe('written by gcloud\n');
      const gcp = await settingsFrom({ ...md.env, STORAGE_EMULATOR_HOST: gcs.url });
      await objectStoreFor('gs://liftoff-ctx/x', { gcp }).upload(
        'gs://liftoff-ctx/from-liftoff.txt',
        Buffer.from('written by Liftoff\n'),
      );
      const cat = await gcloud('storage', 'cat', 'gs://liftoff-ctx/from-liftoff.txt');
      expect(cat.code, cat.output).toBe(0);
      expect(cat.output).toContain('written by Liftoff');
      // gcloud authenticated with the metadata server's token (the fake GCS refuses any other).
      expect(md.tokenFetches()).toBeGreaterThan(0);
      expect(gcs.calls.filter((c) => c.startsWith('unknown'))).toEqual([]);
    }, 120_000);
  },
);
