import Dockerode from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dockerAvailable, startRegistry, type TestRegistry } from '../helpers/docker.js';
import { startFakeMetadata, type FakeMetadata } from '../helpers/gcpFake/metadata.js';
import { cleanupAll, sleep } from '../helpers/procs.js';
import { pushTestImage } from '../helpers/vertexFake/image.js';
import { startFakeVertex, type FakeVertex } from '../helpers/vertexFake/server.js';

const PROJECT = 'liftoff-test-project';
const TOKEN = 'ya29.liftoff-vertex-fake-test';
const BASE = `/v1/projects/${PROJECT}/locations/us-central1/customJobs`;
type Body = Record<string, any>;

/**
 * The fake Vertex AI and Cloud Logging refuse what the real ones refuse (the official types' REQUIRED fields, enums,
 * field types and names), run a job's replicas on the real Docker engine pulling with the registry's token login,
 * and page.
 */
describe.skipIf(!dockerAvailable())('the fake Vertex AI', () => {
  let md: FakeMetadata;
  let registry: TestRegistry;
  let fake: FakeVertex;
  let image: string;
  const engine = new Dockerode();
  const call = async (method: string, path: string, body?: unknown, token = TOKEN) => {
    const res = await fetch(`${path.startsWith('/v2/') ? fake.loggingUrl : fake.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    return { status: res.status, body: (await res.json()) as Body };
  };
  const job = (over: Body = {}, container: Body = {}) => ({
    display_name: 'self-test',
    job_spec: {
      worker_pool_specs: [
        {
          machine_spec: { machine_type: 'n1-standard-4' },
          replica_count: 1,
          container_spec: { image_uri: image, command: ['sh', '-c', 'echo hello; echo world'], ...container },
        },
      ],
    },
    ...over,
  });
  const until = async (id: string, states: string[]): Promise<Body> => {
    for (;;) {
      const got = await call('GET', `${BASE}/${id}`);
      if (states.includes(got.body.state)) return got.body;
      await sleep(100);
    }
  };
  const idOf = (b: Body) => String(b.name).split('/').pop() ?? '';

  beforeAll(async () => {
    md = await startFakeMetadata({ token: TOKEN });
    registry = await startRegistry({ username: 'oauth2accesstoken', password: TOKEN });
    image = `${registry.host}/${PROJECT}/jobs/selftest:1`;
    await pushTestImage(registry, image);
    fake = await startFakeVertex({
      project: PROJECT,
      acceptToken: (t) => md.tokens.includes(t) || t === TOKEN,
      pullAuth: () => ({ username: 'oauth2accesstoken', password: TOKEN, serveraddress: registry.host }),
    });
  }, 120_000);
  afterAll(async () => {
    await fake?.close();
    await cleanupAll();
  });

  it('refuses what the official types refuse: a missing displayName or imageUri, a wrong enum, a wrong type, an unknown field', async () => {
    const noName = job();
    delete (noName as Body).display_name;
    const r1 = await call('POST', BASE, noName);
    expect(r1.status).toBe(400);
    expect(r1.body.error).toMatchObject({ code: 400, status: 'INVALID_ARGUMENT' });
    expect(r1.body.error.message).toContain('Field: custom_job.display_name; Message: Required field is not set.');
    const r2 = await call('POST', BASE, job({}, { image_uri: undefined }));
    expect(r2.body.error.message).toContain('custom_job.job_spec.worker_pool_specs[0].container_spec.image_uri');
    const spot = (strategy: string) => ({ ...job(), job_spec: { ...job().job_spec, scheduling: { strategy } } });
    const r3 = await call('POST', BASE, spot('CHEAPEST'));
    expect(r3.status).toBe(400);
    expect(r3.body.error.message).toContain("'custom_job.job_spec.scheduling.strategy'");
    const r4 = await call('POST', BASE, job({ display_name: 7 }));
    expect(r4.status).toBe(400);
    expect(r4.body.error.message).toContain("'custom_job.display_name' (string), 7");
    const r5 = await call('POST', BASE, job({ displayName: 'x', display_name: undefined, bogus_field: 1 }));
    expect(r5.body.error.message).toContain('Unknown name "bogus_field"');
    const r6 = await call('POST', BASE, job({ labels: { 'Bad Key': 'x' } }));
    expect(r6.body.error.message).toContain('Invalid label');
    // A token the metadata server never gave out.
    expect((await call('GET', `${BASE}/1`, undefined, 'ya29.stolen')).body.error.status).toBe('UNAUTHENTICATED');
    expect(fake.jobs.jobs.size).toBe(0);
  });

  it('runs the replicas as containers, camelCase and snake_case alike, and serves their output through entries:list with paging', async () => {
    const camel = await call('POST', BASE, {
      displayName: 'camel',
      labels: { 'liftoff-run-id': 'abc12345' },
      jobSpec: {
        workerPoolSpecs: [
          {
            replicaCount: '2',
            containerSpec: { imageUri: image, command: ['sh', '-c', 'for i in 1 2 3; do echo line$i; done'] },
          },
        ],
        scheduling: { timeout: '3600s', strategy: 'SPOT' },
      },
    });
    expect(camel.status, JSON.stringify(camel.body)).toBe(200);
    expect(camel.body.state).toBe('JOB_STATE_QUEUED');
    expect(camel.body.name).toMatch(/^projects\/123456789012\/locations\/us-central1\/customJobs\/\d+$/);
    const id = idOf(camel.body);
    const seen = new Set<string>();
    const end = await (async () => {
      for (;;) {
        const got = await call('GET', `${BASE}/${id}`);
        seen.add(got.body.state);
        if (got.body.state === 'JOB_STATE_SUCCEEDED' || got.body.state === 'JOB_STATE_FAILED') return got.body;
        await sleep(50);
      }
    })();
    expect(end.state, JSON.stringify(end)).toBe('JOB_STATE_SUCCEEDED');
    expect([...seen]).toEqual(expect.arrayContaining(['JOB_STATE_PENDING', 'JOB_STATE_RUNNING']));
    fake.logging.maxPageSize = 2;
    const filter = `resource.type="ml_job" AND resource.labels.job_id="${id}"`;
    const lines: string[] = [];
    let pageToken: string | undefined;
    let pages = 0;
    do {
      const page = await call('POST', '/v2/entries:list', {
        resourceNames: [`projects/${PROJECT}`],
        filter,
        orderBy: 'timestamp asc',
        pageSize: 100,
        ...(pageToken ? { pageToken } : {}),
      });
      expect(page.status, JSON.stringify(page.body)).toBe(200);
      for (const e of page.body.entries ?? []) lines.push(`${e.resource.labels.task_name} ${e.textPayload}`);
      pageToken = page.body.nextPageToken;
      pages++;
    } while (pageToken);
    fake.logging.maxPageSize = 1000;
    expect(pages).toBe(3);
    expect(lines.sort()).toEqual(
      ['line1', 'line2', 'line3'].flatMap((l) => [`workerpool0-0 ${l}`, `workerpool0-1 ${l}`]).sort(),
    );
    const refused = await call('POST', '/v2/entries:list', {
      resourceNames: [`projects/${PROJECT}`],
      filter: `${filter} AND severity>=ERROR`,
    });
    expect(refused.status).toBe(400);
    // The label filter lists it; any other filter is refused.
    const listed = await call('GET', `${BASE}?filter=${encodeURIComponent('labels.liftoff-run-id="abc12345"')}`);
    expect(listed.body.customJobs.map(idOf)).toEqual([id]);
    expect((await call('GET', `${BASE}?filter=${encodeURIComponent('state="JOB_STATE_RUNNING"')}`)).status).toBe(400);
    // snake_case, as W&B queue configs spell it; a non-zero exit fails the job with the replica's status.
    const snake = await call('POST', BASE, job({}, { command: ['sh', '-c', 'exit 3'] }));
    expect(snake.status).toBe(200);
    const failed = await until(idOf(snake.body), ['JOB_STATE_FAILED', 'JOB_STATE_SUCCEEDED']);
    expect(failed.error.message).toContain('The replica workerpool0-0 exited with a non-zero status of 3');
    expect(md.refused()).toBe(0);
  }, 120_000);

  it('cancels (CANCELLING, then CANCELLED with error.code 1 once the containers stopped) and has knobs for EXPIRED and preemption', async () => {
    // The job takes 2 s to leave after SIGTERM, within the grace, so CANCELLING is there to be seen however slow
    // the next request is.
    fake.jobs.stopGraceS = 5;
    const long = () =>
      job({}, { command: ['sh', '-c', 'trap "sleep 2; exit 143" TERM; echo up; while true; do sleep 0.1; done'] });
    const a = idOf((await call('POST', BASE, long())).body);
    await until(a, ['JOB_STATE_RUNNING']);
    expect((await call('POST', `${BASE}/${a}:cancel`, {})).status).toBe(200);
    expect((await call('GET', `${BASE}/${a}`)).body.state).toBe('JOB_STATE_CANCELLING');
    const cancelled = await until(a, ['JOB_STATE_CANCELLED']);
    expect(cancelled.error).toEqual({ code: 1, message: 'CANCELED' });
    expect((await call('POST', `${BASE}/${a}:cancel`, {})).body.error.status).toBe('FAILED_PRECONDITION');
    const b = idOf((await call('POST', BASE, long())).body);
    await until(b, ['JOB_STATE_RUNNING']);
    fake.jobs.expire(b);
    expect((await until(b, ['JOB_STATE_EXPIRED'])).error.code).toBe(4);
    const c = idOf((await call('POST', BASE, long())).body);
    await until(c, ['JOB_STATE_RUNNING']);
    fake.jobs.preempt(c);
    expect((await until(c, ['JOB_STATE_FAILED'])).error.message).toContain('preempted');
    expect((await call('GET', `${BASE}/999`)).body.error.status).toBe('NOT_FOUND');
    await Promise.all([...fake.jobs.jobs.values()].map((j) => j.done));
    expect(await engine.listContainers({ all: true, filters: { label: [fake.jobs.containerLabel] } })).toEqual([]);
  }, 120_000);
});
