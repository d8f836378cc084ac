import { BUILDAH, buildahImageAvailable } from '../helpers/buildah.js';
import { generateKeyPairSync } from 'node:crypto';
import { CreateRepositoryCommand, ECRClient } from '@aws-sdk/client-ecr';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pushToRegistry, startRegistry, type TestRegistry } from '../helpers/docker.js';
import { startFakeGcs } from '../helpers/gcpFake/gcs.js';
import { startFakeIam } from '../helpers/gcpFake/iam.js';
import { startFakeMetadata } from '../helpers/gcpFake/metadata.js';
import { codeDir } from '../helpers/jobs.js';
import { KANIKO_STANDIN, buildKanikoStandin, untagImagesOf } from '../helpers/kanikoStandin.js';
import { startFakeKube, type FakeKube } from '../helpers/kube/index.js';
import {
  ecrFront,
  MOTO_ACCOUNT,
  createMotoBucket,
  motoAvailable,
  motoEnv,
  startMoto,
  type Moto,
} from '../helpers/moto.js';
import {
  agentConfig,
  cleanupAll,
  cli,
  startAgent,
  startServer,
  tempDir,
  until,
  type TestServer,
} from '../helpers/procs.js';

const PROJECT = 'liftoff-test-project';

/** The build pod and its tooling reach the loopback fakes (S3, GCS, registries) through the node's network. */
const POD_ON_HOST = `  kaniko-config:
    spec:
      template:
        spec:
          hostNetwork: true
          terminationGracePeriodSeconds: 1
          containers:
          - imagePullPolicy: Never
`;

/**
 * In-cluster builds end to end (issue 15): real `liftoff` server and agent processes, a kubernetes queue on the test
 * API server, and the buildah builder building for real on its kubelet, once per registry that exists: a plain OCI
 * registry with credentials, ECR (moto's token, fronting a real Distribution registry), Artifact Registry (the
 * metadata server's token, with a signed GCS URL for the context). Each run then runs the built image as a kubernetes
 * run that prints what the build put in it. The kaniko builder runs its stand-in executor, which fails: the run
 * fails at stage build with the executor's log.
 */
