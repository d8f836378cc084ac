import { BUILDAH, buildahImageAvailable } from '../helpers/buildah.js';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ACR_USERNAME,
  acrRefreshToken,
  registryAvailable,
  startFakeAcr,
  type FakeAcr,
} from '../helpers/azureFake/acr.js';
import {
  ACCOUNT,
  ACCOUNT_KEY,
  adminClient,
  azuriteAvailable,
  startAzurite,
  type Azurite,
} from '../helpers/azureFake/azurite.js';
import { azureAgentEnv, startFakeIdentity, type FakeIdentity } from '../helpers/azureFake/identity.js';
import { pushImage } from '../helpers/docker.js';
import { codeDir } from '../helpers/jobs.js';
import { KANIKO_STANDIN, buildKanikoStandin, untagImagesOf } from '../helpers/kanikoStandin.js';
import { startFakeKube, type FakeKube } from '../helpers/kube/index.js';
import { agentConfig, cleanupAll, cli, startAgent, startServer, tempDir, type TestServer } from '../helpers/procs.js';

const CTX = `https://${ACCOUNT}.blob.core.windows.net/liftoff-ctx`;

/**
 * The build pod of the tests: on the node's network (the fakes are on loopback), trusting Azurite's test CA from a
 * ConfigMap the cluster admin made (as one would for a private CA), with `env` added to the build container.
 */
const podFragment = (env: Record<string, string>) => `  kaniko-config:
    spec:
      template:
        spec:
          hostNetwork: true
          terminationGracePeriodSeconds: 1
          volumes:
          - { name: test-ca, configMap: { name: azurite-ca } }
          containers:
          - imagePullPolicy: Never
            volumeMounts:
            - { name: test-ca, mountPath: /etc/test-ca, readOnly: true }
            env:
${Object.entries(env)
  .map(([k, v]) => `            - { name: ${k}, value: "${v}" }`)
  .join('\n')}
`;

/**
 * In-cluster builds with `environment: azure` (issue 15) through real server and agent processes: the agent's
 * identity is a managed identity of the fake endpoint, the build-context store is a container in Azurite over HTTPS,
 * "ACR" is a real Distribution registry in token-auth mode behind the fake ACR token service, the cluster is the
 * test API server. buildah builds for real from a base image in that ACR, reading the context by a user-delegation
 * SAS, and pushes with the exchanged refresh token; a kubernetes run then runs the image. kaniko (its stand-in
 * executor) reads the blob URI itself with the account key of W&B's Secret, as kaniko's Azure reader requires.
 */
