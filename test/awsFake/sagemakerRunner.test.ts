import Dockerode from 'dockerode';
import { pino } from 'pino';
import { CreateTrainingJobCommand, DescribeTrainingJobCommand, SageMakerClient } from '@aws-sdk/client-sagemaker';
import { LaunchSpec, RunnerError } from '@liftoff/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RegistryCredentials } from '../../packages/agent/src/docker/credentials.js';
import { jobEnvironment } from '../../packages/agent/src/jobEnv.js';
import { SageMakerRunner } from '../../packages/agent/src/runners/sagemaker/index.js';
import { RUNNERS } from '../../packages/agent/src/runners/index.js';
import type { JobContext, RunHandle, RunOutcome, RunnerDeps } from '../../packages/agent/src/runners/types.js';
import { fakeAwsSettings } from '../helpers/awsFake/clients.js';
import { awsModelsDir, FAKE_ACCOUNT, startFakeAws, type FakeAws } from '../helpers/awsFake/index.js';
import { startMoto } from '../helpers/moto.js';
import { BUSYBOX, docker, dockerAvailable } from '../helpers/docker.js';
import { cleanupAll, tempDir, until } from '../helpers/procs.js';

const modelsDir = dockerAvailable() ? awsModelsDir() : undefined;
const AGENT = 'sm-agent-1';

interface Captured {
  ctx: JobContext;
  output: string[];
  notes: string[];
  warnings: (string | null)[];
  running: number;
}

