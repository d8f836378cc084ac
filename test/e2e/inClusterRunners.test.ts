import { BUILDAH, buildahImageAvailable } from '../helpers/buildah.js';
import { generateKeyPairSync } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { awsModelsDir, startFakeAws, type FakeAws } from '../helpers/awsFake/index.js';
import { BUSYBOX, startRegistry } from '../helpers/docker.js';
import { startFakeGcs } from '../helpers/gcpFake/gcs.js';
import { startFakeIam } from '../helpers/gcpFake/iam.js';
import { startFakeMetadata } from '../helpers/gcpFake/metadata.js';
import { pushTestImage } from '../helpers/vertexFake/image.js';
import { startFakeVertex } from '../helpers/vertexFake/server.js';
import { codeDir } from '../helpers/jobs.js';
import { untagImagesOf } from '../helpers/kanikoStandin.js';
import { startFakeKube, type FakeKube } from '../helpers/kube/index.js';
import { createMotoBucket, motoAvailable, startMoto, type Moto } from '../helpers/moto.js';
import { agentConfig, cleanupAll, cli, startAgent, startServer, tempDir, type TestServer } from '../helpers/procs.js';

const modelsDir =
  buildahImageAvailable('the in-cluster build runner suite') && motoAvailable() ? awsModelsDir() : undefined;

/**
 * An in-cluster build feeding a runner other than kubernetes (issue 15): real server and agent processes, a
 * sagemaker queue on Liftoff's test AWS endpoint (STS, ECR in front of a real registry, SageMaker running training
 * jobs as containers on the Docker engine, CloudWatch Logs), moto's S3 as the build-context store, and the buildah
 * builder building for real on the test API server's kubelet. The training job runs the image buildah pushed.
 */
describe.skipIf(!modelsDir)('an in-cluster build for a sagemaker queue', () => {
  let fake: FakeAws;
  let moto: Moto;
  let kube: FakeKube;
  let server: TestServer;
  let agentEnv: Record<string, string>;

  beforeAll(async () => {
    fake = await startFakeAws(modelsDir ?? '');
    fake.ecr.repositories.add('my-ecr-repo');
    await fake.ecr.push(fake.docker, BUSYBOX, 'base', '1');
    moto = await startMoto();
    await createMotoBucket(moto, 'liftoff-ctx');
    kube = await startFakeKube({ namespaces: ['default'] });
    const home = tempDir('liftoff-aws-home-');
    agentEnv = {
      AWS_ENDPOINT_URL: fake.server.endpoint,
      // moto checks no signatures: the fake's container credentials sign for it as well.
      AWS_ENDPOINT_URL_S3: moto.url,
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
        },
      },
    });
  }, 120_000);
  afterAll(async () => {
    await kube?.close();
    await fake?.close();
    await cleanupAll();
  });

  it('buildah builds in the cluster, pushes to ECR, and the training job runs that image', async () => {
    const config = `entity: default
max_jobs: -1
environment:
  type: aws
  region: us-east-1
registry:
  type: ecr
  repository: my-ecr-repo
builder:
  type: buildah
  buildah-image: ${BUILDAH}
  build-context-store: s3://liftoff-ctx/sm/
  kaniko-config:
    spec:
      template:
        spec:
          hostNetwork: true
          containers:
          - imagePullPolicy: Never
kubernetes:
  config-file: ${await kube.writeKubeconfig(tempDir('liftoff-icr-kube-'))}
`;
    const agent = await startAgent(server, {
      queues: ['sm'],
      name: 'icr-sm',
      config: agentConfig(tempDir(), config),
      env: agentEnv,
    });
    const dir = codeDir({
      'message.txt': 'built in the cluster, trained on sagemaker\n',
      'Dockerfile.liftoff': `FROM ${fake.ecr.host}/base:1\nCOPY message.txt /message.txt\nRUN echo built-by-buildah > /built.txt\n`,
    });
    const r = await cli(
      ['launch', '-q', 'sm', '--code', dir, '-E', 'cat /message.txt /built.txt', '--wait'],
      server.env,
    );
    expect(r.code, r.output).toBe(0);
    expect(r.output).toContain('[liftoff] the buildah build pod runs as root with capabilities SYS_ADMIN');
    expect(r.output).toContain('built in the cluster, trained on sagemaker\nbuilt-by-buildah');
    const spec = fake.server.callsOf('CreateTrainingJob').at(-1)?.input.AlgorithmSpecification as {
      TrainingImage: string;
    };
    expect(spec.TrainingImage).toMatch(new RegExp(`^${fake.ecr.host.replace(/\./g, '\\.')}/my-ecr-repo:[0-9a-f]{16}$`));
    await agent.stop();
  }, 300_000);
});

