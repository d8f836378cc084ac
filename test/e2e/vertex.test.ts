import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupDockerAfter, dockerAvailable, PYTHON, startRegistry, type TestRegistry } from '../helpers/docker.js';
import { startFakeMetadata, type FakeMetadata } from '../helpers/gcpFake/metadata.js';
import { codeDir } from '../helpers/jobs.js';
import {
  agentConfig,
  cleanupAll,
  cli,
  liftoff,
  sleep,
  startAgent,
  startServer,
  tempDir,
  until,
  type TestAgent,
  type TestServer,
} from '../helpers/procs.js';
import { pushTestImage } from '../helpers/vertexFake/image.js';
import { startFakeVertex, type FakeVertex } from '../helpers/vertexFake/server.js';

const PROJECT = 'liftoff-test-project';
const TOKEN = 'ya29.liftoff-vertex-e2e';

/**
 * The specification's gcp example agent config as written (environment gcp with region and project, registry gcr
 * with repository and image-name, docker builder) with vertex queues, end to end (issue 14): real `liftoff` server and agent processes; ADC from the fake metadata server; Vertex AI and
 * Cloud Logging are the loopback test endpoints (through gcloud's endpoint-override variables), which run custom jobs
 * on the real Docker engine pulling from a real registry with the `oauth2accesstoken` login, which serves the
 * config's `us-central1-docker.pkg.dev` through LIFTOFF_GAR_DOCKER_HOST. Nothing leaves loopback.
 */
const SPEC_CONFIG = `entity: default
max_jobs: -1
queues:
- vx
- vx-w
environment:
  type: gcp
  region: us-central1
  project: ${PROJECT}
registry:
  type: gcr
  repository: my-artifact-repo
  image-name: my-image-name
builder:
  type: docker
vertex:
  poll-seconds: 0.3
  log-tail-seconds: 1
`;

const POOLS = [{ machine_spec: { machine_type: 'n1-standard-4' }, replica_count: 1, container_spec: {} }];

