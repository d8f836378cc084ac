import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import {
  CreateTrainingJobCommand,
  DescribeTrainingJobCommand,
  SageMakerClient,
  StopTrainingJobCommand,
  type CreateTrainingJobCommandInput,
} from '@aws-sdk/client-sagemaker';
import { CloudWatchLogsClient, DescribeLogStreamsCommand, GetLogEventsCommand } from '@aws-sdk/client-cloudwatch-logs';
import { ECRClient, GetAuthorizationTokenCommand } from '@aws-sdk/client-ecr';
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { SignatureV4 } from '@smithy/signature-v4';
import { Sha256 } from '../helpers/awsFake/sha256.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fakeAwsSettings, isolatedAwsEnv } from '../helpers/awsFake/clients.js';
import { awsModelsDir, FAKE_ACCOUNT, LOG_GROUP, startFakeAws, type FakeAws } from '../helpers/awsFake/index.js';
import { loadModel } from '../helpers/awsFake/models.js';
import { startMoto } from '../helpers/moto.js';
import { BUSYBOX, docker, dockerAvailable } from '../helpers/docker.js';
import { cleanupAll, tempDir, until } from '../helpers/procs.js';

const run = promisify(execFile);
const modelsDir = dockerAvailable() ? awsModelsDir() : undefined;
const ROLE = `arn:aws:iam::${FAKE_ACCOUNT}:role/liftoff-training`;

function request(
  name: string,
  image: string,
  over: Partial<CreateTrainingJobCommandInput> = {},
): CreateTrainingJobCommandInput {
  return {
    TrainingJobName: name,
    RoleArn: ROLE,
    AlgorithmSpecification: {
      TrainingImage: image,
      TrainingInputMode: 'File',
      ContainerEntrypoint: ['sh', '-c'],
      ContainerArguments: ['echo hello; echo world'],
    },
    OutputDataConfig: { S3OutputPath: 's3://liftoff-test/out' },
    ResourceConfig: { InstanceType: 'ml.m5.large', InstanceCount: 1, VolumeSizeInGB: 10 },
    StoppingCondition: { MaxRuntimeInSeconds: 3600 },
    ...over,
  };
}

