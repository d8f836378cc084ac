import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CreateTrainingJobCommand, SageMakerClient } from '@aws-sdk/client-sagemaker';
import { fakeCredentials } from '../helpers/awsFake/clients.js';
import { awsModelsDir, startFakeAws, type FakeAws } from '../helpers/awsFake/index.js';
import { BUSYBOX, dockerAvailable, PYTHON } from '../helpers/docker.js';
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

/**
 * The specification's example agent config (environment aws, registry ecr, docker builder) with a sagemaker queue,
 * end to end (issue 13): real `liftoff` server and agent processes, and Liftoff's test AWS endpoint as STS, ECR,
 * SageMaker and CloudWatch Logs on loopback, credentials from its container-credentials endpoint. Training jobs
 * run as containers on the real Docker engine; nothing leaves loopback (no IMDS, empty AWS config files).
 */
const SPEC_CONFIG = `entity: default
max_jobs: -1
queues:
- sm
environment:
  type: aws
  region: us-east-1
registry:
  type: ecr
  repository: my-ecr-repo
builder:
  type: docker
`;

const modelsDir = dockerAvailable() ? awsModelsDir() : undefined;

describe.skipIf(!modelsDir)('sagemaker queues with real server and agent processes', () => {
  let fake: FakeAws;
  let server: TestServer;
  let agentEnv: Record<string, string>;
  let image: string;
  let agent: TestAgent;
  const config = () => agentConfig(tempDir(), SPEC_CONFIG);
  const dataDir = () => join(server.home, 'agents', 'sm-agent');

  beforeAll(async () => {
    fake = await startFakeAws(modelsDir ?? '');
    fake.ecr.repositories.add('my-ecr-repo');
    image = await fake.ecr.push(fake.docker, BUSYBOX, 'my-ecr-repo', 'busybox');
    const home = tempDir('liftoff-aws-home-');
    agentEnv = {
      AWS_ENDPOINT_URL: fake.server.endpoint,
      AWS_CONTAINER_CREDENTIALS_FULL_URI: fake.server.credentialsUri,
      AWS_CONTAINER_AUTHORIZATION_TOKEN: fake.server.credentialsToken,
      AWS_EC2_METADATA_DISABLED: 'true',
      AWS_CONFIG_FILE: join(home, 'config'),
      AWS_SHARED_CREDENTIALS_FILE: join(home, 'credentials'),
    };
    server = await startServer();
    await server.client.createQueue('default', {
      name: 'sm',
      resource: 'sagemaker',
      resource_args: {
        sagemaker: {
          role_arn: 'liftoff-training',
          output_data_config: { S3OutputPath: 's3://liftoff-test/models' },
          resource_config: { InstanceType: 'ml.m5.large', InstanceCount: 1, VolumeSizeInGB: 10 },
          stopping_condition: { MaxRuntimeInSeconds: 3600 },
          builder: { base_image: PYTHON },
        },
      },
    });
    agent = await startAgent(server, {
      queues: ['sm'],
      name: 'sm-agent',
      dataDir: dataDir(),
      config: config(),
      env: agentEnv,
    });
  }, 120_000);
  afterAll(async () => {
    await fake?.close();
    await cleanupAll();
  });

  const itemOf = async (args: string[]) => {
    const r = await cli(['launch', '-q', 'sm', ...args, '--json'], server.env);
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

  it('builds a code job, pushes it to ECR, runs it as a training job and follows its log live to its exit code', async () => {
    const dir = codeDir({ 'main.py': 'import os\nprint("hello from", os.environ["TRAINING_JOB_NAME"])\n' });
    const ok = await cli(['launch', '-q', 'sm', '--code', dir, '-E', 'python3 main.py', '--wait'], server.env);
    expect(ok.code, ok.output).toBe(0);
    expect(ok.output).toMatch(/hello from liftoff-[a-z0-9]{8}/);
    expect(ok.output).toContain('sagemaker training job liftoff-');
    const built = fake.server.callsOf('CreateTrainingJob').at(-1)?.input.AlgorithmSpecification as {
      TrainingImage: string;
    };
    expect(built.TrainingImage.startsWith(`${fake.ecr.host}/my-ecr-repo:`)).toBe(true);

    const bad = await cli(
      ['launch', '-q', 'sm', '--image', image, '-E', 'sh -c "echo failing; exit 3"', '--wait'],
      server.env,
    );
    expect(bad.code, bad.output).toBe(3);
    expect(bad.output).toContain('failing');
    const [run] = (await server.client.listRuns('default', { queue: 'sm', limit: 1 })).runs;
    expect(run).toMatchObject({ status: 'failed', exit_code: 3, error_stage: 'run' });
    expect(run?.error_message).toMatch(/SageMaker: AlgorithmError: .*exit code 3/);
    // Where SageMaker put the job's outputs (its documented <S3OutputPath>/<job>/output/ layout), on the run.
    expect(run?.outputs_link).toBe(`s3://liftoff-test/models/liftoff-${run?.id}/output/`);
    const outputs = await cli(['runs', 'outputs', run?.id ?? ''], server.env);
    expect(outputs.output).toContain(
      `The job writes its outputs to s3://liftoff-test/models/liftoff-${run?.id}/output/ (not copied by Liftoff).`,
    );
  }, 240_000);

  it("streams a running training job's log into `liftoff runs logs -f` while the job runs", async () => {
    const itemId = await itemOf([
      '--image',
      image,
      '-E',
      'sh -c "echo first-$((1+1)); sleep 25; echo second-$((2+2))"',
    ]);
    const runId = await runOf(itemId);
    const follow = liftoff(['runs', 'logs', runId, '-f'], server.env);
    await follow.waitFor(/first-2/, 90_000);
    // Seen while the training job still runs: its second line is not written yet (the shell computes both
    // markers, so the command line in the run's notes does not hold them).
    expect(follow.output).not.toContain('second-4');
    expect(fake.sagemaker.jobs.get(`liftoff-${runId}`)?.status).toBe('InProgress');
    expect((await follow.exited).code).toBe(0);
    expect(follow.output).toContain('second-4');
    expect(follow.output.match(/first-2/g)).toHaveLength(1);
  }, 180_000);

  it('fails a preflight violation before any AWS call, naming the field', async () => {
    const before = fake.server.calls.filter((c) => c.service === 'sagemaker').length;
    const itemId = await itemOf([
      '--image',
      image,
      '-E',
      'true',
      '--resource-args',
      JSON.stringify({ sagemaker: { environment: { BIG: 'x'.repeat(600) } } }),
    ]);
    const run = await ended(await runOf(itemId));
    expect(run).toMatchObject({ status: 'failed', error_stage: 'run' });
    expect(run.error_message).toMatch(/Environment\.BIG is 600 characters long, more than SageMaker's 512/);
    expect(fake.server.calls.filter((c) => c.service === 'sagemaker').length).toBe(before);
  }, 60_000);

  it('cancel stops the training job: the run ends stopped and the job Stopped', async () => {
    const itemId = await itemOf(['--image', image, '-E', 'sh -c "echo started; sleep 300"']);
    const runId = await runOf(itemId, 'started');
    const c = await cli(['runs', 'cancel', runId], server.env);
    expect(c.code, c.output).toBe(0);
    expect((await ended(runId)).status).toBe('stopped');
    expect(fake.sagemaker.jobs.get(`liftoff-${runId}`)?.status).toBe('Stopped');
    expect((await server.client.readLogs(runId)).data).toMatch(/SageMaker sends SIGTERM and stops it 120 s later/);
  }, 120_000);

  it('MaxWaitTimeExceeded preempts the run and the queue requeues the item as a new training job', async () => {
    const q = await cli(
      ['queue', 'update', 'sm', '--preemption-retries', '1', '--preemption-backoff', '0'],
      server.env,
    );
    expect(q.code, q.output).toBe(0);
    const itemId = await itemOf(['--image', image, '-E', 'sh -c "sleep 6; echo trained"']);
    const first = await runOf(itemId);
    await until(
      () => (fake.sagemaker.jobs.get(`liftoff-${first}`)?.secondary === 'Training' ? true : undefined),
      60_000,
    );
    fake.sagemaker.exceedMaxWait(`liftoff-${first}`);
    const preempted = await ended(first);
    expect(preempted.status).toBe('preempted');
    expect(preempted.error_message ?? '').toMatch(/max wait time/);
    let second = first;
    await until(async () => {
      second = (await server.client.getItem(itemId)).run_id ?? first;
      return second !== first ? true : undefined;
    }, 60_000);
    expect((await ended(second)).status).toBe('finished');
    expect((await server.client.readLogs(second)).data).toContain('trained');
    expect(fake.sagemaker.jobs.get(`liftoff-${first}`)?.status).toBe('Stopped');
  }, 180_000);

  it('an agent killed with -9 and restarted re-adopts the training job; the log continues without duplicates', async () => {
    const itemId = await itemOf([
      '--image',
      image,
      '-E',
      'sh -c "for i in 1 2 3 4 5 6 7 8 9 10; do echo tick $i; sleep 2; done"',
    ]);
    const runId = await runOf(itemId, 'tick 1');
    agent.proc.kill('SIGKILL');
    await agent.proc.exited;
    agent = await startAgent(server, {
      queues: ['sm'],
      name: 'sm-agent',
      dataDir: dataDir(),
      config: config(),
      env: agentEnv,
    });
    const run = await ended(runId);
    expect(run.status).toBe('finished');
    const logs = (await server.client.readLogs(runId)).data;
    expect(logs).toContain('re-adopted sagemaker training job');
    for (let i = 1; i <= 10; i++) expect(logs.match(new RegExp(`tick ${i}\\n`, 'g'))).toHaveLength(1);
    expect(
      fake.server.callsOf('CreateTrainingJob').filter((c) => c.input.TrainingJobName === `liftoff-${runId}`),
    ).toHaveLength(1);
  }, 180_000);
  it('keeps a job going across short-lived credentials: the agent fetches new ones, expired keys are refused', async () => {
    fake.server.credentialsTtlMs = 1_500;
    try {
      // Restarted so that its first credentials already are short-lived ones.
      await agent.stop();
      agent = await startAgent(server, {
        queues: ['sm'],
        name: 'sm-agent',
        dataDir: dataDir(),
        config: config(),
        env: agentEnv,
      });
      const fetches = fake.server.credentialFetches;
      const itemId = await itemOf(['--image', image, '-E', 'sh -c "sleep 4; echo still signed"']);
      const runId = await runOf(itemId);
      expect((await ended(runId)).status).toBe('finished');
      expect((await server.client.readLogs(runId)).data).toContain('still signed');
      expect(fake.server.credentialFetches - fetches).toBeGreaterThan(1);
      const keys = fake.server.calls
        .filter((c) => c.input.TrainingJobName === `liftoff-${runId}`)
        .map((c) => c.accessKeyId);
      expect(new Set(keys).size).toBeGreaterThan(1);
    } finally {
      fake.server.credentialsTtlMs = 15 * 60_000;
    }
  }, 120_000);

  it('at start the agent stops an orphan: an InProgress training job tagged with it that no run holds', async () => {
    const sm = new SageMakerClient({
      region: 'us-east-1',
      credentials: fakeCredentials(fake),
      endpoint: fake.server.endpoint,
    });
    await sm.send(
      new CreateTrainingJobCommand({
        TrainingJobName: 'liftoff-orphan01',
        RoleArn: 'arn:aws:iam::123456789012:role/liftoff-training',
        AlgorithmSpecification: {
          TrainingImage: image,
          TrainingInputMode: 'File',
          ContainerEntrypoint: ['sleep', '300'],
        },
        OutputDataConfig: { S3OutputPath: 's3://liftoff-test/models' },
        ResourceConfig: { InstanceType: 'ml.m5.large', InstanceCount: 1, VolumeSizeInGB: 10 },
        StoppingCondition: { MaxRuntimeInSeconds: 3600 },
        Tags: [
          { Key: 'LiftoffRunId', Value: 'orphan01' },
          { Key: 'LiftoffAgent', Value: 'sm-agent' },
        ],
      }),
    );
    sm.destroy();
    await agent.stop();
    agent = await startAgent(server, {
      queues: ['sm'],
      name: 'sm-agent',
      dataDir: dataDir(),
      config: config(),
      env: agentEnv,
    });
    await until(() => (fake.sagemaker.jobs.get('liftoff-orphan01')?.status === 'Stopped' ? true : undefined), 60_000);
  }, 120_000);
  it('an agent without an aws environment refuses a sagemaker queue at start, naming the fix', async () => {
    const r = await cli(
      [
        'launch-agent',
        '--name',
        'no-aws',
        '--data-dir',
        join(tempDir(), 'a'),
        '-q',
        'sm',
        '-c',
        agentConfig(tempDir(), 'queues: [sm]\n'),
      ],
      server.env,
    );
    expect(r.code).toBe(2);
    expect(r.output).toMatch(
      /sagemaker queues need AWS: add `environment: \{type: aws, region: <region>\}` to the agent config/,
    );
  }, 60_000);
});
