import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import Dockerode from 'dockerode';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { KubeConfigError, LaunchSpec } from '@liftoff/core';
import { BuildCancelledError, BuildError } from '../../packages/agent/src/builders/types.js';
import { KanikoBuilder } from '../../packages/agent/src/builders/inCluster/kaniko.js';
import { RegistryCredentials } from '../../packages/agent/src/docker/credentials.js';
import { awsClientConfig } from '../../packages/agent/src/environments/aws/settings.js';
import type { AwsClientSettings } from '../../packages/agent/src/environments/types.js';
import { OciRegistry } from '../../packages/agent/src/registries/oci.js';
import type { RunnerDeps } from '../../packages/agent/src/runners/types.js';
import type { GcpClientSettings } from '../../packages/agent/src/environments/types.js';
import { settingsFrom } from '../aws/env.js';
import { settingsFrom as gcpSettingsFrom } from '../gcp/env.js';
import { startFakeGcs, type FakeGcs } from '../helpers/gcpFake/gcs.js';
import { startFakeIam } from '../helpers/gcpFake/iam.js';
import { startFakeMetadata } from '../helpers/gcpFake/metadata.js';
import { dockerAvailable, pushToRegistry, startRegistry, type TestRegistry } from '../helpers/docker.js';
import { KANIKO_STANDIN, buildKanikoStandin, untagImagesOf } from '../helpers/kanikoStandin.js';
import { startFakeKube, type FakeKube } from '../helpers/kube/index.js';
import { motoAvailable, motoEnv, startMoto, type Moto } from '../helpers/moto.js';
import { cleanupAll, tempDir, until } from '../helpers/procs.js';

/**
 * The kaniko builder at the wire: the Job it creates is accepted by the test API server (schema-validated with
 * kubernetes-models) and its exact args, mounts, namespace and labels are asserted; the test kubelet runs it with a
 * stand-in executor image that checks the mounted docker config, fetches the context through the presigned URL from
 * moto's S3 and checks the Dockerfile is in it. Kaniko itself cannot run here (docs/builders.md).
 */
