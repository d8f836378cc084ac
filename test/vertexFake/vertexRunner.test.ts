import Dockerode from 'dockerode';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { LaunchSpec, RunnerError } from '@liftoff/core';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { RegistryCredentials } from '../../packages/agent/src/docker/credentials.js';
import type { GcpClientSettings } from '../../packages/agent/src/environments/types.js';
import { jobEnvironment } from '../../packages/agent/src/jobEnv.js';
import { RUNNERS } from '../../packages/agent/src/runners/index.js';
import type { JobContext, RunHandle, RunOutcome, RunnerDeps } from '../../packages/agent/src/runners/types.js';
import { MESSAGE_FIELDS } from '../../packages/agent/src/runners/vertex/fields.js';
import { VertexRunner } from '../../packages/agent/src/runners/vertex/index.js';
import { LogFollower } from '../../packages/agent/src/runners/vertex/logs.js';
import { VertexApi } from '../../packages/agent/src/runners/vertex/rest.js';
import { readJob } from '../../packages/agent/src/runners/vertex/state.js';
import { dockerAvailable, startRegistry } from '../helpers/docker.js';
import { startFakeMetadata, type FakeMetadata } from '../helpers/gcpFake/metadata.js';
import { cleanupAll, tempDir, until } from '../helpers/procs.js';
import { pushTestImage } from '../helpers/vertexFake/image.js';
import { jobStates, typeOf } from '../helpers/vertexFake/protos.js';
import { startFakeVertex, type FakeVertex } from '../helpers/vertexFake/server.js';
import { settingsFrom } from '../gcp/env.js';

const TOKEN = 'ya29.liftoff-vertex-runner-test';
const AGENT = 'vx-agent-1';

interface Captured {
  ctx: JobContext;
  output: string[];
  notes: string[];
  warnings: (string | null)[];
  running: number;
}

describe('the vertex runner without a fake', () => {
  it("keeps its field lists equal to the official protos' (so an unknown field is refused by the real names)", () => {
    for (const [message, fields] of Object.entries(MESSAGE_FIELDS)) {
      expect([...fields].sort(), message).toEqual(
        typeOf(message)
          .fieldsArray.map((f) => f.name)
          .sort(),
      );
    }
  });

  it('maps all 11 job states (CANCELLED depends on who cancelled; a SPOT preemption is preempted)', () => {
    const states = jobStates().filter((s) => s !== 'JOB_STATE_UNSPECIFIED');
    expect(states).toHaveLength(11);
    const got = Object.fromEntries(
      states.map((s) => {
        const r = readJob({ state: s, error: { code: 3, message: 'boom' } }, false);
        return [
          s,
          r.kind === 'ended'
            ? r.outcome.state
            : r.kind === 'stopping'
              ? 'stopping'
              : `${r.kind}${r.warning ? '+warning' : ''}`,
        ];
      }),
    );
    expect(got).toEqual({
      JOB_STATE_QUEUED: 'starting',
      JOB_STATE_PENDING: 'starting',
      JOB_STATE_RUNNING: 'running',
      JOB_STATE_UPDATING: 'running',
      JOB_STATE_PAUSED: 'running+warning',
      JOB_STATE_SUCCEEDED: 'finished',
      JOB_STATE_FAILED: 'failed',
      JOB_STATE_EXPIRED: 'failed',
      JOB_STATE_PARTIALLY_SUCCEEDED: 'failed',
      JOB_STATE_CANCELLING: 'stopping',
      JOB_STATE_CANCELLED: 'failed',
    });
    expect(readJob({ state: 'JOB_STATE_CANCELLED' }, true)).toEqual({
      kind: 'ended',
      outcome: { state: 'stopped', exitCode: null },
    });
    const preempted = { state: 'JOB_STATE_FAILED', error: { message: 'The replica workerpool0-0 was preempted' } };
    expect(readJob({ ...preempted, jobSpec: { scheduling: { strategy: 'SPOT' } } }, false)).toMatchObject({
      outcome: { state: 'preempted' },
    });
    expect(readJob(preempted, false)).toMatchObject({ outcome: { state: 'failed' } });
  });

  it('refuses a vertex queue on an agent without a gcp environment, naming the fix; gcp-vertex is the same runner', async () => {
    const deps = { logger: pino({ level: 'silent' }), agentId: AGENT } as RunnerDeps;
    await expect(new VertexRunner(deps).check()).rejects.toThrow(
      /add `environment: \{type: gcp, project: <project>, region: <region>\}`/,
    );
    const alias = await RUNNERS['gcp-vertex']?.(deps);
    expect(alias).toBeInstanceOf(VertexRunner);
    expect(alias?.type).toBe('gcp-vertex');
  });
});