describe.skipIf(!buildahImageAvailable('the in-cluster build end-to-end suite') || !motoAvailable())(
  'in-cluster builds through server and agent',
  () => {
    let server: TestServer;
    let kube: FakeKube;
    let kubeconfig: string;
    let moto: Moto;

    /** A Dockerfile.liftoff FROM a base image in `registry`, pushed there with its login. */
    const codeFor = async (registry: TestRegistry): Promise<string> => {
      const base = `${registry.host}/base/busybox:1`;
      untagImagesOf(registry.host);
      await pushToRegistry(registry, base);
      return codeDir({
        'message.txt': `built for ${registry.host}\n`,
        'Dockerfile.liftoff': `FROM ${base}\nCOPY message.txt /message.txt\nRUN echo built-by-buildah > /built.txt\n`,
      });
    };
    const launch = (queue: string, dir: string) =>
      cli(['launch', '-q', queue, '--code', dir, '-E', 'cat /message.txt /built.txt', '--wait'], server.env);
    const kubeSection = () => `kubernetes:\n  config-file: ${kubeconfig}\n`;

    beforeAll(async () => {
      kube = await startFakeKube({ namespaces: ['default'] });
      kubeconfig = await kube.writeKubeconfig(tempDir('liftoff-icb-kube-'));
      moto = await startMoto();
      await createMotoBucket(moto, 'liftoff-ctx');
      server = await startServer();
      for (const name of ['oci-k8s', 'ecr-k8s', 'gar-k8s', 'kaniko-k8s', 'kaniko-crash']) {
        await server.client.createQueue('default', { name, resource: 'kubernetes' });
      }
    }, 120_000);
    afterAll(async () => {
      await kube?.close();
      await cleanupAll();
    });

    it('OCI registry with credentials: builds with buildah in the cluster, pushes, and the run prints it', async () => {
      const registry = await startRegistry();
      const dir = await codeFor(registry);
      const config = `entity: default
max_jobs: -1
environment:
  type: aws
  region: us-east-1
builder:
  type: buildah
  buildah-image: ${BUILDAH}
  destination: ${registry.host}/team/app
  credentials: { username: ${registry.username}, password: ${registry.password} }
  build-context-store: s3://liftoff-ctx/oci/
${POD_ON_HOST}${kubeSection()}`;
      const agent = await startAgent(server, {
        queues: ['oci-k8s'],
        name: 'icb-oci',
        config: agentConfig(tempDir(), config),
        env: motoEnv(moto),
      });
      const r = await launch('oci-k8s', dir);
      expect(r.code, r.output).toBe(0);
      expect(r.output).toContain('[liftoff] the buildah build pod runs as root with capabilities SYS_ADMIN');
      expect(r.output).toMatch(/\[liftoff\] build job default\/wandb-launch-container-build-\w+ created/);
      expect(r.output).toMatch(/STEP 1\/3: FROM 127\.0\.0\.1:\d+\/base\/busybox:1/);
      expect(r.output).toContain(`built for ${registry.host}\nbuilt-by-buildah\n`);
      expect(kube.list('Job').filter((j) => j.metadata.labels['liftoff.dev/role'] === 'build')).toEqual([]);
      await agent.stop();
    }, 300_000);

    it('ECR (moto token in front of a real registry): the same build pushes with AWS:<token>', async () => {
      const registry = await startRegistry({ username: 'AWS', password: `${MOTO_ACCOUNT}-auth-token` });
      const front = await ecrFront(moto, registry.host);
      const ecr = new ECRClient({
        region: 'us-east-1',
        endpoint: moto.url,
        credentials: { accessKeyId: 'AKIDLIFTOFFTEST', secretAccessKey: 'x' },
      });
      await ecr.send(new CreateRepositoryCommand({ repositoryName: 'my-ecr-repo' }));
      ecr.destroy();
      const dir = await codeFor(registry);
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
  build-context-store: s3://liftoff-ctx/ecr/
${POD_ON_HOST}${kubeSection()}`;
      const agent = await startAgent(server, {
        queues: ['ecr-k8s'],
        name: 'icb-ecr',
        config: agentConfig(tempDir(), config),
        env: motoEnv(moto, { AWS_ENDPOINT_URL_ECR: front.url }),
      });
      const r = await launch('ecr-k8s', dir);
      expect(r.code, r.output).toBe(0);
      expect(r.output).toMatch(new RegExp(`building ${registry.host.replace(/\./g, '\\.')}/my-ecr-repo:[0-9a-f]{16}`));
      expect(r.output).toContain(`built for ${registry.host}\nbuilt-by-buildah\n`);
      expect(front.tokenCalls()).toBeGreaterThanOrEqual(1);
      await agent.stop();
    }, 300_000);

    it('Artifact Registry (metadata token) with a gs:// store signed through IAM signBlob', async () => {
      const TOKEN = 'ya29.liftoff-icb-token';
      const md = await startFakeMetadata({ token: TOKEN });
      const gcs = await startFakeGcs({ buckets: ['liftoff-ctx'], acceptToken: (t) => t === TOKEN });
      const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
      const email = `liftoff-agent@${PROJECT}.iam.gserviceaccount.com`;
      const iam = await startFakeIam({ keys: new Map([[email, privateKey]]), acceptToken: (t) => t === TOKEN });
      gcs.signers.set(email, publicKey);
      const registry = await startRegistry({ username: 'oauth2accesstoken', password: TOKEN });
      const dir = await codeFor(registry);
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
${POD_ON_HOST}${kubeSection()}`;
      const agent = await startAgent(server, {
        queues: ['gar-k8s'],
        name: 'icb-gar',
        config: agentConfig(tempDir(), config),
        env: {
          ...md.env,
          CLOUDSDK_CONFIG: tempDir('liftoff-gcloud-'),
          STORAGE_EMULATOR_HOST: gcs.url,
          CLOUDSDK_API_ENDPOINT_OVERRIDES_IAMCREDENTIALS: iam.url,
        },
      });
      const r = await launch('gar-k8s', dir);
      expect(r.code, r.output).toBe(0);
      expect(iam.calls).toContain(email);
      expect(r.output).not.toContain('no signed URL');
      expect(r.output).toContain(`built for ${registry.host}\nbuilt-by-buildah\n`);
      await agent.stop();
    }, 300_000);

    it('kaniko (stand-in executor) failing: the run fails at stage build with the executor log', async () => {
      buildKanikoStandin();
      const registry = await startRegistry();
      const dir = await codeFor(registry);
      const config = `entity: default
max_jobs: -1
environment:
  type: aws
  region: us-east-1
builder:
  type: kaniko
  kaniko-image: ${KANIKO_STANDIN}
  destination: ${registry.host}/team/app
  credentials: { username: ${registry.username}, password: ${registry.password} }
  build-context-store: s3://liftoff-ctx/kaniko/
${POD_ON_HOST}            env:
            - { name: STANDIN_EXIT, value: "9" }
${kubeSection()}`;
      const agent = await startAgent(server, {
        queues: ['kaniko-k8s'],
        name: 'icb-kaniko',
        config: agentConfig(tempDir(), config),
        env: motoEnv(moto),
      });
      const r = await launch('kaniko-k8s', dir);
      expect(r.code).not.toBe(0);
      expect(r.output).toContain(`push login for ${registry.host}: user ${registry.username}`);
      expect(r.output).toContain('ERROR error building image: stand-in exit 9');
      const { runs } = await server.client.listRuns('default', { queue: 'kaniko-k8s' });
      expect(runs).toHaveLength(1);
      expect(runs[0]).toMatchObject({ status: 'failed', error_stage: 'build' });
      expect(runs[0]?.error_message).toMatch(
        /^The in-cluster kaniko build of .* failed: container kaniko exited with code 9/,
      );
      expect(r.output).toMatch(/in-cluster kaniko build of .* failed: container kaniko exited with code 9/);
      await agent.stop();
    }, 300_000);
    it('an agent killed mid-build: the restarted agent does not take the build Job for the run, and sweeps it', async () => {
      buildKanikoStandin();
      const registry = await startRegistry();
      const dir = await codeFor(registry);
      const config = agentConfig(
        tempDir(),
        `entity: default
max_jobs: -1
environment:
  type: aws
  region: us-east-1
builder:
  type: kaniko
  kaniko-image: ${KANIKO_STANDIN}
  destination: ${registry.host}/team/app
  credentials: { username: ${registry.username}, password: ${registry.password} }
  build-context-store: s3://liftoff-ctx/crash/
${POD_ON_HOST}            env:
            - { name: STANDIN_SLEEP, value: "600" }
${kubeSection()}`,
      );
      const opts = { queues: ['kaniko-crash'], name: 'icb-crash', config, env: motoEnv(moto) };
      const first = await startAgent(server, opts);
      const pushed = await cli(['launch', '-q', 'kaniko-crash', '--code', dir, '-E', 'true', '--json'], server.env);
      expect(pushed.code, pushed.output).toBe(0);
      const builds = (kind: string) =>
        kube.list(kind).filter((o) => o.metadata.labels?.['liftoff.dev/role'] === 'build');
      await until(() => (builds('Pod').some((p) => p.status?.phase === 'Running') ? true : undefined), 60_000);
      first.proc.kill('SIGKILL');
      await first.proc.exited;
      expect(builds('Job')).toHaveLength(1);
      const again = await startAgent(server, opts);
      const run = await until(async () => {
        const [r] = (await server.client.listRuns('default', { queue: 'kaniko-crash' })).runs;
        return r && ['failed', 'finished', 'stopped', 'lost'].includes(r.status) ? r : undefined;
      }, 60_000);
      // Not "finished" when the build Job ends: the run's own Job never existed.
      expect(run.status).toBe('failed');
      expect(run.error_message).toMatch(/Kubernetes Job is gone/);
      await until(() => (builds('Job').length === 0 && builds('Secret').length === 0 ? true : undefined), 60_000);
      await again.stop();
    }, 300_000);
  },
);