describe.skipIf(!dockerAvailable() || !motoAvailable())('the kaniko builder', () => {
  let kube: FakeKube;
  let moto: Moto;
  let aws: AwsClientSettings;
  let registry: TestRegistry;
  let kubeconfig: string;
  const docker = new Dockerode();
  const codeDir = tempDir('liftoff-kaniko-code-');

  beforeAll(async () => {
    buildKanikoStandin();
    kube = await startFakeKube({ namespaces: ['default', 'builds'] });
    kubeconfig = await kube.writeKubeconfig(tempDir('liftoff-kaniko-kube-'), { namespace: 'builds' });
    moto = await startMoto();
    aws = await settingsFrom(motoEnv(moto));
    const s3 = new S3Client({ ...awsClientConfig(aws, 's3'), forcePathStyle: true });
    await s3.send(new CreateBucketCommand({ Bucket: 'liftoff-ctx' }));
    s3.destroy();
    registry = await startRegistry();
    untagImagesOf(registry.host);
    writeFileSync(join(codeDir, 'train.py'), 'print("hello")\n');
    writeFileSync(join(codeDir, 'Dockerfile.liftoff'), 'FROM liftoff-test/python:3\nCOPY . /app\n');
  }, 120_000);
  afterAll(async () => {
    vi.unstubAllEnvs();
    await kube?.close();
    await cleanupAll();
  });

  const builder = (
    env: Record<string, string>,
    extra: Record<string, unknown> = {},
    clouds: Partial<RunnerDeps> = { aws },
  ) => {
    const credentials = new RegistryCredentials();
    credentials.set(registry.host, registry.username, registry.password);
    const runner: RunnerDeps = {
      logger: pino({ level: 'silent' }),
      processEnv: { KUBECONFIG: kubeconfig },
      agentId: 'agent-k1',
      docker,
      credentials,
      kubernetes: {},
      homeDir: tempDir('liftoff-kaniko-home-'),
      ...clouds,
    };
    return new KanikoBuilder({
      registry: new OciRegistry(docker, `${registry.host}/team/app`, credentials),
      credentials,
      runner,
      config: {
        type: 'kaniko',
        'build-context-store': 's3://liftoff-ctx/contexts/',
        'kaniko-image': KANIKO_STANDIN,
        'kaniko-config': {
          metadata: { labels: { team: 'ml' } },
          spec: {
            template: {
              spec: {
                // The stand-in reaches moto on 127.0.0.1 through the node's network.
                hostNetwork: true,
                // Python as PID 1 ignores SIGTERM: the deadline's kill should not wait 30 s.
                terminationGracePeriodSeconds: 1,
                containers: [
                  {
                    args: ['--cache=false', '--verbosity=debug', '--reproducible'],
                    env: Object.entries(env).map(([name, value]) => ({ name, value })),
                    imagePullPolicy: 'Never',
                  },
                ],
              },
            },
          },
        },
        ...extra,
      },
    });
  };

  const request = (runId: string, log: string[], cancelled = () => false) => ({
    runId,
    spec: LaunchSpec.parse({ source: { type: 'code', archive_id: 'a' }, entry_point: ['python3', 'train.py'] }),
    codeDir,
    sourceIdentity: `sha256:${runId}`,
    baseImage: 'liftoff-test/python:3',
    onLog: (t: string) => log.push(t),
    onNote: (l: string) => log.push(`[liftoff] ${l}\n`),
    isCancelled: cancelled,
  });

  it('creates a schema-valid Job with W&B flags and a Secret (not a ConfigMap), streams its log, and cleans up', async () => {
    const log: string[] = [];
    const result = await builder({ STANDIN_LINES: '3' }).build(request('kan00001', log));
    expect(result.built).toBe(true);
    expect(result.image).toMatch(new RegExp(`^${registry.host}/team/app:[0-9a-f]{16}$`));
    const text = log.join('');
    expect(text).toContain(`push login for ${registry.host}: user ${registry.username}`);
    expect(text).toContain('storage credentials in env: none');
    expect(text).toMatch(/Dockerfile\.liftoff begins FROM liftoff-test\/python:3/);
    expect(text).toContain('INFO[0002] step 3');
    expect(text).toContain(`Pushed ${result.image}`);
    expect(text).not.toContain("is W&B's default");

    const job = kube.created.find((c) => c.kind === 'Job' && (c.body as any).metadata.name.endsWith('kan00001'));
    expect(job?.namespace).toBe('builds');
    const body = job?.body as any;
    expect(body.metadata.name).toBe('wandb-launch-container-build-kan00001');
    expect(body.metadata.labels).toEqual({
      team: 'ml',
      'app.kubernetes.io/managed-by': 'liftoff',
      // Not the run id itself: the kubernetes runner finds a run's own Job and pods by it.
      'liftoff.dev/run-id': 'kan00001-build',
      'liftoff.dev/agent': 'agent-k1',
      'liftoff.dev/role': 'build',
    });
    expect(body.spec.backoffLimit).toBe(0);
    expect(body.spec.activeDeadlineSeconds).toBe(1800);
    const pod = body.spec.template.spec;
    expect(pod.restartPolicy).toBe('Never');
    expect(pod.automountServiceAccountToken).toBe(false);
    expect(pod.containers).toHaveLength(1);
    const c = pod.containers[0];
    expect(c.image).toBe(KANIKO_STANDIN);
    const [context, ...rest] = c.args as string[];
    expect(context).toMatch(/^--context=http:\/\/127\.0\.0\.1:\d+\/liftoff-ctx\/contexts\/kan00001\.tgz\?/);
    expect(context).toContain('X-Amz-Signature=');
    expect(rest).toEqual([
      '--dockerfile=Dockerfile.liftoff',
      `--destination=${result.image}`,
      '--cache=false',
      `--cache-repo=${registry.host}/team/app`,
      '--snapshot-mode=redo',
      '--compressed-caching=false',
      '--verbosity=debug',
      '--reproducible',
    ]);
    expect(c.volumeMounts).toEqual([{ name: 'liftoff-docker-config', mountPath: '/kaniko/.docker', readOnly: true }]);
    expect(pod.volumes).toEqual([
      {
        name: 'liftoff-docker-config',
        secret: { secretName: 'liftoff-build-kan00001', items: [{ key: '.dockerconfigjson', path: 'config.json' }] },
      },
    ]);
    const secret = kube.created.find(
      (o) => o.kind === 'Secret' && (o.body as any).metadata.name === 'liftoff-build-kan00001',
    );
    expect((secret?.body as any).type).toBe('kubernetes.io/dockerconfigjson');
    expect(secret?.namespace).toBe('builds');
    expect(kube.created.some((o) => o.kind === 'ConfigMap')).toBe(false);
    // Foreground deletion: pods, Job and Secret are all gone when build() returns.
    expect(kube.list('Job', 'builds')).toEqual([]);
    expect(kube.list('Pod', 'builds')).toEqual([]);
    expect(kube.list('Secret', 'builds')).toEqual([]);
    expect(
      kube.requests.some(
        (r) =>
          r.method === 'DELETE' &&
          r.path.includes('wandb-launch-container-build-kan00001') &&
          r.query.propagationPolicy === 'Foreground',
      ),
    ).toBe(true);
  }, 120_000);

  it('a failing executor fails the build with its exit code, and its log is in the run log', async () => {
    const log: string[] = [];
    const err = await builder({ STANDIN_EXIT: '7' })
      .build(request('kan00002', log))
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BuildError);
    expect((err as Error).message).toMatch(/in-cluster kaniko build of .* failed: container kaniko exited with code 7/);
    expect(log.join('')).toContain('ERROR error building image: stand-in exit 7');
    expect(kube.list('Job', 'builds')).toEqual([]);
    expect(kube.list('Secret', 'builds')).toEqual([]);
  }, 120_000);

  it('the deadline (kaniko-config spec.activeDeadlineSeconds) ends a build that runs too long', async () => {
    const log: string[] = [];
    const b = builder({ STANDIN_SLEEP: '120' });
    (b as any).fragment.spec.activeDeadlineSeconds = 3;
    const err = await b.build(request('kan00003', log)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BuildError);
    expect((err as Error).message).toContain('DeadlineExceeded');
    expect(log.join('')).toContain('step 3');
    expect(kube.list('Pod', 'builds')).toEqual([]);
  }, 120_000);

  it('a cancel during the build deletes the Job (after lines already streamed) and the Secret', async () => {
    const log: string[] = [];
    let cancel = false;
    const pending = builder({ STANDIN_SLEEP: '120' }).build(request('kan00004', log, () => cancel));
    await until(() => (log.join('').includes('step 1') ? true : undefined), 60_000);
    expect(kube.list('Job', 'builds')).toHaveLength(1);
    cancel = true;
    await expect(pending).rejects.toBeInstanceOf(BuildCancelledError);
    expect(kube.list('Job', 'builds')).toEqual([]);
    expect(kube.list('Pod', 'builds')).toEqual([]);
    expect(kube.list('Secret', 'builds')).toEqual([]);
    expect(log.join('')).toContain('cancelled: deleting build job builds/wandb-launch-container-build-kan00004');
  }, 120_000);

  it('an image that cannot be pulled is a warning on the run (cleared when the build ends), not a hang', async () => {
    const warnings: Array<string | null> = [];
    let cancel = false;
    const b = builder({}, { 'kaniko-image': '127.0.0.1:9/liftoff-none/kaniko:1', 'kaniko-config': {} });
    const pending = b.build({
      ...request('kan00009', [], () => cancel),
      onWarning: (w: string | null) => warnings.push(w),
    });
    await until(() => (warnings.some((w) => w && /ErrImagePull|ImagePullBackOff/.test(w)) ? true : undefined), 60_000);
    expect(warnings.find((w) => w)).toMatch(
      /^image build: pod wandb-launch-container-build-kan00009-\w+, container kaniko: (ErrImagePull|ImagePullBackOff)/,
    );
    cancel = true;
    await expect(pending).rejects.toBeInstanceOf(BuildCancelledError);
    expect(warnings.at(-1)).toBeNull();
    expect(kube.list('Job', 'builds')).toEqual([]);
  }, 120_000);

  it('skips the build when the content-hash tag is already in the registry', async () => {
    const log: string[] = [];
    const b = builder({});
    const first = await b.build(request('kan00005', log));
    // Put an image under exactly that tag, as a previous real build would have.
    await pushToRegistry(registry, first.image);
    const jobsBefore = kube.created.filter((c) => c.kind === 'Job').length;
    const again: string[] = [];
    const second = await b.build({ ...request('kan00006', again), sourceIdentity: 'sha256:kan00005' });
    expect(second).toEqual({ image: first.image, built: false });
    expect(again.join('')).toContain('already exists');
    expect(kube.created.filter((c) => c.kind === 'Job').length).toBe(jobsBefore);
  }, 120_000);

  it('says so when the default (archived upstream) executor image is used; never pulled here', () => {
    const b = builder({}, { 'kaniko-image': undefined }) as unknown as { notes(): string[]; image: string };
    expect(b.image).toBe('gcr.io/kaniko-project/executor:v1.11.0');
    expect(b.notes()).toEqual([
      "kaniko image gcr.io/kaniko-project/executor:v1.11.0 is W&B's default; Kaniko was archived upstream in 2025 and gets no fixes there: set builder.kaniko-image to a maintained fork (docs/builders.md)",
    ]);
  });

  it('refuses config that cannot work, naming the key', () => {
    // No cluster: refused when the builder is made (at agent start), naming what to set.
    expect(
      () =>
        new KanikoBuilder({
          registry: new OciRegistry(docker, `${registry.host}/team/app`, new RegistryCredentials()),
          credentials: new RegistryCredentials(),
          runner: {
            logger: pino({ level: 'silent' }),
            processEnv: {},
            agentId: 'a',
            docker,
            credentials: new RegistryCredentials(),
            kubernetes: { 'config-file': join(codeDir, 'no-such-kubeconfig') },
            homeDir: tempDir(),
            aws,
          },
          config: { type: 'kaniko', 'build-context-store': 's3://liftoff-ctx/x' },
        }),
    ).toThrow(KubeConfigError);
    expect(() => builder({}, { 'build-context-store': 'gs://liftoff-ctx/x' })).toThrow(
      'gs:// stores need Google Cloud credentials',
    );
    expect(() => builder({}, { 'build-job-name': 'Bad_Name' })).toThrow('builder.build-job-name "Bad_Name"');
    expect(() => builder({}, { 'secret-name': 's' })).toThrow('secret-name and builder.secret-key go together');
    expect(() =>
      builder(
        {},
        { 'kaniko-config': { spec: { template: { spec: { containers: [{ args: ['--destination=x/y'] }] } } } } },
      ),
    ).toThrow('may not set --destination');
    expect(() =>
      builder({}, { 'kaniko-config': { spec: { template: { spec: { containers: [{ image: 'other/kaniko' }] } } } } }),
    ).toThrow('disagree');
  });
  describe('with a gs:// store whose credentials cannot sign', () => {
    let gcp: GcpClientSettings;
    let gcs: FakeGcs;
    beforeAll(async () => {
      const md = await startFakeMetadata();
      gcs = await startFakeGcs({ buckets: ['liftoff-ctx'], acceptToken: (t) => md.tokens.includes(t) });
      // IAM holds no key for the agent's service account: signBlob fails, as without the TokenCreator role.
      const iam = await startFakeIam({ keys: new Map(), acceptToken: () => true });
      gcp = await gcpSettingsFrom({
        ...md.env,
        STORAGE_EMULATOR_HOST: gcs.url,
        CLOUDSDK_API_ENDPOINT_OVERRIDES_IAMCREDENTIALS: iam.url,
      });
      // The operator's key Secret (W&B's secret-name / secret-key), made as kubectl would.
      const res = await fetch(`${kube.url}/api/v1/namespaces/builds/secrets`, {
        method: 'POST',
        headers: { authorization: `Bearer ${kube.token}`, 'content-type': 'application/json' },
        body: JSON.stringify({
          apiVersion: 'v1',
          kind: 'Secret',
          metadata: { name: 'gcp-key' },
          data: { 'key.json': Buffer.from('{"type":"service_account"}').toString('base64') },
        }),
      });
      expect(res.status).toBe(201);
    });

    it('with secret-name/secret-key, kaniko gets the gs:// URI and the key mounted as W&B mounts it', async () => {
      const log: string[] = [];
      const store = {
        'build-context-store': 'gs://liftoff-ctx/ctx',
        'secret-name': 'gcp-key',
        'secret-key': 'key.json',
      };
      const result = await builder({}, store, { gcp }).build(request('kan00007', log));
      expect(result.built).toBe(true);
      expect(gcs.buckets.get('liftoff-ctx')?.has('ctx/kan00007.tgz')).toBe(true);
      expect(log.join('')).toContain(
        'context gs://liftoff-ctx/ctx/kan00007.tgz read with the service_account key at /kaniko/.config/gcloud/config.json',
      );
      const job = kube.created.filter((c) => c.kind === 'Job').at(-1)?.body as any;
      const pod = job.spec.template.spec;
      expect(pod.containers[0].args[0]).toBe('--context=gs://liftoff-ctx/ctx/kan00007.tgz');
      expect(pod.containers[0].env).toContainEqual({
        name: 'GOOGLE_APPLICATION_CREDENTIALS',
        value: '/kaniko/.config/gcloud/config.json',
      });
      expect(pod.containers[0].volumeMounts).toContainEqual({
        name: 'liftoff-cloud-key',
        mountPath: '/kaniko/.config/gcloud',
        readOnly: true,
      });
      expect(pod.volumes).toContainEqual({
        name: 'liftoff-cloud-key',
        secret: { secretName: 'gcp-key', items: [{ key: 'key.json', path: 'config.json' }] },
      });
      // The operator's Secret stays; the agent's push Secret went with the Job.
      expect(kube.list('Secret', 'builds').map((o) => o.metadata.name)).toEqual(['gcp-key']);
    }, 120_000);

    it('without them, the build fails before any Job, naming the fixes', async () => {
      const jobs = kube.created.filter((c) => c.kind === 'Job').length;
      const err = await builder({}, { 'build-context-store': 'gs://liftoff-ctx/ctx' }, { gcp })
        .build(request('kan00008', []))
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(BuildError);
      expect((err as Error).message).toMatch(
        /^The kaniko build pod cannot read gs:\/\/liftoff-ctx\/ctx\/kan00008\.tgz: Signing a URL .*roles\/iam\.serviceAccountTokenCreator.* Or set builder\.secret-name and builder\.secret-key .* or use the buildah builder/,
      );
      expect(kube.created.filter((c) => c.kind === 'Job').length).toBe(jobs);
    }, 120_000);
  });
});