describe.skipIf(!modelsDir)('the fake AWS endpoint', () => {
  let fake: FakeAws;
  let sm: SageMakerClient;
  let logs: CloudWatchLogsClient;
  let image: string;

  beforeAll(async () => {
    fake = await startFakeAws(modelsDir ?? '');
    const aws = fakeAwsSettings(fake);
    sm = new SageMakerClient({ region: aws.region, credentials: aws.credentials, endpoint: fake.server.endpoint });
    logs = new CloudWatchLogsClient({
      region: aws.region,
      credentials: aws.credentials,
      endpoint: fake.server.endpoint,
    });
    image = await fake.ecr.push(fake.docker, BUSYBOX, 'liftoff/train', 'selftest');
  });
  afterAll(async () => {
    sm?.destroy();
    logs?.destroy();
    await fake?.close();
    await cleanupAll();
  });

  const finished = (name: string) =>
    until(async () => {
      const d = await sm.send(new DescribeTrainingJobCommand({ TrainingJobName: name }));
      return ['Completed', 'Failed', 'Stopped'].includes(d.TrainingJobStatus ?? '') ? d : undefined;
    });

  it('refuses what the official model refuses, in AWS error shape', async () => {
    const refused = async (input: CreateTrainingJobCommandInput) => {
      const err = (await sm.send(new CreateTrainingJobCommand(input)).catch((e: unknown) => e)) as Error & {
        $metadata?: { httpStatusCode?: number };
      };
      expect(err.name).toBe('ValidationException');
      expect(err.$metadata?.httpStatusCode).toBe(400);
      return err.message;
    };
    const noRole = request('no-role', image) as Partial<CreateTrainingJobCommandInput>;
    delete noRole.RoleArn;
    expect(await refused(noRole as CreateTrainingJobCommandInput)).toMatch(
      /'roleArn' failed to satisfy constraint: Member must not be null/,
    );
    // The entry limit is the model's (48 in botocore 1.29, 100 in 1.43): one past it is refused.
    const max = loadModel(modelsDir ?? '', 'sagemaker').shapes.TrainingEnvironmentMap?.max ?? 0;
    expect(max).toBeGreaterThanOrEqual(48);
    const env = Object.fromEntries(Array.from({ length: max + 1 }, (_, i) => [`V${i}`, 'x']));
    expect(await refused(request('too-many-env', image, { Environment: env }))).toMatch(
      new RegExp(`'environment' .*less than or equal to ${max}`),
    );
    expect(await refused(request('long-env', image, { Environment: { A: 'x'.repeat(600) } }))).toMatch(
      /less than or equal to 512/,
    );
    // botocore's pattern has no `$`: only a full match refuses the underscore.
    expect(await refused(request('abc_123', image))).toMatch(
      /'trainingJobName' failed to satisfy constraint: Member must satisfy regular expression pattern/,
    );
    expect(fake.sagemaker.jobs.size).toBe(0);
  });

  it('refuses unknown members and requests without a valid SigV4 signature', async () => {
    const key = fake.server.staticKey();
    const send = async (body: unknown, sign: 'good' | 'none' | 'tampered') => {
      const url = new URL(fake.server.endpoint);
      const req = {
        method: 'POST',
        protocol: 'http:',
        hostname: url.hostname,
        port: Number(url.port),
        path: '/',
        headers: {
          host: url.host,
          'content-type': 'application/x-amz-json-1.1',
          'x-amz-target': 'SageMaker.CreateTrainingJob',
        },
        body: JSON.stringify(body),
      };
      const signer = new SignatureV4({ credentials: key, region: 'us-east-1', service: 'sagemaker', sha256: Sha256 });
      const signed = sign === 'none' ? req : await signer.sign(req);
      const res = await fetch(fake.server.endpoint, {
        method: 'POST',
        headers: signed.headers as Record<string, string>,
        body: sign === 'tampered' ? req.body.replace('unknown-member', 'unknown-membex') : req.body,
      });
      return { status: res.status, body: (await res.json()) as { __type: string; message: string } };
    };
    const body = { ...request('unknown-member', image), Foo: 1 };
    const unknown = await send(body, 'good');
    expect(unknown.status).toBe(400);
    expect(unknown.body).toEqual({
      __type: 'ValidationException',
      message: expect.stringMatching(/Unknown member 'Foo'/) as string,
    });
    expect((await send(request('unsigned', image), 'none')).body.__type).toBe('MissingAuthenticationTokenException');
    const tampered = (await send(request('unknown-member', image), 'tampered')).body.__type;
    expect(['SignatureDoesNotMatch', 'XAmzContentSHA256Mismatch']).toContain(tampered);
    expect(fake.sagemaker.jobs.size).toBe(0);
  });

  it('runs a training job in Docker through the SageMaker lifecycle and serves its output as a log stream', async () => {
    await sm.send(new CreateTrainingJobCommand(request('completes', image)));
    const dup = await sm.send(new CreateTrainingJobCommand(request('completes', image))).catch((e: Error) => e);
    expect((dup as Error).name).toBe('ResourceInUse');
    const done = await finished('completes');
    expect(done.TrainingJobStatus).toBe('Completed');
    expect(done.SecondaryStatusTransitions?.map((t) => t.Status)).toEqual([
      'Starting',
      'Downloading',
      'Training',
      'Uploading',
      'Completed',
    ]);
    const streams = await logs.send(
      new DescribeLogStreamsCommand({ logGroupName: LOG_GROUP, logStreamNamePrefix: 'completes/' }),
    );
    const stream = streams.logStreams?.[0]?.logStreamName ?? '';
    expect(stream).toMatch(/^completes\/algo-1-\d+$/);
    const page = await logs.send(
      new GetLogEventsCommand({ logGroupName: LOG_GROUP, logStreamName: stream, startFromHead: true }),
    );
    expect(page.events?.map((e) => e.message)).toEqual(['Starting container algo-1', 'hello', 'world']);
    const again = await logs.send(
      new GetLogEventsCommand({ logGroupName: LOG_GROUP, logStreamName: stream, nextToken: page.nextForwardToken }),
    );
    expect(again.events).toEqual([]);
    expect(again.nextForwardToken).toBe(page.nextForwardToken);
  });

  it('fails on a non-zero exit, stops on request and at MaxRuntimeInSeconds, and takes injected spot outcomes', async () => {
    const args = (a: string) => ({
      TrainingImage: image,
      TrainingInputMode: 'File' as const,
      ContainerEntrypoint: ['sh', '-c'],
      ContainerArguments: [a],
    });
    await sm.send(new CreateTrainingJobCommand(request('exits-3', image, { AlgorithmSpecification: args('exit 3') })));
    await sm.send(
      new CreateTrainingJobCommand(request('stopped', image, { AlgorithmSpecification: args('sleep 60') })),
    );
    await sm.send(
      new CreateTrainingJobCommand(
        request('too-long', image, {
          AlgorithmSpecification: args('sleep 60'),
          StoppingCondition: { MaxRuntimeInSeconds: 100 },
        }),
      ),
    );
    await sm.send(new CreateTrainingJobCommand(request('spot', image, { AlgorithmSpecification: args('sleep 60') })));
    const failed = await finished('exits-3');
    expect(failed.TrainingJobStatus).toBe('Failed');
    expect(failed.FailureReason).toMatch(/^AlgorithmError: .*exit code 3$/);
    await until(
      async () =>
        (await sm.send(new DescribeTrainingJobCommand({ TrainingJobName: 'stopped' }))).SecondaryStatus ===
          'Training' || undefined,
    );
    await sm.send(new StopTrainingJobCommand({ TrainingJobName: 'stopped' }));
    expect((await sm.send(new DescribeTrainingJobCommand({ TrainingJobName: 'stopped' }))).TrainingJobStatus).toBe(
      'Stopping',
    );
    const stopped = await finished('stopped');
    expect([stopped.TrainingJobStatus, stopped.SecondaryStatus]).toEqual(['Stopped', 'Stopped']);
    const tooLong = await finished('too-long');
    expect([tooLong.TrainingJobStatus, tooLong.SecondaryStatus]).toEqual(['Stopped', 'MaxRuntimeExceeded']);
    await until(
      async () =>
        (await sm.send(new DescribeTrainingJobCommand({ TrainingJobName: 'spot' }))).SecondaryStatus === 'Training' ||
        undefined,
    );
    fake.sagemaker.interrupt('spot');
    const interrupted = await sm.send(new DescribeTrainingJobCommand({ TrainingJobName: 'spot' }));
    expect([interrupted.TrainingJobStatus, interrupted.SecondaryStatus]).toEqual(['InProgress', 'Interrupted']);
    fake.sagemaker.exceedMaxWait('spot');
    const spot = await finished('spot');
    expect([spot.TrainingJobStatus, spot.SecondaryStatus]).toEqual(['Stopped', 'MaxWaitTimeExceeded']);
    await until(() =>
      docker('ps', '-aq', '--filter', `label=${fake.sagemaker.containerLabel}`) === '' ? true : undefined,
    );
  });

  it('hands out ECR and STS answers through the same signed clients', async () => {
    const aws = fakeAwsSettings(fake);
    const ecr = new ECRClient({ region: aws.region, credentials: aws.credentials, endpoint: fake.server.endpoint });
    const sts = new STSClient({ region: aws.region, credentials: aws.credentials, endpoint: fake.server.endpoint });
    const token = (await ecr.send(new GetAuthorizationTokenCommand({}))).authorizationData?.[0];
    expect(Buffer.from(token?.authorizationToken ?? '', 'base64').toString()).toBe(`AWS:${fake.ecr.token}`);
    const me = await sts.send(new GetCallerIdentityCommand({}));
    expect(me.Account).toBe(FAKE_ACCOUNT);
    expect(me.Arn).toMatch(/^arn:aws:sts::123456789012:assumed-role\//);
    ecr.destroy();
    sts.destroy();
  });

  it('drives the AWS CLI as moto_server does for the same calls', async () => {
    const moto = await startMoto();
    const dir = tempDir('liftoff-aws-cli-');
    writeFileSync(join(dir, 'config'), '[default]\nregion = us-east-1\n');
    writeFileSync(join(dir, 'credentials'), '');
    const key = fake.server.staticKey();
    const env = isolatedAwsEnv(dir, key);
    const cli = async (endpoint: string, ...args: string[]): Promise<Record<string, unknown>> => {
      try {
        const { stdout } = await run('aws', ['--endpoint-url', endpoint, '--output', 'json', 'sagemaker', ...args], {
          env,
        });
        return stdout.trim() ? (JSON.parse(stdout) as Record<string, unknown>) : {};
      } catch (e) {
        const code = /An error occurred \((\w+)\)/.exec(String((e as { stderr?: string }).stderr))?.[1];
        if (!code) throw e;
        return { error: code };
      }
    };
    const input = join(dir, 'job.json');
    writeFileSync(
      input,
      JSON.stringify(
        request('cli-job', image, {
          Tags: [{ Key: 'LiftoffRunId', Value: 'abcd1234' }],
          AlgorithmSpecification: {
            TrainingImage: image,
            TrainingInputMode: 'File',
            ContainerEntrypoint: ['sleep', '30'],
          },
        }),
      ),
    );
    const answers = async (endpoint: string) => {
      const create = await cli(endpoint, 'create-training-job', '--cli-input-json', `file://${input}`);
      const describe = await cli(endpoint, 'describe-training-job', '--training-job-name', 'cli-job');
      const list = await cli(endpoint, 'list-training-jobs', '--name-contains', 'cli-');
      const tags = await cli(endpoint, 'list-tags', '--resource-arn', String(create.TrainingJobArn));
      const missing = await cli(endpoint, 'describe-training-job', '--training-job-name', 'no-such-job');
      return { create, describe, list, tags, missing };
    };
    const ours = await answers(fake.server.endpoint);
    const theirs = await answers(moto.url);
    moto.proc.kill('SIGKILL');
    expect(fake.server.callsOf('CreateTrainingJob').at(-1)?.accessKeyId).toBe(key.accessKeyId);
    // The same structure: member names and JSON types (moto completes at once, so values and timing differ).
    const shape = (o: Record<string, unknown>, keys = Object.keys(o)) =>
      Object.fromEntries(keys.map((k) => [k, Array.isArray(o[k]) ? 'array' : typeof o[k]]));
    expect(shape(ours.create)).toEqual(shape(theirs.create));
    expect(ours.create.TrainingJobArn).toMatch(/^arn:aws:sagemaker:us-east-1:123456789012:training-job\/cli-job$/);
    const common = Object.keys(theirs.describe).filter((k) => k in ours.describe);
    const model = loadModel(modelsDir ?? '', 'sagemaker');
    for (const req of model.shapes.DescribeTrainingJobResponse?.required ?? []) {
      expect(common, `DescribeTrainingJob.${req} in both answers`).toContain(req);
    }
    expect(shape(ours.describe, common)).toEqual(shape(theirs.describe, common));
    for (const k of ['AlgorithmSpecification', 'ResourceConfig', 'StoppingCondition', 'OutputDataConfig', 'RoleArn']) {
      // moto adds defaults of its own (MetricDefinitions); what was sent comes back the same from both.
      expect(theirs.describe[k], k).toMatchObject(ours.describe[k] as object);
    }
    const summaries = (o: Record<string, unknown>) => o.TrainingJobSummaries as Record<string, unknown>[];
    expect(summaries(ours.list).map((s) => s.TrainingJobName)).toEqual(
      summaries(theirs.list).map((s) => s.TrainingJobName),
    );
    const firstOurs = summaries(ours.list)[0] ?? {};
    const firstTheirs = summaries(theirs.list)[0] ?? {};
    const listed = Object.keys(firstTheirs).filter((k) => k in firstOurs);
    expect(listed).toEqual(
      expect.arrayContaining(['TrainingJobName', 'TrainingJobArn', 'CreationTime', 'TrainingJobStatus']),
    );
    expect(shape(firstOurs, listed)).toEqual(shape(firstTheirs, listed));
    expect(ours.tags).toEqual(theirs.tags);
    // A missing job is a ValidationException in SageMaker (not ResourceNotFound); both say so.
    expect(ours.missing).toEqual({ error: 'ValidationException' });
    expect(theirs.missing).toEqual(ours.missing);
    // moto has no StopTrainingJob; the CLI stops ours.
    expect(await cli(fake.server.endpoint, 'stop-training-job', '--training-job-name', 'cli-job')).toEqual({});
    expect((await finished('cli-job')).TrainingJobStatus).toBe('Stopped');
  });
});