const PROJECT = 'liftoff-test-project';

/**
 * The same for a vertex queue: ADC from the fake metadata server, the context on the GCS fake by a URL signed through
 * the IAM fake, Artifact Registry as a real registry with the metadata token, and the Vertex fake running the custom
 * job's container on the Docker engine from the image buildah pushed.
 */
describe.skipIf(!buildahImageAvailable('the in-cluster build runner suite'))(
  'an in-cluster build for a vertex queue',
  () => {
    afterAll(cleanupAll);

    it('buildah builds in the cluster, pushes to Artifact Registry, and the custom job runs that image', async () => {
      const TOKEN = 'ya29.liftoff-icr-vertex';
      const md = await startFakeMetadata({ token: TOKEN });
      const registry = await startRegistry({ username: 'oauth2accesstoken', password: TOKEN });
      const base = `${registry.host}/${PROJECT}/jobs/busybox:1`;
      untagImagesOf(registry.host);
      await pushTestImage(registry, base);
      const gcs = await startFakeGcs({ buckets: ['liftoff-ctx'], acceptToken: (t) => t === TOKEN });
      const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
      const email = `liftoff-agent@${PROJECT}.iam.gserviceaccount.com`;
      const iam = await startFakeIam({ keys: new Map([[email, privateKey]]), acceptToken: (t) => t === TOKEN });
      gcs.signers.set(email, publicKey);
      const fake = await startFakeVertex({
        project: PROJECT,
        acceptToken: (t) => md.tokens.includes(t),
        pullAuth: () => ({ username: 'oauth2accesstoken', password: TOKEN, serveraddress: registry.host }),
      });
      const kube = await startFakeKube({ namespaces: ['default'] });
      const server = await startServer();
      const pools = [{ machine_spec: { machine_type: 'n1-standard-4' }, replica_count: 1, container_spec: {} }];
      await server.client.createQueue('default', {
        name: 'vx',
        resource: 'vertex',
        resource_args: { vertex: { spec: { staging_bucket: 'gs://liftoff-ctx', worker_pool_specs: pools } } },
      });
      const config = `entity: default
max_jobs: -1
environment:
  type: gcp
  region: us-central1
  project: ${PROJECT}
registry:
  type: gcr
  uri: ${registry.host}/${PROJECT}/jobs/trainer
builder:
  type: buildah
  buildah-image: ${BUILDAH}
  build-context-store: gs://liftoff-ctx/ctx/
  kaniko-config:
    spec:
      template:
        spec:
          hostNetwork: true
          containers:
          - imagePullPolicy: Never
vertex:
  poll-seconds: 0.3
  log-tail-seconds: 1
kubernetes:
  config-file: ${await kube.writeKubeconfig(tempDir('liftoff-icr-kube-'))}
`;
      const agent = await startAgent(server, {
        queues: ['vx'],
        name: 'icr-vx',
        config: agentConfig(tempDir(), config),
        env: {
          ...md.env,
          CLOUDSDK_CONFIG: tempDir('liftoff-gcloud-'),
          STORAGE_EMULATOR_HOST: gcs.url,
          CLOUDSDK_API_ENDPOINT_OVERRIDES_IAMCREDENTIALS: iam.url,
          CLOUDSDK_API_ENDPOINT_OVERRIDES_AIPLATFORM: fake.url,
          CLOUDSDK_API_ENDPOINT_OVERRIDES_LOGGING: fake.loggingUrl,
        },
      });
      const dir = codeDir({
        'message.txt': 'built in the cluster, trained on vertex\n',
        'Dockerfile.liftoff': `FROM ${base}\nCOPY message.txt /message.txt\nRUN echo built-by-buildah > /built.txt\n`,
      });
      const r = await cli(
        ['launch', '-q', 'vx', '--code', dir, '-E', 'cat /message.txt /built.txt', '--wait'],
        server.env,
      );
      expect(r.code, r.output).toBe(0);
      expect(r.output).toContain('[liftoff] the buildah build pod runs as root with capabilities SYS_ADMIN');
      expect(r.output).toContain('built in the cluster, trained on vertex\nbuilt-by-buildah');
      expect(iam.calls).toContain(email);
      await agent.stop();
      await kube.close();
      await fake.close();
    }, 300_000);
  },
);
