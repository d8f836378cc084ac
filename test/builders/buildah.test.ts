import { BUILDAH, buildahImageAvailable } from '../helpers/buildah.js';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import Dockerode from 'dockerode';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { LaunchSpec } from '@liftoff/core';
import { BuildahBuilder } from '../../packages/agent/src/builders/inCluster/buildah.js';
import { RegistryCredentials } from '../../packages/agent/src/docker/credentials.js';
import { awsClientConfig } from '../../packages/agent/src/environments/aws/settings.js';
import { OciRegistry } from '../../packages/agent/src/registries/oci.js';
import { KubernetesRunner } from '../../packages/agent/src/runners/kubernetes/index.js';
import type { RunnerDeps } from '../../packages/agent/src/runners/types.js';
import { settingsFrom as awsSettingsFrom } from '../aws/env.js';
import { settingsFrom as gcpSettingsFrom } from '../gcp/env.js';
import { BUSYBOX, pushToRegistry, startRegistry, type TestRegistry } from '../helpers/docker.js';
import { startFakeGcs, type FakeGcs } from '../helpers/gcpFake/gcs.js';
import { startFakeIam } from '../helpers/gcpFake/iam.js';
import { startFakeMetadata, type FakeMetadata } from '../helpers/gcpFake/metadata.js';
import { untagImagesOf } from '../helpers/kanikoStandin.js';
import { startFakeKube, type FakeKube } from '../helpers/kube/index.js';
import { motoAvailable, motoEnv, startMoto, type Moto } from '../helpers/moto.js';
import { cleanupAll, tempDir } from '../helpers/procs.js';

/**
 * The buildah builder for real: the test kubelet runs the Debian-built buildah image with the capabilities the Job
 * asks for; it downloads the context, builds FROM an image in a local registry that needs credentials, pushes there,
 * and a kubernetes run then runs the image and prints what the build put in it. The context comes from moto's S3 by a
 * presigned URL, then (issue 14's last piece) from GCS by a short-lived token when the credentials cannot sign.
 */
