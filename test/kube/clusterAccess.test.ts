import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import Dockerode from 'dockerode';
import { pino } from 'pino';
import { KubeConfigError, LaunchSpec } from '@liftoff/core';
import { KubernetesRunner } from '../../packages/agent/src/runners/kubernetes/index.js';
import { loadKubeTarget } from '../../packages/agent/src/runners/kubernetes/kubeconfig.js';
import { RegistryCredentials } from '../../packages/agent/src/docker/credentials.js';
import type { JobContext, RunnerDeps } from '../../packages/agent/src/runners/types.js';
import { BUSYBOX, dockerAvailable } from '../helpers/docker.js';
import { selfSignedCert, startFakeKube, type FakeKube } from '../helpers/kube/index.js';
import { cleanupAll, onCleanup, tempDir } from '../helpers/procs.js';
import { createGarRegistry } from '../../packages/agent/src/registries/gar.js';
import { startFakeMetadata } from '../helpers/gcpFake/metadata.js';
import { settingsFrom } from '../gcp/env.js';

/** The runner driven directly (no agent process): which cluster and namespace a job lands in, over TLS. */
describe.skipIf(!dockerAvailable())('kubernetes cluster access', () => {
  let kube: FakeKube;
  const dir = tempDir('liftoff-kube-access-');
  let saDir: string;
  let inCluster: Record<string, string>;

  beforeAll(async () => {
    const tls = await selfSignedCert(join(dir, 'tls'));
    kube = await startFakeKube({ tls, namespaces: ['default', 'ml', 'team-a', 'from-agent', 'from-args'] });
    const files = await kube.writeInClusterFiles(join(dir, 'pod'), 'team-a');
    saDir = join(files.pathPrefix, 'var/run/secrets/kubernetes.io/serviceaccount');
    inCluster = files.env;
  });
  afterAll(async () => {
    await kube?.close();
    await cleanupAll();
  });

  const emptyHome = () => {
    const home = join(dir, `home-${Math.random().toString(36).slice(2)}`);
    mkdirSync(home);
    return home;
  };
  const runner = (over: Partial<RunnerDeps> = {}) =>
    new KubernetesRunner({
      logger: pino({ level: 'silent' }),
      processEnv: inCluster,
      agentId: 'access-test',
      docker: new Dockerode(),
      credentials: new RegistryCredentials(),
      kubernetes: { 'service-account-dir': saDir },
      homeDir: emptyHome(),
      ...over,
    });
  const job = (runId: string, kubernetes: Record<string, unknown> = {}): JobContext => ({
    runId,
    itemId: `item-${runId}`,
    queue: 'q',
    entity: 'e',
    spec: LaunchSpec.parse({
      source: { type: 'image', image: BUSYBOX },
      entry_point: ['echo', `hello from ${runId}`],
      resource_args: { kubernetes },
    }),
    workDir: dir,
    stateDir: dir,
    env: { LIFTOFF_RUN_ID: runId },
    image: BUSYBOX,
    onOutput: (t) => outputs.push(t),
    onNote: () => undefined,
    onRunning: () => undefined,
    onWarning: () => undefined,
    allow: [],
    logger: pino({ level: 'silent' }),
  });
  const outputs: string[] = [];

  it('in a pod: the service account over TLS, and its namespace when nothing else names one', async () => {
    const r = runner();
    const handle = await r.start(job('incl0001'));
    expect(await handle.wait()).toEqual({ state: 'finished', exitCode: 0 });
    expect(outputs).toContain('hello from incl0001\n');
    expect(kube.created.find((c) => c.kind === 'Job')?.namespace).toBe('team-a');
    await r.close();
  });

  it('namespace precedence: metadata.namespace > resource-arg namespace > agent config > context', async () => {
    const r = runner({
      kubernetes: { 'service-account-dir': saDir, namespace: 'from-agent', namespaces: ['from-args', 'ml'] },
    });
    const cases: Array<[string, Record<string, unknown>, string]> = [
      ['nsprec01', {}, 'from-agent'],
      ['nsprec02', { namespace: 'from-args' }, 'from-args'],
      ['nsprec03', { namespace: 'from-args', metadata: { namespace: 'ml' } }, 'ml'],
    ];
    for (const [runId, args, ns] of cases) {
      const handle = await r.start(job(runId, args));
      expect(await handle.wait()).toMatchObject({ state: 'finished' });
      expect(kube.get('Job', ns, `liftoff-${runId}`)?.metadata.namespace).toBe(ns);
    }
    await r.close();
  });

  it('a kubeconfig context is honoured, and a missing one names those that exist', async () => {
    const file = await kube.writeKubeconfig(join(dir, 'cfg'), {
      namespace: 'ml',
      extraContexts: [{ name: 'other', namespace: 'team-a' }],
    });
    expect(loadKubeTarget({ configFile: file, env: {}, homeDir: emptyHome() }).namespace).toBe('ml');
    expect(loadKubeTarget({ configFile: file, context: 'other', env: {}, homeDir: emptyHome() }).namespace).toBe(
      'team-a',
    );
    expect(() => loadKubeTarget({ configFile: file, context: 'nope', env: {}, homeDir: emptyHome() })).toThrow(
      /context "nope" is not in .* \(it has: fake, other\)/,
    );
    // $KUBECONFIG comes before ~/.kube/config and the service account.
    expect(loadKubeTarget({ env: { KUBECONFIG: file, ...inCluster }, homeDir: emptyHome() }).source).toContain(file);
    const r = runner({ kubernetes: { 'config-file': file, context: 'other' } });
    const handle = await r.start(job('ctx00001'));
    await handle.wait();
    expect(kube.get('Job', 'team-a', 'liftoff-ctx00001')).toBeDefined();
    await r.close();
  });

  it("each job's pull secret holds a current login from the registry's provider (ECR tokens expire)", async () => {
    // An image already on the engine under a registry host: the kubelet runs it (IfNotPresent) without pulling.
    const host = '127.0.0.1:5999';
    const image = `${host}/liftoff-ecr-test/jobs:secret1`;
    execFileSync('docker', ['tag', BUSYBOX, image]);
    onCleanup(() => void execFileSync('docker', ['rmi', '-f', image], { stdio: 'ignore' }));
    const credentials = new RegistryCredentials([]);
    let n = 0;
    credentials.setProvider(host, async () => ({ username: 'AWS', password: `ecr-token-${++n}` }));
    const r = runner({ credentials });
    for (const runId of ['ecrpull1', 'ecrpull2']) {
      const handle = await r.start({ ...job(runId), image });
      expect(await handle.wait()).toEqual({ state: 'finished', exitCode: 0 });
    }
    const passwords = ['ecrpull1', 'ecrpull2'].map((runId) => {
      const secret = kube.created.find(
        (c) =>
          c.kind === 'Secret' &&
          (c.body as { metadata: { name: string } }).metadata.name === `liftoff-regcred-${runId}`,
      );
      const data = (secret?.body as { data: Record<string, string> }).data['.dockerconfigjson'] ?? '';
      return (JSON.parse(Buffer.from(data, 'base64').toString()) as { auths: Record<string, { password: string }> })
        .auths[host]?.password;
    });
    expect(passwords).toEqual(['ecr-token-1', 'ecr-token-2']);
    await r.close();
  });

  it("a gcr registry's pull secrets hold the auth client's current token (issue 14)", async () => {
    // Tokens living 60 s are inside the library's 5-minute early-refresh window: every login asks anew.
    const md = await startFakeMetadata({ expiresIn: 60 });
    const gcp = await settingsFrom(md.env);
    onCleanup(() => {
      vi.unstubAllEnvs();
    });
    const host = '127.0.0.1:5998';
    const image = `${host}/liftoff-test-project/jobs/trainer:secret1`;
    execFileSync('docker', ['tag', BUSYBOX, image]);
    onCleanup(() => void execFileSync('docker', ['rmi', '-f', image], { stdio: 'ignore' }));
    const credentials = new RegistryCredentials([]);
    await createGarRegistry(
      { type: 'gcr', uri: `${host}/liftoff-test-project/jobs/trainer` },
      { docker: new Dockerode(), credentials, gcp },
    );
    const r = runner({ credentials });
    for (const runId of ['garpull1', 'garpull2']) {
      const handle = await r.start({ ...job(runId), image });
      expect(await handle.wait()).toEqual({ state: 'finished', exitCode: 0 });
    }
    const logins = ['garpull1', 'garpull2'].map((runId) => {
      const secret = kube.created.find(
        (c) =>
          c.kind === 'Secret' &&
          (c.body as { metadata: { name: string } }).metadata.name === `liftoff-regcred-${runId}`,
      );
      const data = (secret?.body as { data: Record<string, string> }).data['.dockerconfigjson'] ?? '';
      const auth = (
        JSON.parse(Buffer.from(data, 'base64').toString()) as {
          auths: Record<string, { username: string; password: string }>;
        }
      ).auths[host];
      return `${auth?.username}:${auth?.password}`;
    });
    expect(logins).toEqual([`oauth2accesstoken:${md.tokens[0]}`, `oauth2accesstoken:${md.tokens[1]}`]);
    await r.close();
  });

  it('no kubeconfig and not in a cluster: a message that says where it looked', () => {
    const home = emptyHome();
    expect(() => loadKubeTarget({ env: {}, homeDir: home })).toThrow(KubeConfigError);
    expect(() => loadKubeTarget({ env: {}, homeDir: home })).toThrow(
      new RegExp(`no \\$KUBECONFIG, no ${join(home, '.kube', 'config')} and not running in a cluster`),
    );
  });
});
