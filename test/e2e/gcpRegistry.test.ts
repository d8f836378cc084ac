import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupDockerAfter, dockerAvailable, PYTHON, startRegistry, type TestRegistry } from '../helpers/docker.js';
import { startFakeGcs, type FakeGcs } from '../helpers/gcpFake/gcs.js';
import { startFakeMetadata, type FakeMetadata } from '../helpers/gcpFake/metadata.js';
import { codeDir } from '../helpers/jobs.js';
import { agentConfig, cleanupAll, cli, startAgent, startServer, tempDir, type TestServer } from '../helpers/procs.js';

const PROJECT = 'liftoff-test-project';
const TOKEN = 'ya29.liftoff-e2e-token';

/**
 * The specification's gcp example agent config (environment gcp + registry gcr, docker builder) end to end (issue
 * 14): real `liftoff` server and agent processes, ADC from a fake metadata server on loopback, a fake GCS for the
 * build-context store, and as "Artifact Registry" a real Distribution registry whose only login is
 * `oauth2accesstoken:<the metadata server's token>`. Its host is given by `registry.uri` (a loopback host is the one
 * non-pkg.dev host the gcr registry accepts), as no test may reach *-docker.pkg.dev.
 */
const SPEC_CONFIG = (registryHost: string, extra = '') => `entity: default
max_jobs: -1
queues:
- gar-box
environment:
  type: gcp
  region: us-central1
  project: ${PROJECT}
registry:
  type: gcr
  uri: ${registryHost}/${PROJECT}/jobs/trainer
builder:
  type: docker
${extra}`;

const PRINT_ENV = 'import os\nprint("ENVKEYS", sorted(os.environ))\nprint("ran the Artifact Registry image")\n';

describe.skipIf(!dockerAvailable())('an agent with the gcp environment and a gcr registry', () => {
  let server: TestServer;
  let md: FakeMetadata;
  let gcs: FakeGcs;
  let registry: TestRegistry;
  let agentEnv: Record<string, string>;
  const agents: string[] = [];

  beforeAll(async () => {
    md = await startFakeMetadata({ token: TOKEN });
    gcs = await startFakeGcs({ buckets: ['liftoff-ctx'], acceptToken: (t) => t === TOKEN });
    registry = await startRegistry({ username: 'oauth2accesstoken', password: TOKEN });
    // Everything Google-ish the agent has; none of it may reach a job.
    agentEnv = {
      ...md.env,
      CLOUDSDK_CONFIG: tempDir('liftoff-gcloud-'),
      STORAGE_EMULATOR_HOST: gcs.url,
      GOOGLE_CLOUD_PROJECT: PROJECT,
    };
    server = await startServer();
    await server.client.createQueue('default', {
      name: 'gar-box',
      resource: 'local-container',
      resource_args: { 'local-container': { builder: { base_image: PYTHON } } },
    });
    cleanupDockerAfter(() => agents);
  }, 120_000);
  afterAll(cleanupAll);

  it('builds a code job, pushes it to the registry with the metadata token, runs it without the agent Google variables', async () => {
    const config = SPEC_CONFIG(registry.host, '  build-context-store: gs://liftoff-ctx/ctx/\n');
    const agent = await startAgent(server, {
      queues: ['gar-box'],
      name: 'gar-agent',
      config: agentConfig(tempDir(), config),
      env: agentEnv,
    });
    agents.push('gar-agent');
    expect(agent.proc.output).toContain(
      `gcp: project ${PROJECT}, principal liftoff-agent@${PROJECT}.iam.gserviceaccount.com, region us-central1`,
    );
    expect(agent.proc.output).toContain('gcp: build-context store gs://liftoff-ctx/ctx/ is reachable');
    const dir = codeDir({ 'main.py': PRINT_ENV });
    const first = await cli(['launch', '-q', 'gar-box', '--code', dir, '-E', 'python3 main.py', '--wait'], server.env);
    expect(first.code, first.output).toBe(0);
    const image = /building (\S+) from/.exec(first.output)?.[1] as string;
    expect(image.startsWith(`${registry.host}/${PROJECT}/jobs/trainer:`)).toBe(true);
    expect(first.output).toContain('ran the Artifact Registry image');
    const keys = /ENVKEYS \[(.*)\]/.exec(first.output)?.[1] ?? '';
    expect(keys).toContain("'LIFTOFF_RUN_ID'");
    for (const prefix of ["'GOOGLE_", "'GCE_", "'METADATA_SERVER", "'CLOUDSDK_", "'STORAGE_EMULATOR"]) {
      expect(keys).not.toContain(prefix);
    }
    // The push landed in the registry under the one login the token gives.
    const auth = `Basic ${Buffer.from(`oauth2accesstoken:${TOKEN}`).toString('base64')}`;
    const tags = (await (
      await fetch(`http://${registry.host}/v2/${PROJECT}/jobs/trainer/tags/list`, { headers: { authorization: auth } })
    ).json()) as { tags: string[] };
    expect(tags.tags).toContain(image.split(':').at(-1));
    // The same inputs again: the OCI manifest HEAD (with the token) finds the image and skips the build.
    const second = await cli(['launch', '-q', 'gar-box', '--code', dir, '-E', 'python3 main.py', '--wait'], server.env);
    expect(second.code, second.output).toBe(0);
    expect(second.output).toContain(`image ${image} already exists`);
    expect(md.tokenFetches()).toBeGreaterThanOrEqual(1);
    await agent.stop();
  }, 240_000);

  it('without Google credentials the agent stops at start (exit 2), saying how to provide them', async () => {
    const r = await cli(
      [
        'launch-agent',
        '--name',
        'no-creds',
        '--data-dir',
        join(tempDir(), 'a'),
        '-c',
        agentConfig(tempDir(), SPEC_CONFIG(registry.host)),
      ],
      { ...server.env, CLOUDSDK_CONFIG: tempDir('liftoff-gcloud-'), METADATA_SERVER_DETECTION: 'none' },
    );
    expect(r.code).toBe(2);
    expect(r.output).toMatch(
      /^liftoff: error: The agent config has a gcp environment, but no Google Cloud credentials were found \(.*\)\. Provide them/m,
    );
    expect(r.output).not.toContain('    at ');
  }, 60_000);

  it('a build-context bucket that does not exist stops the agent at start (exit 2), naming it', async () => {
    const config = SPEC_CONFIG(registry.host, '  build-context-store: gs://liftoff-missing-bucket/ctx/\n');
    const r = await cli(
      ['launch-agent', '--name', 'no-bucket', '--data-dir', join(tempDir(), 'a'), '-c', agentConfig(tempDir(), config)],
      { ...server.env, ...agentEnv },
    );
    expect(r.code).toBe(2);
    expect(r.output).toContain(
      'liftoff: error: builder.build-context-store gs://liftoff-missing-bucket/ctx/: bucket "liftoff-missing-bucket" does not exist; create it (gcloud storage buckets create gs://liftoff-missing-bucket',
    );
  }, 60_000);
});