describe.skipIf(!modelsDir)('the sagemaker runner against the test AWS endpoint', () => {
  let fake: FakeAws;
  let image: string;
  let dir: string;
  const runners: SageMakerRunner[] = [];

  beforeAll(async () => {
    fake = await startFakeAws(modelsDir ?? '');
    fake.sagemaker.phaseDelayMs = 100;
    fake.logs.pageSize = 2; // every stream is read over several pages
    image = await fake.ecr.push(fake.docker, BUSYBOX, 'liftoff/jobs', 'runner');
    dir = tempDir('liftoff-sm-');
  });
  afterAll(async () => {
    for (const r of runners) await r.close();
    await fake?.close();
    await cleanupAll();
  });

  const runner = (over: Partial<RunnerDeps> = {}, agentId = AGENT) => {
    const r = new SageMakerRunner(
      {
        logger: pino({ level: 'silent' }),
        processEnv: {},
        agentId,
        docker: new Dockerode(),
        credentials: new RegistryCredentials(),
        kubernetes: {},
        homeDir: dir,
        aws: fakeAwsSettings(fake),
        ...over,
      },
      { pollMs: 100, maxBackoffMs: 500 },
    );
    runners.push(r);
    return r;
  };

  const baseArgs = {
    role_arn: 'liftoff-training',
    output_data_config: { S3OutputPath: 's3://liftoff-test/models' },
    resource_config: { InstanceType: 'ml.m5.large', InstanceCount: 1, VolumeSizeInGB: 10 },
    stopping_condition: { MaxRuntimeInSeconds: 3600 },
  };

  const job = (
    runId: string,
    script: string,
    sagemaker: Record<string, unknown> = {},
    spec: Record<string, unknown> = {},
  ): Captured => {
    const parsed = LaunchSpec.parse({
      source: { type: 'image', image },
      entry_point: ['sh', '-c', script],
      resource_args: { sagemaker: { ...baseArgs, ...sagemaker } },
      ...spec,
    });
    const c: Captured = { output: [], notes: [], warnings: [], running: 0, ctx: undefined as unknown as JobContext };
    c.ctx = {
      runId,
      itemId: `item-${runId}`,
      queue: 'sm',
      entity: 'e',
      spec: parsed,
      workDir: dir,
      stateDir: dir,
      // As the agent builds it: from an allow-list, so the agent's key and cloud secrets never get here.
      env: jobEnvironment({
        agentEnv: { LIFTOFF_API_KEY: 'lo_secret_agent_key', AWS_SECRET_ACCESS_KEY: 'agent-aws-secret', PATH: '/bin' },
        allowed: [],
        specEnv: parsed.env,
        runVars: {
          LIFTOFF_RUN_ID: runId,
          LIFTOFF_ITEM_ID: `item-${runId}`,
          LIFTOFF_QUEUE: 'sm',
          LIFTOFF_ENTITY: 'e',
          LIFTOFF_RUN_CONFIG: JSON.stringify(parsed.run_config),
        },
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

  const describeJob = (runId: string) =>
    new SageMakerClient({
      region: 'us-east-1',
      credentials: fakeAwsSettings(fake).credentials,
      endpoint: fake.server.endpoint,
    }).send(new DescribeTrainingJobCommand({ TrainingJobName: `liftoff-${runId}` }));
  const lines = (c: Captured) => c.output.join('').split('\n').filter(Boolean);

  it("runs a job to finished with its output, the run environment under the user's, and no secret in Environment", async () => {
    const c = job(
      'fin00001',
      'for i in 1 2 3 4 5; do echo line $i; done; echo "chunks=$LIFTOFF_RUN_CONFIG_CHUNKS"',
      { environment: { USER_VAR: 'mine' } },
      {
        env: { SPEC_VAR: 'from-spec' },
        run_config: { blob: 'x'.repeat(1200) },
      },
    );
    const handle = await runner().start(c.ctx);
    expect(await handle.wait()).toEqual({ state: 'finished', exitCode: 0 });
    expect(lines(c)).toEqual([
      'Starting container algo-1',
      'line 1',
      'line 2',
      'line 3',
      'line 4',
      'line 5',
      'chunks=3',
    ]);
    expect(c.running).toBe(1);
    expect(c.notes[0]).toMatch(/^sagemaker training job liftoff-fin00001 created \(arn:aws:sagemaker:/);
    const d = await describeJob('fin00001');
    expect(d.RoleArn).toBe(`arn:aws:iam::${FAKE_ACCOUNT}:role/liftoff-training`);
    expect(d.AlgorithmSpecification?.ContainerEntrypoint?.[0]).toBe('sh');
    const env = d.Environment ?? {};
    expect(env).toMatchObject({
      USER_VAR: 'mine',
      SPEC_VAR: 'from-spec',
      LIFTOFF_RUN_ID: 'fin00001',
      LIFTOFF_RUN_CONFIG_CHUNKS: '3',
    });
    expect(env.LIFTOFF_RUN_CONFIG).toBeUndefined();
    expect([0, 1, 2].map((i) => env[`LIFTOFF_RUN_CONFIG_${i}`]).join('')).toBe(
      JSON.stringify({ blob: 'x'.repeat(1200) }),
    );
    const values = JSON.stringify(env);
    expect(values).not.toContain('lo_secret_agent_key');
    expect(values).not.toContain('agent-aws-secret');
  });

  it('refuses secrets and every preflight violation before any AWS call, naming the field', async () => {
    const before = fake.server.calls.length;
    const r = runner();
    const refused = async (c: Captured) => {
      const err = (await r.start(c.ctx).catch((e: unknown) => e)) as Error;
      expect(err).toBeInstanceOf(RunnerError);
      return err.message;
    };
    expect(await refused(job('pre00001', 'true', {}, { secret_env: { TOKEN: 'hf_token' } }))).toMatch(
      /Secrets \(TOKEN\) cannot go to SageMaker/,
    );
    const many = Object.fromEntries(Array.from({ length: 100 }, (_, i) => [`V${i}`, 'x']));
    expect(await refused(job('pre00002', 'true', { Environment: many }))).toMatch(
      /^SageMaker would refuse this job: Environment has 105 entries, more than SageMaker's 100/,
    );
    expect(await refused(job('pre00003', 'true', { Environment: { BIG: 'y'.repeat(600) } }))).toMatch(
      /Environment\.BIG is 600 characters long, more than SageMaker's 512/,
    );
    expect(await refused(job('pre00004', `echo ${'z'.repeat(300)}`))).toMatch(
      /the entry point \(ContainerEntrypoint\) item 2 is 305 characters long/,
    );
    const tags = Array.from({ length: 49 }, (_, i) => ({ Key: `k${i}`, Value: 'v' }));
    expect(await refused(job('pre00005', 'true', { tags }))).toMatch(
      /resource_args\.sagemaker\.Tags has 51 tags with Liftoff's two, more than SageMaker's 50/,
    );
    expect(await refused(job('pre00006', 'true', { instance_typo: 'ml.m5.large' }))).toMatch(
      /resource_args\.sagemaker\.instance_typo is not a CreateTrainingJob member \(as InstanceTypo\)/,
    );
    expect(await refused(job('pre00007', 'true', { role_arn: undefined }))).toMatch(
      /resource_args\.sagemaker\.RoleArn is missing/,
    );
    expect(await refused(job('pre00008', 'true', { Tags: [{ Key: 'LiftoffAgent', Value: 'someone-else' }] }))).toMatch(
      /the LiftoffAgent tag is set by Liftoff/,
    );
    expect(await refused(job('pre00009', 'true', { profile: 'prod' }))).toMatch(
      /profile is refused: credentials come from the agent/,
    );
    expect(fake.server.calls.length).toBe(before);
  });

  it("fails with SageMaker's reason and the exit code when the job exits 3", async () => {
    const c = job('fail0001', 'echo about to fail; exit 3');
    const outcome = await (await runner().start(c.ctx)).wait();
    expect(outcome).toEqual({
      state: 'failed',
      exitCode: 3,
      message: expect.stringMatching(/^SageMaker: AlgorithmError: .*exit code 3$/) as string,
    });
    expect(lines(c)).toContain('about to fail');
  });

  it('cancels with StopTrainingJob: stopped, never finished, and says SageMaker keeps its own 120 s grace', async () => {
    const c = job('stop0001', 'echo started; sleep 60');
    const handle = await runner().start(c.ctx);
    await until(() => (lines(c).includes('started') ? true : undefined));
    await handle.cancel(5_000);
    expect(await handle.wait()).toEqual({ state: 'stopped', exitCode: null });
    expect(c.notes.some((n) => /SageMaker sends SIGTERM and stops it 120 s later/.test(n))).toBe(true);
    const d = await describeJob('stop0001');
    expect(d.TrainingJobStatus).toBe('Stopped');
    expect(fake.server.callsOf('StopTrainingJob').map((x) => x.input.TrainingJobName)).toContain('liftoff-stop0001');
  });

  it('reports a spot interruption as a warning and MaxWaitTimeExceeded as preempted', async () => {
    const c = job('spot0001', 'echo waiting; sleep 60', {
      enable_managed_spot_training: true,
      stopping_condition: { MaxRuntimeInSeconds: 3600, MaxWaitTimeInSeconds: 7200 },
    });
    const handle = await runner().start(c.ctx);
    await until(() => (c.running ? true : undefined));
    fake.sagemaker.interrupt('liftoff-spot0001');
    await until(() => (c.warnings.some((w) => w?.includes('spot interruption')) ? true : undefined));
    fake.sagemaker.exceedMaxWait('liftoff-spot0001');
    const outcome: RunOutcome = await handle.wait();
    expect(outcome).toEqual({
      state: 'preempted',
      exitCode: null,
      message: expect.stringMatching(/max wait time \(StoppingCondition\.MaxWaitTimeInSeconds = 7200\)/) as string,
    });
  });

  it('keeps working across credential expiry: the shared provider refreshes, expired keys are refused', async () => {
    fake.server.credentialsTtlMs = 1_500;
    try {
      const fetchesBefore = fake.server.credentialFetches;
      const c = job('cred0001', 'echo one; sleep 3; echo two');
      const outcome = await (await runner().start(c.ctx)).wait();
      expect(outcome).toEqual({ state: 'finished', exitCode: 0 });
      expect(lines(c)).toContain('two');
      expect(fake.server.credentialFetches - fetchesBefore).toBeGreaterThan(1);
      const keys = new Set(
        fake.server.calls.filter((x) => x.input.TrainingJobName === 'liftoff-cred0001').map((x) => x.accessKeyId),
      );
      expect(keys.size).toBeGreaterThan(1);
    } finally {
      fake.server.credentialsTtlMs = 15 * 60_000;
    }
  });

  it('re-adopts a job by name after a restart and replays its log from the head', async () => {
    const first = job('adop0001', 'for i in 1 2 3; do echo tick $i; sleep 0.3; done; sleep 1; echo after restart');
    const r1 = runner();
    await r1.start(first.ctx);
    await until(() => (lines(first).includes('tick 1') ? true : undefined));
    await r1.close(); // the agent is gone; the training job keeps running
    const again = job('adop0001', 'unused');
    const adopted = (await runner().reconcile(again.ctx)) as RunHandle;
    expect(typeof adopted.wait).toBe('function');
    expect(await adopted.wait()).toEqual({ state: 'finished', exitCode: 0 });
    expect(lines(again)).toEqual(['Starting container algo-1', 'tick 1', 'tick 2', 'tick 3', 'after restart']);
    expect(again.notes[0]).toMatch(/re-adopted sagemaker training job liftoff-adop0001/);
    expect(await runner().reconcile(job('gone0001', 'unused').ctx)).toEqual({
      state: 'failed',
      exitCode: null,
      message: expect.stringMatching(/does not exist/) as string,
    });
  });

  it('sweeps: stops InProgress jobs of this agent that no active run holds, and nothing else', async () => {
    const orphan = job('orph0001', 'sleep 60');
    const kept = job('keep0001', 'sleep 60');
    const other = job('othr0001', 'sleep 60');
    const r1 = runner();
    await r1.start(orphan.ctx);
    const keptHandle = await r1.start(kept.ctx);
    const otherRunner = runner({}, 'another-agent');
    const otherHandle = await otherRunner.start(other.ctx);
    await r1.close();
    await runner().sweep(new Set(['keep0001']));
    await until(async () => ((await describeJob('orph0001')).TrainingJobStatus === 'Stopped' ? true : undefined));
    expect((await describeJob('keep0001')).TrainingJobStatus).toBe('InProgress');
    expect((await describeJob('othr0001')).TrainingJobStatus).toBe('InProgress');
    void keptHandle;
    const cleanup = runner();
    const readopt = (await cleanup.reconcile(job('keep0001', 'unused').ctx)) as RunHandle;
    await readopt.cancel(1_000);
    await otherHandle.cancel(1_000);
  });

  it("follows every instance's stream, each line prefixed with its host", async () => {
    const c = job('many0001', 'echo "hi from $(hostname)"', {
      resource_config: { InstanceType: 'ml.m5.large', InstanceCount: 2, VolumeSizeInGB: 10 },
    });
    expect(await (await runner().start(c.ctx)).wait()).toEqual({ state: 'finished', exitCode: 0 });
    expect(lines(c).sort()).toEqual([
      '[algo-1] Starting container algo-1',
      '[algo-1] hi from algo-1',
      '[algo-2] Starting container algo-2',
      '[algo-2] hi from algo-2',
    ]);
  });

  it('is registered for sagemaker queues and refuses to start without an aws environment, naming the fix', async () => {
    const factory = RUNNERS.sagemaker;
    expect(factory).toBeDefined();
    const r = await factory?.({
      logger: pino({ level: 'silent' }),
      processEnv: {},
      agentId: AGENT,
      docker: new Dockerode(),
      credentials: new RegistryCredentials(),
      kubernetes: {},
      homeDir: dir,
    });
    await expect(r?.check?.()).rejects.toThrow(
      /add `environment: \{type: aws, region: <region>\}` to the agent config/,
    );
    await expect(r?.start(job('noaw0001', 'true').ctx)).rejects.toThrow(/environment: \{type: aws/);
  });

  it('sends only CreateTrainingJob requests that moto_server accepts too', async () => {
    const moto = await startMoto();
    const sent = fake.server.callsOf('CreateTrainingJob').filter((x) => !x.error);
    expect(sent.length).toBeGreaterThanOrEqual(8);
    const client = new SageMakerClient({
      region: 'us-east-1',
      credentials: { accessKeyId: 'AKIAMOTO', secretAccessKey: 'moto' },
      endpoint: moto.url,
    });
    for (const call of sent) {
      const out = await client.send(new CreateTrainingJobCommand(call.input as never));
      expect(out.TrainingJobArn, String(call.input.TrainingJobName)).toMatch(/:training-job\/liftoff-/);
    }
    client.destroy();
    moto.proc.kill('SIGKILL');
    await until(() =>
      docker('ps', '-aq', '--filter', `label=${fake.sagemaker.containerLabel}`) === '' ? true : undefined,
    );
  });
});