describe.skipIf(!dockerAvailable())('the vertex runner against the fake Vertex AI and Cloud Logging', () => {
  let md: FakeMetadata;
  let fake: FakeVertex;
  let gcp: GcpClientSettings;
  let image: string;
  let dir: string;
  const runners: VertexRunner[] = [];

  beforeAll(async () => {
    md = await startFakeMetadata({ token: TOKEN });
    const registry = await startRegistry({ username: 'oauth2accesstoken', password: TOKEN });
    image = `${registry.host}/liftoff-test-project/jobs/runner:1`;
    await pushTestImage(registry, image);
    fake = await startFakeVertex({
      project: 'liftoff-test-project',
      acceptToken: (t) => md.tokens.includes(t),
      pullAuth: () => ({ username: 'oauth2accesstoken', password: TOKEN, serveraddress: registry.host }),
    });
    fake.jobs.phaseDelayMs = 100;
    fake.logging.maxPageSize = 2; // every read crosses pages
    gcp = await settingsFrom({
      ...md.env,
      CLOUDSDK_API_ENDPOINT_OVERRIDES_AIPLATFORM: fake.url,
      CLOUDSDK_API_ENDPOINT_OVERRIDES_LOGGING: fake.loggingUrl,
    });
    dir = tempDir('liftoff-vx-');
  }, 120_000);
  afterAll(async () => {
    for (const r of runners) await r.close();
    await fake?.close();
    vi.unstubAllEnvs();
    await cleanupAll();
  });

  const runner = (over: Partial<RunnerDeps> = {}, agentId = AGENT) => {
    const r = new VertexRunner(
      {
        logger: pino({ level: 'silent' }),
        processEnv: {},
        agentId,
        docker: new Dockerode(),
        credentials: new RegistryCredentials(),
        kubernetes: {},
        homeDir: dir,
        gcp,
        ...over,
      },
      { pollMs: 100, maxBackoffMs: 500, tailMs: 300 },
    );
    runners.push(r);
    return r;
  };
  const pool = (over: Record<string, unknown> = {}) => ({
    machine_spec: { machine_type: 'n1-standard-4' },
    replica_count: 1,
    container_spec: {},
    ...over,
  });
  const job = (
    runId: string,
    script: string,
    vertex: Record<string, unknown> = {},
    spec: Record<string, unknown> = {},
  ): Captured => {
    const parsed = LaunchSpec.parse({
      source: { type: 'image', image },
      entry_point: ['sh', '-c', script],
      resource_args: {
        vertex: { spec: { staging_bucket: 'gs://liftoff-staging', worker_pool_specs: [pool()] }, ...vertex },
      },
      ...spec,
    });
    const stateDir = join(dir, runId);
    rmSync(stateDir, { recursive: true, force: true });
    mkdirSync(stateDir, { recursive: true });
    const c: Captured = { output: [], notes: [], warnings: [], running: 0, ctx: undefined as unknown as JobContext };
    c.ctx = {
      runId,
      itemId: `item-${runId}`,
      queue: 'vx',
      entity: 'e',
      spec: parsed,
      workDir: dir,
      stateDir,
      env: jobEnvironment({
        agentEnv: {
          LIFTOFF_API_KEY: 'lo_secret_agent_key',
          GOOGLE_APPLICATION_CREDENTIALS: '/secret/key.json',
          PATH: '/bin',
        },
        allowed: [],
        specEnv: parsed.env,
        runVars: { LIFTOFF_RUN_ID: runId, LIFTOFF_ITEM_ID: `item-${runId}`, LIFTOFF_QUEUE: 'vx', LIFTOFF_ENTITY: 'e' },
        place: 'container',
      }),
      image,
      onOutput: (t) => c.output.push(t),
      onNote: (l) => c.notes.push(l),
      onRunning: () => c.running++,
      onWarning: (w) => c.warnings.push(w),
      allow: [],
      logger: pino({ level: 'silent' }),
    };
    return c;
  };
  const lines = (c: Captured) => c.output.join('').split('\n').filter(Boolean);
  const fakeJobOf = (runId: string) =>
    [...fake.jobs.jobs.values()].find((j) => (j.spec.labels as Record<string, string>)['liftoff-run-id'] === runId);

  it('runs a job to finished with the built image, the run environment appended, its labels, and logs while it runs', async () => {
    const c = job(
      'fin00001',
      'echo first; while [ ! -e /tmp/never ] && [ "$n" != 15 ]; do n=$((n+1)); sleep 0.1; done; echo "own=$OWN run=$LIFTOFF_RUN_ID"',
      {
        spec: {
          staging_bucket: 'gs://liftoff-staging',
          labels: { team: 'ml' },
          worker_pool_specs: [pool({ container_spec: { env: [{ name: 'OWN', value: 'mine' }] } })],
        },
        run: { timeout: 3600, strategy: 'STANDARD', restart_job_on_worker_restart: false },
      },
    );
    const handle = await runner().start(c.ctx);
    // Live: the first line arrives while the job is still running.
    await until(() => (lines(c).includes('first') ? true : undefined));
    expect(fakeJobOf('fin00001')?.state).toBe('JOB_STATE_RUNNING');
    expect(await handle.wait()).toEqual({ state: 'finished', exitCode: 0 });
    expect(lines(c)).toEqual(['first', 'own=mine run=fin00001']);
    expect(c.running).toBe(1);
    expect(c.notes[0]).toMatch(
      /^vertex custom job projects\/123456789012\/locations\/us-central1\/customJobs\/\d+ created$/,
    );
    const spec = fakeJobOf('fin00001')?.spec as Record<string, any>;
    expect(spec.labels).toEqual({ team: 'ml', 'liftoff-run-id': 'fin00001', 'liftoff-agent': AGENT });
    expect(spec.jobSpec.scheduling).toEqual({
      timeout: '3600s',
      strategy: 'STANDARD',
      restartJobOnWorkerRestart: false,
    });
    expect(spec.jobSpec.baseOutputDirectory).toEqual({ outputUriPrefix: 'gs://liftoff-staging/liftoff/fin00001' });
    const container = spec.jobSpec.workerPoolSpecs[0].containerSpec;
    expect(container.imageUri).toBe(image);
    expect(container.command).toEqual(['sh', '-c', expect.stringContaining('echo first')]);
    expect(container.env[0]).toEqual({ name: 'OWN', value: 'mine' });
    expect(container.env).toContainEqual({ name: 'LIFTOFF_RUN_ID', value: 'fin00001' });
    const env = JSON.stringify(container.env);
    expect(env).not.toContain('lo_secret_agent_key');
    expect(env).not.toContain('/secret/key.json');
    expect(fake.logging.filters.some((f) => f.includes(' AND timestamp>="'))).toBe(true);
  }, 60_000);

  it('maps a non-zero exit to failed with its code, and prefixes each task when a pool has several replicas', async () => {
    const c = job('two00001', 'echo "from $HOSTNAME"; exit 3', {
      spec: { staging_bucket: 'gs://liftoff-staging', worker_pool_specs: [pool({ replica_count: 2 })] },
    });
    const outcome = await (await runner().start(c.ctx)).wait();
    expect(outcome).toMatchObject({ state: 'failed', exitCode: 3 });
    expect((outcome as { message: string }).message).toContain('exited with a non-zero status of 3');
    expect(lines(c).sort()).toEqual(['[workerpool0-0] from workerpool0-0', '[workerpool0-1] from workerpool0-1']);
  }, 60_000);

  it('refuses secrets, a missing image_uri with no built image, unknown fields and missing sections before any call, naming them', async () => {
    const before = fake.calls.length;
    const r = runner();
    const refused = async (c: Captured) => {
      const err = (await r.start(c.ctx).catch((e: unknown) => e)) as Error;
      expect(err).toBeInstanceOf(RunnerError);
      return err.message;
    };
    expect(await refused(job('pre00001', 'true', {}, { secret_env: { TOKEN: 'hf_token' } }))).toMatch(
      /Secrets \(TOKEN\) cannot go to Vertex AI/,
    );
    const noImage = job('pre00002', 'true');
    delete noImage.ctx.image;
    expect(await refused(noImage)).toMatch(
      /resource_args\.vertex\.spec\.worker_pool_specs\[0\]\.container_spec\.image_uri is missing and the job built no image/,
    );
    expect(
      await refused(
        job('pre00003', 'true', {
          spec: {
            staging_bucket: 'gs://liftoff-b',
            worker_pool_specs: [pool({ machine_spec: { machine_typo: 'x' } })],
          },
        }),
      ),
    ).toMatch(/worker_pool_specs\[0\]\.machine_spec\.machine_typo is not a field of Vertex AI's MachineSpec/);
    expect(
      await refused(
        job('pre00004', 'true', {
          spec: { staging_bucket: 'gs://liftoff-b', worker_pool_specs: [pool({ replicas: 2 })] },
        }),
      ),
    ).toMatch(/worker_pool_specs\[0\]\.replicas is not a field of Vertex AI's WorkerPoolSpec/);
    expect(await refused(job('pre00005', 'true', { spec: { worker_pool_specs: [pool()] } }))).toMatch(
      /staging_bucket \(or base_output_dir\) is missing/,
    );
    expect(await refused(job('pre00006', 'true', { spec: { staging_bucket: 'gs://liftoff-b' } }))).toMatch(
      /worker_pool_specs is missing/,
    );
    expect(await refused(job('pre00007', 'true', { run: { timeot: 5 } }))).toMatch(
      /resource_args\.vertex\.run\.timeot is not a key Liftoff knows/,
    );
    expect(
      await refused(
        job('pre00008', 'true', {
          spec: { staging_bucket: 'gs://liftoff-b', labels: { 'liftoff-agent': 'x' }, worker_pool_specs: [pool()] },
        }),
      ),
    ).toMatch(/labels\.liftoff-agent is refused/);
    expect(fake.calls.slice(before)).toEqual([]);
    // camelCase is accepted too (proto3 JSON's other spelling), and the pool's own image_uri wins over the built one.
    const camel = job('cml00001', 'true', {
      spec: {
        stagingBucket: 'gs://liftoff-b',
        workerPoolSpecs: [{ machineSpec: { machineType: 'n1-standard-4' }, containerSpec: { imageUri: image } }],
      },
    });
    delete camel.ctx.image;
    expect(await (await r.start(camel.ctx)).wait()).toEqual({ state: 'finished', exitCode: 0 });
  }, 60_000);

  const longScript = 'trap "exit 143" TERM; echo up; while true; do sleep 0.1; done';

  it('cancel ends stopped with the job CANCELLED; a cancel outside Liftoff, EXPIRED and preemption fail or requeue as mapped', async () => {
    const r = runner();
    const start = async (runId: string, vertex: Record<string, unknown> = {}) => {
      const c = job(runId, longScript, vertex);
      const h = await r.start(c.ctx);
      await until(() => (lines(c).includes('up') ? true : undefined));
      return { c, h, id: fakeJobOf(runId)?.id ?? '' };
    };
    const a = await start('can00001');
    await a.h.cancel(5000);
    expect(await a.h.wait()).toEqual({ state: 'stopped', exitCode: null });
    expect(fakeJobOf('can00001')?.state).toBe('JOB_STATE_CANCELLED');
    const b = await start('out00001');
    fake.jobs.cancelOutside(b.id);
    expect(await b.h.wait()).toMatchObject({
      state: 'failed',
      message: expect.stringContaining('cancelled outside Liftoff'),
    });
    const e = await start('exp00001');
    fake.jobs.expire(e.id);
    expect(await e.h.wait()).toMatchObject({ state: 'failed', message: expect.stringContaining('expired') });
    const spot = { spec: { staging_bucket: 'gs://liftoff-b', worker_pool_specs: [pool()] }, run: { strategy: 'SPOT' } };
    const p = await start('spt00001', spot);
    fake.jobs.preempt(p.id);
    expect(await p.h.wait()).toMatchObject({ state: 'preempted', message: expect.stringContaining('preempted') });
  }, 90_000);

  it('re-adopts by the stored name, else by its label, reading the log from the start; the sweep cancels only orphans of this agent', async () => {
    const first = runner();
    const c = job('adp00001', `${longScript.replace('echo up', 'echo up; echo two')}`);
    await first.start(c.ctx);
    await until(() => (lines(c).includes('two') ? true : undefined));
    await first.close();
    const again = job('adp00001', 'unused');
    const byName = (await runner().reconcile(again.ctx)) as RunHandle;
    expect(typeof byName.wait).toBe('function');
    await until(() => (lines(again).includes('two') ? true : undefined));
    expect(lines(again)).toEqual(['up', 'two']);
    expect(again.notes[0]).toMatch(/^re-adopted vertex custom job projects\/.+ \(JOB_STATE_RUNNING\)/);
    const byLabel = job('adp00001', 'unused'); // a fresh state dir: no stored name
    const h2 = (await runner().reconcile(byLabel.ctx)) as RunHandle;
    await h2.cancel(1000);
    expect(await h2.wait()).toEqual({ state: 'stopped', exitCode: null });
    expect(((await runner().reconcile(job('gone0001', 'x').ctx)) as RunOutcome).state).toBe('failed');

    // The sweep: an orphan of this agent is cancelled; an active run's job and another agent's are left alone.
    const orphan = job('orp00001', longScript);
    const kept = job('act00001', longScript);
    const other = job('oth00001', longScript);
    const mine = runner();
    await mine.start(orphan.ctx);
    const keptHandle = await mine.start(kept.ctx);
    const otherHandle = await runner({}, 'Another Agent.example').start(other.ctx);
    await until(() =>
      ['orp00001', 'act00001', 'oth00001'].every((id) => fakeJobOf(id)?.state === 'JOB_STATE_RUNNING')
        ? true
        : undefined,
    );
    await mine.sweep(new Set(['act00001']));
    await until(() => (fakeJobOf('orp00001')?.state === 'JOB_STATE_CANCELLED' ? true : undefined));
    expect(fakeJobOf('act00001')?.state).toBe('JOB_STATE_RUNNING');
    expect(fakeJobOf('oth00001')?.state).toBe('JOB_STATE_RUNNING');
    expect((fakeJobOf('oth00001')?.spec.labels as Record<string, string>)['liftoff-agent']).toMatch(
      /^another-agent-example-[0-9a-f]{8}$/,
    );
    await keptHandle.cancel(1000);
    await otherHandle.cancel(1000);
  }, 90_000);

  it('follows logs across timestamp ties without losing or repeating a line', async () => {
    const api = new VertexApi(gcp);
    const out: string[] = [];
    const jobId = '424242';
    const follower = new LogFollower(api, jobId, (t) => out.push(t), pino({ level: 'silent' }), 1);
    const at = '2026-12-01T10:00:00.000Z';
    const add = (text: string, timestamp = at) => {
      fake.logging.append(jobId, 'workerpool0-0', text);
      const e = fake.logging.entries.at(-1);
      if (e) e.timestamp = timestamp;
    };
    add('a');
    add('b');
    await follower.poll();
    add('c'); // the same millisecond as a and b
    add('d', '2026-12-01T10:00:01.000Z');
    await follower.poll();
    await follower.poll();
    expect(out.join('')).toBe('a\nb\nc\nd\n');
  });

  it('leaves no container behind', async () => {
    await Promise.all([...fake.jobs.jobs.values()].map((j) => j.done));
    expect(await new Dockerode().listContainers({ all: true, filters: { label: [fake.jobs.containerLabel] } })).toEqual(
      [],
    );
  }, 60_000);
});