describe.skipIf(!dockerAvailable())('vertex queues with real server and agent processes', () => {
  let md: FakeMetadata;
  let fake: FakeVertex;
  let registry: TestRegistry;
  let server: TestServer;
  let agent: TestAgent;
  let agentEnv: Record<string, string>;
  let image: string;
  let config: string;
  const dataDir = () => join(server.home, 'agents', 'vx-agent');
  const restart = async () =>
    (agent = await startAgent(server, {
      queues: ['vx', 'vx-w'],
      name: 'vx-agent',
      dataDir: dataDir(),
      config,
      env: agentEnv,
    }));

  beforeAll(async () => {
    md = await startFakeMetadata({ token: TOKEN });
    registry = await startRegistry({ username: 'oauth2accesstoken', password: TOKEN });
    image = `${registry.host}/${PROJECT}/jobs/busybox:1`;
    await pushTestImage(registry, image);
    fake = await startFakeVertex({
      project: PROJECT,
      acceptToken: (t) => md.tokens.includes(t),
      pullAuth: () => ({ username: 'oauth2accesstoken', password: TOKEN, serveraddress: registry.host }),
    });
    agentEnv = {
      ...md.env,
      CLOUDSDK_CONFIG: tempDir('liftoff-gcloud-'),
      CLOUDSDK_API_ENDPOINT_OVERRIDES_AIPLATFORM: fake.url,
      CLOUDSDK_API_ENDPOINT_OVERRIDES_LOGGING: fake.loggingUrl,
      // us-central1-docker.pkg.dev (from region + repository + image-name) is served by the test registry.
      LIFTOFF_GAR_DOCKER_HOST: registry.host,
    };
    server = await startServer();
    const args = {
      spec: { staging_bucket: 'gs://liftoff-staging', worker_pool_specs: POOLS },
      builder: { base_image: PYTHON },
    };
    await server.client.createQueue('default', { name: 'vx', resource: 'vertex', resource_args: { vertex: args } });
    // W&B's resource name, with W&B's key for its args.
    await server.client.createQueue('default', {
      name: 'vx-w',
      resource: 'gcp-vertex',
      resource_args: { 'gcp-vertex': args },
    });
    config = agentConfig(tempDir(), SPEC_CONFIG);
    cleanupDockerAfter(() => ['vx-agent']);
    await restart();
  }, 180_000);
  afterAll(async () => {
    await fake?.close();
    await cleanupAll();
  });

  const itemOf = async (args: string[], queue = 'vx') => {
    const r = await cli(['launch', '-q', queue, ...args, '--json'], server.env);
    expect(r.code, r.output).toBe(0);
    return (JSON.parse(r.output) as { id: string }).id;
  };
  const runOf = async (itemId: string, logIncludes?: string): Promise<string> => {
    for (;;) {
      const item = await server.client.getItem(itemId);
      if (item.run_id) {
        if (!logIncludes) return item.run_id;
        if ((await server.client.readLogs(item.run_id)).data.includes(logIncludes)) return item.run_id;
      }
      await sleep(200);
    }
  };
  const ended = async (runId: string) => {
    for (;;) {
      const run = await server.client.getRun(runId);
      if (['finished', 'failed', 'stopped', 'preempted', 'lost'].includes(run.status)) return run;
      await sleep(200);
    }
  };
  const jobOf = (runId: string) =>
    [...fake.jobs.jobs.values()].find((j) => (j.spec.labels as Record<string, string>)['liftoff-run-id'] === runId);
  const creates = () => fake.calls.filter((c) => /^POST \/v1\/.*\/customJobs$/.test(c)).length;

  it('builds a code job, pushes it, runs it as a custom job to its exit code; a gcp-vertex queue runs the same way', async () => {
    const dir = codeDir({ 'main.py': 'import os\nprint("hello from job", os.environ["CLOUD_ML_JOB_ID"])\n' });
    const ok = await cli(['launch', '-q', 'vx', '--code', dir, '-E', 'python3 main.py', '--wait'], server.env);
    expect(ok.code, ok.output).toBe(0);
    expect(ok.output).toMatch(/hello from job \d+/);
    expect(ok.output).toMatch(/vertex custom job projects\/\S+\/customJobs\/\d+ created/);
    const [run] = (await server.client.listRuns('default', { queue: 'vx', limit: 1 })).runs;
    const built = (
      jobOf(run?.id ?? '')?.spec.jobSpec as { workerPoolSpecs: Array<{ containerSpec: { imageUri: string } }> }
    ).workerPoolSpecs[0]?.containerSpec.imageUri;
    // The spec's repository + image-name in the environment's project (region's pkg.dev host served by the registry).
    expect(built).toMatch(new RegExp(`^${registry.host}/${PROJECT}/my-artifact-repo/my-image-name:[0-9a-f]{16}$`));
    expect(agent.proc.output).toContain(
      `gcp: Artifact Registry images (*-docker.pkg.dev) go to ${registry.host} (LIFTOFF_GAR_DOCKER_HOST)`,
    );
    // The job's base output directory (under the queue's staging bucket) is the run's outputs link.
    expect((await server.client.getRun(run?.id ?? '')).outputs_link).toBe(`gs://liftoff-staging/liftoff/${run?.id}`);

    const bad = await cli(
      ['launch', '-q', 'vx', '--image', image, '-E', 'sh -c "echo failing; exit 3"', '--wait'],
      server.env,
    );
    expect(bad.code, bad.output).toBe(3);
    expect(bad.output).toContain('failing');
    const [failed] = (await server.client.listRuns('default', { queue: 'vx', limit: 1 })).runs;
    expect(failed).toMatchObject({ status: 'failed', exit_code: 3, error_stage: 'run' });
    expect(failed?.error_message).toContain('exited with a non-zero status of 3');

    const w = await cli(['launch', '-q', 'vx-w', '--image', image, '-E', 'echo from-gcp-vertex', '--wait'], server.env);
    expect(w.code, w.output).toBe(0);
    expect(w.output).toContain('from-gcp-vertex');
  }, 300_000);

  it("streams a running custom job's log into `liftoff runs logs -f` while the job runs", async () => {
    const itemId = await itemOf(['--image', image, '-E', 'sh -c "echo first-$((1+1)); sleep 8; echo second-$((2+2))"']);
    const runId = await runOf(itemId);
    const follow = liftoff(['runs', 'logs', runId, '-f'], server.env);
    await follow.waitFor(/first-2/, 90_000);
    expect(follow.output).not.toContain('second-4');
    expect(jobOf(runId)?.state).toBe('JOB_STATE_RUNNING');
    expect((await follow.exited).code).toBe(0);
    expect(follow.output).toContain('second-4');
    expect(follow.output.match(/first-2/g)).toHaveLength(1);
  }, 180_000);

  it('an unknown field fails before any Vertex call, naming it', async () => {
    const before = creates();
    const itemId = await itemOf([
      '--image',
      image,
      '-E',
      'true',
      '--resource-args',
      JSON.stringify({ vertex: { run: { strategee: 'SPOT' } } }),
    ]);
    const run = await ended(await runOf(itemId));
    expect(run).toMatchObject({ status: 'failed', error_stage: 'run' });
    expect(run.error_message).toContain('resource_args.vertex.run.strategee is not a key Liftoff knows');
    expect(creates()).toBe(before);
  }, 60_000);

  const long = () => [
    '--image',
    image,
    '-E',
    'sh -c "trap \\"exit 143\\" TERM; echo started; while true; do sleep 0.2; done"',
  ];

  it('cancel ends stopped and the job CANCELLED; cancelled outside Liftoff and EXPIRED end failed saying so', async () => {
    const a = await runOf(await itemOf(long()), 'started');
    const c = await cli(['runs', 'cancel', a], server.env);
    expect(c.code, c.output).toBe(0);
    expect((await ended(a)).status).toBe('stopped');
    expect(jobOf(a)?.state).toBe('JOB_STATE_CANCELLED');
    const b = await runOf(await itemOf(long()), 'started');
    fake.jobs.cancelOutside(jobOf(b)?.id ?? '');
    const outside = await ended(b);
    expect(outside.status).toBe('failed');
    expect(outside.error_message).toContain('cancelled outside Liftoff');
    const e = await runOf(await itemOf(long()), 'started');
    fake.jobs.expire(jobOf(e)?.id ?? '');
    const expired = await ended(e);
    expect(expired.status).toBe('failed');
    expect(expired.error_message).toContain('expired');
  }, 180_000);

  it("a spot preemption preempts the run and the queue's retries requeue it as a new custom job", async () => {
    const q = await cli(
      ['queue', 'update', 'vx', '--preemption-retries', '1', '--preemption-backoff', '0'],
      server.env,
    );
    expect(q.code, q.output).toBe(0);
    const itemId = await itemOf([
      '--image',
      image,
      '-E',
      'sh -c "echo started; sleep 4; echo trained"',
      '--resource-args',
      JSON.stringify({ vertex: { run: { strategy: 'SPOT' } } }),
    ]);
    const first = await runOf(itemId, 'started');
    fake.jobs.preempt(jobOf(first)?.id ?? '');
    const preempted = await ended(first);
    expect(preempted.status).toBe('preempted');
    expect(preempted.error_message ?? '').toContain('preempted');
    let second = first;
    await until(async () => {
      second = (await server.client.getItem(itemId)).run_id ?? first;
      return second !== first ? true : undefined;
    }, 60_000);
    expect((await ended(second)).status).toBe('finished');
    expect((await server.client.readLogs(second)).data).toContain('trained');
    expect(jobOf(second)?.id).not.toBe(jobOf(first)?.id);
  }, 180_000);

  it('an agent killed with -9 and restarted re-adopts the custom job; the log continues without duplicates', async () => {
    const itemId = await itemOf([
      '--image',
      image,
      '-E',
      'sh -c "for i in 1 2 3 4 5 6 7 8; do echo tick $i; sleep 1; done"',
    ]);
    const runId = await runOf(itemId, 'tick 1');
    agent.proc.kill('SIGKILL');
    await agent.proc.exited;
    await restart();
    const run = await ended(runId);
    expect(run.status).toBe('finished');
    const logs = (await server.client.readLogs(runId)).data;
    expect(logs).toContain('re-adopted vertex custom job');
    for (let i = 1; i <= 8; i++) expect(logs.match(new RegExp(`tick ${i}\\n`, 'g'))).toHaveLength(1);
    expect(
      [...fake.jobs.jobs.values()].filter((j) => (j.spec.labels as Record<string, string>)['liftoff-run-id'] === runId),
    ).toHaveLength(1);
  }, 180_000);

  it('at start the agent cancels an orphan: an unfinished custom job labelled with it that no run holds', async () => {
    const token = md.tokens.at(-1) ?? '';
    const res = await fetch(`${fake.url}/v1/projects/${PROJECT}/locations/us-central1/customJobs`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        display_name: 'orphan',
        labels: { 'liftoff-run-id': 'orphan01', 'liftoff-agent': 'vx-agent' },
        job_spec: {
          worker_pool_specs: [{ replica_count: 1, container_spec: { image_uri: image, command: ['sleep', '300'] } }],
        },
      }),
    });
    expect(res.status).toBe(200);
    const id = String(((await res.json()) as { name: string }).name.split('/').pop());
    await until(() => (fake.jobs.jobs.get(id)?.state === 'JOB_STATE_RUNNING' ? true : undefined), 60_000);
    await agent.stop();
    await restart();
    await until(() => (fake.jobs.jobs.get(id)?.state === 'JOB_STATE_CANCELLED' ? true : undefined), 60_000);
  }, 120_000);

  it('an agent without a gcp environment refuses a vertex queue at start, naming the fix', async () => {
    const r = await cli(
      [
        'launch-agent',
        '--name',
        'no-gcp',
        '--data-dir',
        join(tempDir(), 'a'),
        '-q',
        'vx',
        '-c',
        agentConfig(tempDir(), 'queues: [vx]\n'),
      ],
      server.env,
    );
    expect(r.code).toBe(2);
    expect(r.output).toMatch(
      /vertex queues need Google Cloud: add `environment: \{type: gcp, project: <project>, region: <region>\}`/,
    );
  }, 60_000);
});