describe.skipIf(!buildahImageAvailable('the buildah builder suite'))('the buildah builder', () => {
  let kube: FakeKube;
  let registry: TestRegistry;
  let kubeconfig: string;
  const docker = new Dockerode();
  const codeDir = tempDir('liftoff-buildah-code-');

  beforeAll(async () => {
    kube = await startFakeKube({ namespaces: ['default', 'builds'] });
    kubeconfig = await kube.writeKubeconfig(tempDir('liftoff-buildah-kube-'), { namespace: 'builds' });
    registry = await startRegistry();
    untagImagesOf(registry.host);
    const base = `${registry.host}/base/busybox:1`;
    await pushToRegistry(registry, base);
    writeFileSync(join(codeDir, 'message.txt'), 'hello from the build context\n');
    writeFileSync(
      join(codeDir, 'Dockerfile.liftoff'),
      `FROM ${base}\nCOPY message.txt /message.txt\nRUN echo built-by-buildah > /built.txt\n`,
    );
  }, 120_000);
  afterAll(async () => {
    vi.unstubAllEnvs();
    await kube?.close();
    await cleanupAll();
  });

  const deps = (credentials: RegistryCredentials, clouds: Partial<RunnerDeps>): RunnerDeps => ({
    logger: pino({ level: 'silent' }),
    processEnv: { KUBECONFIG: kubeconfig },
    agentId: 'agent-b1',
    docker,
    credentials,
    kubernetes: {},
    homeDir: tempDir('liftoff-buildah-home-'),
    ...clouds,
  });
  const builder = (store: string, clouds: Partial<RunnerDeps>) => {
    const credentials = new RegistryCredentials();
    credentials.set(registry.host, registry.username, registry.password);
    const runner = deps(credentials, clouds);
    const b = new BuildahBuilder({
      registry: new OciRegistry(docker, `${registry.host}/team/app`, credentials),
      credentials,
      runner,
      config: {
        type: 'buildah',
        'build-context-store': store,
        'buildah-image': BUILDAH,
        // The pod reaches the loopback servers (S3/GCS fakes, the registry) through the node's network.
        'kaniko-config': {
          spec: { template: { spec: { hostNetwork: true, containers: [{ imagePullPolicy: 'Never' }] } } },
        },
      },
    });
    return { b, credentials, runner };
  };
  const request = (runId: string, log: string[]) => ({
    runId,
    spec: LaunchSpec.parse({ source: { type: 'code', archive_id: 'a' }, entry_point: ['cat', '/message.txt'] }),
    codeDir,
    sourceIdentity: `sha256:${runId}`,
    baseImage: BUSYBOX,
    onLog: (t: string) => log.push(t),
    onNote: (l: string) => log.push(`[liftoff] ${l}\n`),
  });

  /** Runs `image` as a kubernetes run (pulled with the registry login) and returns what it printed. */
  const runImage = async (runId: string, image: string, credentials: RegistryCredentials, runner: RunnerDeps) => {
    const out: string[] = [];
    const k8s = new KubernetesRunner({ ...runner, credentials });
    const handle = await k8s.start({
      runId,
      itemId: `item-${runId}`,
      queue: 'q',
      entity: 'e',
      spec: LaunchSpec.parse({
        source: { type: 'image', image },
        entry_point: ['cat', '/message.txt', '/built.txt'],
      }),
      workDir: codeDir,
      stateDir: codeDir,
      env: { LIFTOFF_RUN_ID: runId },
      image,
      onOutput: (t) => out.push(t),
      onNote: () => undefined,
      onRunning: () => undefined,
      onWarning: () => undefined,
      allow: [],
      logger: runner.logger,
    });
    const outcome = await handle.wait();
    await k8s.close();
    return { outcome, output: out.join('') };
  };

  describe.skipIf(!motoAvailable())('with an s3:// store (presigned URL)', () => {
    let moto: Moto;
    beforeAll(async () => {
      moto = await startMoto();
      const aws = await awsSettingsFrom(motoEnv(moto));
      const s3 = new S3Client({ ...awsClientConfig(aws, 's3'), forcePathStyle: true });
      await s3.send(new CreateBucketCommand({ Bucket: 'liftoff-ctx' }));
      s3.destroy();
    }, 60_000);

    it('builds FROM the local registry, pushes with the login, and a kubernetes run prints what it built', async () => {
      const aws = await awsSettingsFrom(motoEnv(moto));
      const { b, credentials, runner } = builder('s3://liftoff-ctx/ctx', { aws });
      const log: string[] = [];
      const result = await b.build(request('bah00001', log));
      const text = log.join('');
      expect(result.built).toBe(true);
      expect(text).toContain(
        '[liftoff] the buildah build pod runs as root with capabilities SYS_ADMIN, SETUID, SETGID, SYS_CHROOT',
      );
      expect(text).toContain('fetching the build context');
      // buildah's own output, streamed from the pod.
      expect(text).toMatch(/STEP 1\/3: FROM 127\.0\.0\.1:\d+\/base\/busybox:1/);
      expect(text).toMatch(/Writing manifest to image destination/);
      const job = kube.created.find((c) => c.kind === 'Job')?.body as any;
      const c = job.spec.template.spec.containers[0];
      expect(c.securityContext).toEqual({
        runAsUser: 0,
        capabilities: { add: ['SYS_ADMIN', 'SETUID', 'SETGID', 'SYS_CHROOT'] },
      });
      expect(c.command.slice(0, 2)).toEqual(['sh', '-c']);
      const env = Object.fromEntries((c.env as Array<{ name: string; value: string }>).map((e) => [e.name, e.value]));
      expect(env.LIFTOFF_CONTEXT_URL).toMatch(
        /^http:\/\/127\.0\.0\.1:\d+\/liftoff-ctx\/ctx\/bah00001\.tgz\?.*X-Amz-Signature=/,
      );
      expect(env.LIFTOFF_DESTINATION).toBe(result.image);
      expect(env.REGISTRY_AUTH_FILE).toBe('/var/run/liftoff/registry/auth.json');
      expect(kube.list('Job', 'builds')).toEqual([]);
      expect(kube.list('Secret', 'builds')).toEqual([]);

      const run = await runImage('bah00002', result.image, credentials, runner);
      expect(run.outcome.state).toBe('finished');
      expect(run.output).toBe('hello from the build context\nbuilt-by-buildah\n');
    }, 300_000);
  });

  describe('with a gs:// store whose credentials cannot sign (a short-lived token Secret)', () => {
    let md: FakeMetadata;
    let gcs: FakeGcs;
    beforeAll(async () => {
      md = await startFakeMetadata();
      gcs = await startFakeGcs({ buckets: ['liftoff-ctx'], acceptToken: (t) => md.tokens.includes(t) });
    });

    it('the pod reads gs:// through the JSON API with the agent token in a Secret deleted with the Job', async () => {
      // IAM holds no key for the agent's service account: signBlob fails, as without the TokenCreator role.
      const iam = await startFakeIam({ keys: new Map(), acceptToken: () => true });
      const gcp = await gcpSettingsFrom({
        ...md.env,
        STORAGE_EMULATOR_HOST: gcs.url,
        CLOUDSDK_API_ENDPOINT_OVERRIDES_IAMCREDENTIALS: iam.url,
      });
      const { b, credentials, runner } = builder('gs://liftoff-ctx/ctx/', { gcp });
      const log: string[] = [];
      const result = await b.build(request('bah00003', log));
      expect(result.built).toBe(true);
      const text = log.join('');
      expect(text).toMatch(
        /\[liftoff\] no signed URL for gs:\/\/liftoff-ctx\/ctx\/bah00003\.tgz \(Signing a URL .* failed .*\): the build pod reads it with a short-lived access token of the agent in Secret builds\/liftoff-build-ctx-bah00003, deleted with the build Job/,
      );
      const job = kube.created.filter((c) => c.kind === 'Job').at(-1)?.body as any;
      const pod = job.spec.template.spec;
      const env = Object.fromEntries(
        (pod.containers[0].env as Array<{ name: string; value: string }>).map((e) => [e.name, e.value]),
      );
      expect(env.LIFTOFF_CONTEXT_URL).toBe(`${gcs.url}/storage/v1/b/liftoff-ctx/o/ctx%2Fbah00003.tgz?alt=media`);
      expect(pod.volumes).toContainEqual({
        name: 'liftoff-context-token',
        secret: { secretName: 'liftoff-build-ctx-bah00003' },
      });
      const secret = kube.created.find(
        (o) => o.kind === 'Secret' && (o.body as any).metadata.name === 'liftoff-build-ctx-bah00003',
      )?.body as any;
      const header = Buffer.from(secret.data.header, 'base64').toString();
      expect(md.tokens).toContain(header.replace('Authorization: Bearer ', ''));
      const builds = (kind: string) =>
        kube.list(kind, 'builds').filter((o) => o.metadata.labels?.['liftoff.dev/role'] === 'build');
      expect(builds('Secret')).toEqual([]);
      expect(builds('Job')).toEqual([]);
      expect(builds('Pod')).toEqual([]);

      const run = await runImage('bah00004', result.image, credentials, runner);
      expect(run.output).toBe('hello from the build context\nbuilt-by-buildah\n');
    }, 300_000);
  });
});
