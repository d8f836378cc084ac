import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dockerAvailable, startRegistry } from '../helpers/docker.js';
import { startFakeMetadata, type FakeMetadata } from '../helpers/gcpFake/metadata.js';
import { gcloudAvailable, gcloudEnv, runGcloud } from '../helpers/gcloud.js';
import { cleanupAll, until } from '../helpers/procs.js';
import { pushTestImage } from '../helpers/vertexFake/image.js';
import { startFakeVertex, type FakeVertex } from '../helpers/vertexFake/server.js';

const PROJECT = 'liftoff-test-project';
const TOKEN = 'ya29.liftoff-vertex-gcloud';

/**
 * The preinstalled Google Cloud CLI, a Vertex client Liftoff did not write, against the fake Vertex AI and Cloud
 * Logging: `gcloud ai custom-jobs create / describe / cancel / stream-logs` through `api_endpoint_overrides/aiplatform`
 * and `.../logging`, authenticated by the fake metadata server, with a temp config dir (usage reporting and update
 * checks off) and every proxy variable at a dead loopback port with only 127.0.0.1 exempt, so nothing leaves loopback.
 */
describe.skipIf(!dockerAvailable() || !gcloudAvailable('the gcloud Vertex cross-check'))(
  'gcloud ai custom-jobs against the fake Vertex AI',
  () => {
    let md: FakeMetadata;
    let fake: FakeVertex;
    let image: string;
    let env: Record<string, string>;
    const gcloud = (...args: string[]) => runGcloud(env, ...args);

    beforeAll(async () => {
      md = await startFakeMetadata({ token: TOKEN });
      const registry = await startRegistry({ username: 'oauth2accesstoken', password: TOKEN });
      image = `${registry.host}/${PROJECT}/jobs/gcloud:1`;
      await pushTestImage(registry, image);
      fake = await startFakeVertex({
        project: PROJECT,
        acceptToken: (t) => md.tokens.includes(t),
        pullAuth: () => ({ username: 'oauth2accesstoken', password: TOKEN, serveraddress: registry.host }),
      });
      env = gcloudEnv(PROJECT, {
        CLOUDSDK_API_ENDPOINT_OVERRIDES_AIPLATFORM: `${fake.url}/`,
        CLOUDSDK_API_ENDPOINT_OVERRIDES_LOGGING: `${fake.loggingUrl}/`,
        ...md.env,
      });
    }, 120_000);
    afterAll(async () => {
      await fake?.close();
      await cleanupAll();
    });

    it('creates, describes, streams the logs of and cancels a custom job', async () => {
      const created = await gcloud(
        'ai',
        'custom-jobs',
        'create',
        '--region=us-central1',
        '--display-name=from-gcloud',
        `--worker-pool-spec=machine-type=n1-standard-4,replica-count=1,container-image-uri=${image}`,
        '--command=sh',
        '--args=-c,echo hello from gcloud; sleep 60',
        '--format=value(name)',
      );
      expect(created.code, `${created.output}\n${fake.calls.join('\n')}`).toBe(0);
      const id = /customJobs\/(\d+)/.exec(created.output)?.[1] ?? '';
      expect(id).not.toBe('');
      await until(() => (fake.jobs.jobs.get(id)?.state === 'JOB_STATE_RUNNING' ? true : undefined));
      const described = await gcloud('ai', 'custom-jobs', 'describe', id, '--region=us-central1', '--format=json');
      expect(described.code, described.output).toBe(0);
      expect(described.output).toContain('"displayName": "from-gcloud"');
      await until(() => (fake.logging.entries.some((e) => e.textPayload === 'hello from gcloud') ? true : undefined));
      const cancelled = await gcloud('ai', 'custom-jobs', 'cancel', id, '--region=us-central1');
      expect(cancelled.code, cancelled.output).toBe(0);
      await until(() => (fake.jobs.jobs.get(id)?.state === 'JOB_STATE_CANCELLED' ? true : undefined));
      // stream-logs polls until the job is terminal, then stops.
      const logs = await gcloud('ai', 'custom-jobs', 'stream-logs', id, '--region=us-central1', '--polling-interval=1');
      expect(logs.code, `${logs.output}\n${fake.logging.filters.join('\n')}`).toBe(0);
      expect(logs.output).toContain('hello from gcloud');
      expect(fake.calls.filter((c) => c.startsWith('unknown'))).toEqual([]);
    }, 180_000);
  },
);
