import { CreateRepositoryCommand, ECRClient } from '@aws-sdk/client-ecr';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupDockerAfter, dockerAvailable, PYTHON, startRegistry, type TestRegistry } from '../helpers/docker.js';
import { codeDir } from '../helpers/jobs.js';
import { ecrFront, MOTO_ACCOUNT, motoAvailable, motoEnv, startMoto, type Moto } from '../helpers/moto.js';
import { agentConfig, cleanupAll, cli, startAgent, startServer, tempDir, type TestServer } from '../helpers/procs.js';

/**
 * The specification's example agent config (environment aws, registry ecr, docker builder) end to end (issue 13):
 * real `liftoff` server and agent processes, moto as AWS on loopback (STS, ECR), and behind the ECR token a real
 * Distribution registry whose only login is the `AWS:<token>` moto's GetAuthorizationToken hands out.
 */
const SPEC_CONFIG = (extra = '') => `entity: default
max_jobs: -1
queues:
- ecr-box
environment:
  type: aws
  region: us-east-1
registry:
  type: ecr
  repository: my-ecr-repo
builder:
  type: docker
${extra}`;

const PRINT_ENV = 'import os\nprint("ENVKEYS", sorted(os.environ))\nprint("ran the ECR image")\n';

describe.skipIf(!dockerAvailable() || !motoAvailable())('an agent with the aws environment and an ecr registry', () => {
  let server: TestServer;
  let moto: Moto;
  let registry: TestRegistry;
  let agentEnv: Record<string, string>;
  let tokenCalls: () => number;
  const agents: string[] = [];

  beforeAll(async () => {
    moto = await startMoto();
    registry = await startRegistry({ username: 'AWS', password: `${MOTO_ACCOUNT}-auth-token` });
    const front = await ecrFront(moto, registry.host);
    tokenCalls = front.tokenCalls;
    agentEnv = motoEnv(moto, { AWS_ENDPOINT_URL_ECR: front.url });
    const ecr = new ECRClient({
      region: 'us-east-1',
      endpoint: moto.url,
      credentials: { accessKeyId: 'AKIDLIFTOFFTEST', secretAccessKey: 'x' },
    });
    await ecr.send(new CreateRepositoryCommand({ repositoryName: 'my-ecr-repo' }));
    ecr.destroy();
    server = await startServer();
    await server.client.createQueue('default', {
      name: 'ecr-box',
      resource: 'local-container',
      resource_args: { 'local-container': { builder: { base_image: PYTHON } } },
    });
    cleanupDockerAfter(() => agents);
  }, 120_000);
  afterAll(cleanupAll);

  it('builds a code job, pushes it to the ECR registry with the ECR token, and runs it without the agent AWS variables', async () => {
    const agent = await startAgent(server, {
      queues: ['ecr-box'],
      name: 'ecr-agent',
      config: agentConfig(tempDir(), SPEC_CONFIG()),
      env: agentEnv,
    });
    agents.push('ecr-agent');
    expect(agent.proc.output).toMatch(new RegExp(`aws: account ${MOTO_ACCOUNT}, partition aws, principal arn:aws:`));
    const dir = codeDir({ 'main.py': PRINT_ENV });
    const first = await cli(['launch', '-q', 'ecr-box', '--code', dir, '-E', 'python3 main.py', '--wait'], server.env);
    expect(first.code, first.output).toBe(0);
    const image = /building (\S+) from/.exec(first.output)?.[1] as string;
    expect(image.startsWith(`${registry.host}/my-ecr-repo:`)).toBe(true);
    expect(first.output).toContain('ran the ECR image');
    const keys = /ENVKEYS \[(.*)\]/.exec(first.output)?.[1] ?? '';
    expect(keys).toContain("'LIFTOFF_RUN_ID'");
    expect(keys).not.toContain('AWS_');
    // The push landed in the registry, under the login only the ECR token gives.
    const auth = `Basic ${Buffer.from(`AWS:${MOTO_ACCOUNT}-auth-token`).toString('base64')}`;
    const tags = (await (
      await fetch(`http://${registry.host}/v2/my-ecr-repo/tags/list`, { headers: { authorization: auth } })
    ).json()) as { tags: string[] };
    expect(tags.tags).toContain(image.split(':').at(-1));
    // The same inputs again: the OCI manifest HEAD, with a fresh ECR token, finds the image and skips the build.
    const before = tokenCalls();
    const second = await cli(['launch', '-q', 'ecr-box', '--code', dir, '-E', 'python3 main.py', '--wait'], server.env);
    expect(second.code, second.output).toBe(0);
    expect(second.output).toContain(`image ${image} already exists`);
    expect(tokenCalls()).toBeGreaterThan(before);
    await agent.stop();
  }, 240_000);

  it('without AWS credentials the agent stops at start (exit 2), saying how to provide them', async () => {
    const { AWS_ACCESS_KEY_ID: _k, AWS_SECRET_ACCESS_KEY: _s, ...noKeys } = agentEnv;
    const r = await cli(
      [
        'launch-agent',
        '--name',
        'no-creds',
        '--data-dir',
        join(tempDir(), 'a'),
        '-c',
        agentConfig(tempDir(), SPEC_CONFIG()),
      ],
      { ...server.env, ...noKeys },
    );
    expect(r.code).toBe(2);
    expect(r.output).toMatch(
      /^liftoff: error: The agent config has an aws environment, but no AWS credentials were found \(.*\)\. Provide them/m,
    );
    expect(r.output).not.toContain('    at ');
  }, 60_000);

  it('a build-context bucket that does not exist stops the agent at start (exit 2), naming it', async () => {
    const config = SPEC_CONFIG('  build-context-store: s3://liftoff-missing-bucket/ctx/\n');
    const r = await cli(
      ['launch-agent', '--name', 'no-bucket', '--data-dir', join(tempDir(), 'a'), '-c', agentConfig(tempDir(), config)],
      { ...server.env, ...agentEnv },
    );
    expect(r.code).toBe(2);
    expect(r.output).toContain(
      'liftoff: error: builder.build-context-store s3://liftoff-missing-bucket/ctx/: bucket "liftoff-missing-bucket" does not exist',
    );
  }, 60_000);
});