describe.skipIf(
  !buildahImageAvailable('the Azure in-cluster build suite') || !azuriteAvailable() || !registryAvailable(),
)('in-cluster builds on Azure: ACR and an Azure Blob context', () => {
  let server: TestServer;
  let id: FakeIdentity;
  let acr: FakeAcr;
  let azurite: Azurite;
  let kube: FakeKube;
  let kubeconfig: string;
  let agentEnv: Record<string, string>;
  let code: string;

  const create = async (path: string, body: unknown) => {
    const res = await fetch(`${kube.url}${path}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${kube.token}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    expect(res.status, await res.clone().text()).toBe(201);
  };
  const buildJobs = () =>
    kube.created.filter((c) => c.kind === 'Job' && (c.body as any).metadata.labels['liftoff.dev/role'] === 'build');
  const config = (builder: string) => `entity: default
max_jobs: -1
environment:
  type: azure
registry:
  type: acr
  uri: ${acr.host}/team/trainer
builder:
${builder}kubernetes:
  config-file: ${kubeconfig}
`;

  beforeAll(async () => {
    id = await startFakeIdentity();
    [acr, azurite, kube] = await Promise.all([
      startFakeAcr({ acceptAad: (t) => id.issued(t, 'https://containerregistry.azure.net') }),
      startAzurite(),
      startFakeKube({ namespaces: ['default'] }),
    ]);
    kubeconfig = await kube.writeKubeconfig(tempDir('liftoff-azic-kube-'));
    await (await adminClient(azurite)).createContainer('liftoff-ctx');
    await create('/api/v1/namespaces/default/configmaps', {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'azurite-ca' },
      data: { 'ca.crt': azurite.ca },
    });
    // W&B's Secret for kaniko on Azure (azure-storage-access-key / password), here in the build namespace.
    await create('/api/v1/namespaces/default/secrets', {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'azure-storage-access-key' },
      data: { password: Buffer.from(ACCOUNT_KEY).toString('base64') },
    });
    // The base image in ACR, pushed with a refresh-token login as `az acr login` gives one.
    untagImagesOf(acr.host);
    const base = `${acr.host}/base/busybox:1`;
    await pushImage(base, {
      username: ACR_USERNAME,
      password: await acrRefreshToken(acr, id),
      serveraddress: acr.host,
    });
    code = codeDir({
      'message.txt': 'built on azure\n',
      'Dockerfile.liftoff': `FROM ${base}\nCOPY message.txt /message.txt\nRUN echo built-by-buildah > /built.txt\n`,
    });
    agentEnv = azureAgentEnv(id, azurite);
    server = await startServer();
    for (const name of ['acr-buildah', 'acr-kaniko']) {
      await server.client.createQueue('default', { name, resource: 'kubernetes' });
    }
  }, 180_000);
  afterAll(async () => {
    await kube?.close();
    await cleanupAll();
  });

  it('buildah: context by user-delegation SAS, built FROM ACR, pushed to ACR, and the kubernetes run prints it', async () => {
    const builder = `  type: buildah
  buildah-image: ${BUILDAH}
  build-context-store: ${CTX}/buildah/
${podFragment({ CURL_CA_BUNDLE: '/etc/test-ca/ca.crt' })}`;
    const agent = await startAgent(server, {
      queues: ['acr-buildah'],
      name: 'azic-buildah',
      config: agentConfig(tempDir(), config(builder)),
      env: agentEnv,
    });
    const r = await cli(
      ['launch', '-q', 'acr-buildah', '--code', code, '-E', 'cat /message.txt /built.txt', '--wait'],
      server.env,
    );
    expect(r.code, r.output).toBe(0);
    const runId = /build context uploaded to \S+\/buildah\/(\w+)\.tgz/.exec(r.output)?.[1];
    expect(runId).toBeDefined();
    expect(r.output).toMatch(new RegExp(`STEP 1/3: FROM ${acr.host.replace(/\./g, '\\.')}/base/busybox:1`));
    expect(r.output).toContain('built on azure\nbuilt-by-buildah\n');
    // The pod got a SAS URL of the Azurite account (never a key), and the context blob is where the agent said.
    const job = buildJobs().at(-1)?.body as any;
    const env = job.spec.template.spec.containers[0].env as Array<{ name: string; value?: string }>;
    const url = env.find((e) => e.name === 'LIFTOFF_CONTEXT_URL')?.value ?? '';
    expect(url).toMatch(new RegExp(`^${azurite.origin}/${ACCOUNT}/liftoff-ctx/buildah/${runId}\\.tgz\\?.*sig=`));
    expect(new URL(url).searchParams.get('skoid')).toBeTruthy(); // user delegation, not an account-key SAS
    expect(env.map((e) => e.name)).not.toContain('AZURE_STORAGE_ACCESS_KEY');
    const blobs: string[] = [];
    for await (const b of (await adminClient(azurite)).getContainerClient('liftoff-ctx').listBlobsFlat()) {
      blobs.push(b.name);
    }
    expect(blobs).toContain(`buildah/${runId}.tgz`);
    expect(kube.list('Job').filter((j) => j.metadata.labels['liftoff.dev/role'] === 'build')).toEqual([]);
    await agent.stop();
  }, 300_000);

  it('kaniko: reads the blob URI with the account key from the Secret (no SAS), and pushes with the ACR login', async () => {
    buildKanikoStandin();
    const builder = (extra: string) => `  type: kaniko
  kaniko-image: ${KANIKO_STANDIN}
  build-context-store: ${CTX}/kaniko/
${extra}${podFragment({ SSL_CERT_FILE: '/etc/test-ca/ca.crt', STANDIN_BLOB_ENDPOINT: azurite.origin, STANDIN_EXIT: '9' })}`;
    // Without W&B's key Secret the agent refuses to start, naming both ways out.
    const refused = await cli(
      // prettier-ignore
      ['launch-agent', '--name', 'azic-nokey', '--data-dir', join(tempDir(), 'a'), '-q', 'acr-kaniko',
          '-c', agentConfig(tempDir(), config(builder('')))],
      { ...server.env, ...agentEnv },
    );
    expect(refused.code).toBe(2);
    expect(refused.output).toContain(
      'liftoff: error: builder type kaniko with an Azure Blob build-context-store needs builder.secret-name and builder.secret-key',
    );
    expect(refused.output).toContain('or use the buildah builder');

    const agent = await startAgent(server, {
      queues: ['acr-kaniko'],
      name: 'azic-kaniko',
      config: agentConfig(
        tempDir(),
        config(builder('  secret-name: azure-storage-access-key\n  secret-key: password\n')),
      ),
      env: agentEnv,
    });
    // Other code than buildah's: the same content tag would be found in ACR and the build skipped.
    const own = codeDir({ 'Dockerfile.liftoff': 'FROM liftoff-test/python:3\nCOPY . /app\n' });
    const r = await cli(['launch', '-q', 'acr-kaniko', '--code', own, '-E', 'true', '--wait'], server.env);
    // The stand-in exits 9 after its checks (it cannot push): the run fails at stage build with its log.
    expect(r.code).not.toBe(0);
    const runId = /build context uploaded to \S+\/kaniko\/(\w+)\.tgz/.exec(r.output)?.[1] ?? '';
    const blob = `${CTX}/kaniko/${runId}.tgz`;
    expect(r.output).toContain(`push login for ${acr.host}: user ${ACR_USERNAME}`);
    expect(r.output).toContain(`reading Azure blob ${blob} with the storage account key`);
    expect(r.output).toMatch(/context: \d+ bytes, \d+ entries; Dockerfile\.liftoff begins FROM /);
    expect(r.output).toContain('ERROR error building image: stand-in exit 9');
    const job = buildJobs().at(-1)?.body as any;
    const container = job.spec.template.spec.containers[0];
    expect(container.args[0]).toBe(`--context=${blob}`);
    expect(container.env).toContainEqual({
      name: 'AZURE_STORAGE_ACCESS_KEY',
      valueFrom: { secretKeyRef: { name: 'azure-storage-access-key', key: 'password' } },
    });
    const { runs } = await server.client.listRuns('default', { queue: 'acr-kaniko' });
    expect(runs[0]).toMatchObject({ status: 'failed', error_stage: 'build' });
    // The operator's Secret stays; the agent's push Secret went with the Job.
    expect(kube.list('Secret', 'default').map((o) => o.metadata.name)).toEqual(['azure-storage-access-key']);
    await agent.stop();
  }, 300_000);
});
