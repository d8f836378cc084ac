import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BatchV1Api, CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { Job as JobModel } from 'kubernetes-models/batch/v1/Job';
import { Secret as SecretModel } from 'kubernetes-models/v1/Secret';
import { isTerminal, type Item, type PushBody } from '@liftoff/core';
import { BUSYBOX, dockerAvailable, startRegistry } from '../helpers/docker.js';
import { startFakeKube, type FakeKube } from '../helpers/kube/index.js';
import {
  agentConfig,
  cleanupAll,
  liftoff,
  sleep,
  startAgent,
  startServer,
  tempDir,
  type TestAgent,
  type TestServer,
} from '../helpers/procs.js';

/** Polls `fn` until it returns something truthy. */
async function until<T>(fn: () => Promise<T | undefined | false | null>, what: string, ms = 60_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

const RUN = 'liftoff.dev/run-id';
/** Objects of the test server (plain JSON) carrying a run's label. */
const labelled = (objs: any[], runId: string): any[] => objs.filter((o) => o?.metadata?.labels?.[RUN] === runId);

describe.skipIf(!dockerAvailable())('kubernetes runner against the test API server', () => {
  let kube: FakeKube;
  let server: TestServer;
  let agent: TestAgent;
  let configPath: string;
  let kubeconfig: string;
  const agentName = 'k8s-agent';
  const dir = tempDir('liftoff-k8s-');

  const push = async (queue: string, body: Omit<PushBody, 'template_variables'>): Promise<Item> =>
    server.client.push('default', queue, body);
  const busybox = (script: string, kubernetes: Record<string, unknown> = {}): Omit<PushBody, 'template_variables'> => ({
    spec: {
      source: { type: 'image', image: BUSYBOX },
      entry_point: ['sh', '-c', script],
      resource_args: { kubernetes },
    },
  });
  const runOf = (itemId: string, not: string[] = []) =>
    until(async () => {
      const it = await server.client.getItem(itemId);
      return it.run_id && !not.includes(it.run_id) ? it.run_id : undefined;
    }, `a run of item ${itemId}`);
  const endOf = (runId: string, ms = 90_000) =>
    until(
      async () => {
        const r = await server.client.getRun(runId);
        return isTerminal(r.status) ? r : undefined;
      },
      `run ${runId} to end`,
      ms,
    );
  const logsOf = async (runId: string): Promise<string> => {
    let text = '';
    let offset = 0;
    for (;;) {
      const page = await server.client.readLogs(runId, offset);
      text += page.data;
      if (page.next_offset === offset) return text;
      offset = page.next_offset;
    }
  };
  const podsOf = (runId: string) => labelled(kube.list('Pod'), runId);
  const jobsOf = (runId: string) => labelled(kube.list('Job'), runId);

  beforeAll(async () => {
    kube = await startFakeKube({
      namespaces: ['default', 'ml'],
      // The operator's CRD, installed as a cluster admin would before any run of it.
      customResources: [{ group: 'training.example.com', version: 'v1', plural: 'trainjobs', kind: 'TrainJob' }],
    });
    kubeconfig = await kube.writeKubeconfig(dir);
    server = await startServer();
    await server.client.createQueue('default', { name: 'k8s', resource: 'kubernetes' });
    await server.client.createQueue('default', {
      name: 'k8s-preempt',
      resource: 'kubernetes',
      preemption_retries: 2,
      preemption_backoff_seconds: 0,
    });
    await server.client.createQueue('default', {
      name: 'k8s-timeout',
      resource: 'kubernetes',
      start_timeout_seconds: 3,
    });
    // A queue whose default manifest has a typo: a real cluster drops the field and says so in a Warning header.
    await server.client.createQueue('default', {
      name: 'k8s-typo',
      resource: 'kubernetes',
      resource_args: { kubernetes: { spec: { template: { spec: { containers: [{ imagePullPolicyy: 'Never' }] } } } } },
    });
    configPath = agentConfig(
      dir,
      [`stopped_run_timeout: 2`, `kubernetes:`, `  config-file: ${kubeconfig}`, `  namespaces: [ml]`, ''].join('\n'),
    );
    agent = await startAgent(server, {
      name: agentName,
      queues: ['k8s', 'k8s-preempt', 'k8s-timeout', 'k8s-typo'],
      maxJobs: 6,
      config: configPath,
    });
  });

  afterAll(async () => {
    await cleanupAll();
    await kube?.close();
  });

  it('runs a Job through the client library: output arrives while it runs, it ends finished', async () => {
    const item = await push('k8s', busybox('echo line-one; sleep 3; echo line-two'));
    const runId = await runOf(item.id);
    await until(async () => {
      const [run, logs] = await Promise.all([server.client.getRun(runId), logsOf(runId)]);
      // Whole lines: the "[liftoff] starting: ..." note names both.
      return run.status === 'running' && /^line-one$/m.test(logs) && !/^line-two$/m.test(logs);
    }, 'line-one while the run is running');
    const run = await endOf(runId);
    expect(run.status).toBe('finished');
    expect(run.exit_code).toBe(0);
    const logs = await logsOf(runId);
    expect(logs).toMatch(/line-one\nline-two\n/);
    expect(logs).toContain(`kubernetes job default/liftoff-${runId} created`);
    const job = kube.get('Job', 'default', `liftoff-${runId}`);
    expect(job?.spec.template.spec.containers[0]).toMatchObject({
      image: BUSYBOX,
      command: ['sh', '-c', 'echo line-one; sleep 3; echo line-two'],
    });
    expect(job?.metadata.labels['liftoff.dev/agent']).toBe(agentName);
  });

  it('a failing container ends the run failed with its exit code', async () => {
    const item = await push('k8s', busybox('echo about to fail; exit 3'));
    const run = await endOf(await runOf(item.id));
    expect(run.status).toBe('failed');
    expect(run.exit_code).toBe(3);
    expect(run.error_message).toMatch(/container main exited with code 3 \(Error\); Job failed: BackoffLimitExceeded/);
    expect(await logsOf(run.id)).toContain('about to fail\n');
  });

  it('resource args reach the Job: resources, nodeSelector, env and a ConfigMap volume', async () => {
    const kc = new KubeConfig();
    kc.loadFromFile(kubeconfig);
    await kc.makeApiClient(CoreV1Api).createNamespacedConfigMap({
      namespace: 'ml',
      body: { metadata: { name: 'train-config' }, data: { greeting: 'hello from a configmap' } },
    });
    const item = await push(
      'k8s',
      busybox('cat /etc/cfg/greeting; echo; echo "env=$FROM_ARGS"', {
        metadata: { namespace: 'ml' },
        spec: {
          template: {
            spec: {
              nodeSelector: { 'kubernetes.io/os': 'linux' },
              volumes: [{ name: 'cfg', configMap: { name: 'train-config' } }],
              containers: [
                {
                  resources: { limits: { cpu: '500m', memory: '256Mi' }, requests: { cpu: '100m' } },
                  env: [{ name: 'FROM_ARGS', value: 'yes' }],
                  volumeMounts: [{ name: 'cfg', mountPath: '/etc/cfg' }],
                },
              ],
            },
          },
        },
      }),
    );
    const runId = await runOf(item.id);
    const run = await endOf(runId);
    expect(run.status).toBe('finished');
    const logs = await logsOf(runId);
    expect(logs).toContain('hello from a configmap\n');
    expect(logs).toContain('env=yes\n');
    const created = kube.created.find(
      (c) => c.kind === 'Job' && (c.body as { metadata: { name: string } }).metadata.name === `liftoff-${runId}`,
    );
    expect(created?.namespace).toBe('ml');
    const pod = (created?.body as { spec: { template: { spec: Record<string, any> } } }).spec.template.spec;
    expect(pod.nodeSelector).toEqual({ 'kubernetes.io/os': 'linux' });
    // The job's volume first, then the run's outputs dir and helper (docs/outputs.md).
    expect(pod.volumes.map((v: { name: string }) => v.name)).toEqual([
      'cfg',
      'liftoff-outputs',
      'liftoff-outputs-helper',
    ]);
    expect(pod.volumes[0]).toEqual({ name: 'cfg', configMap: { name: 'train-config' } });
    expect(pod.containers[0].resources.limits).toEqual({ cpu: '500m', memory: '256Mi' });
    expect(pod.containers[0].env).toContainEqual({ name: 'FROM_ARGS', value: 'yes' });
  });

  it('refuses hostPath volumes and privileged containers before creating anything', async () => {
    const before = kube.created.length;
    const hostPath = await push(
      'k8s',
      busybox('true', { spec: { template: { spec: { volumes: [{ name: 'h', hostPath: { path: '/' } }] } } } }),
    );
    const privileged = await push(
      'k8s',
      busybox('true', { spec: { template: { spec: { containers: [{ securityContext: { privileged: true } }] } } } }),
    );
    const a = await endOf(await runOf(hostPath.id));
    const b = await endOf(await runOf(privileged.id));
    expect(a.status).toBe('failed');
    expect(a.error_message).toMatch(/hostPath \(spec.template.spec.volumes\[0\].hostPath\).*does not allow/);
    expect(b.status).toBe('failed');
    expect(b.error_message).toMatch(/privileged .*--allow privileged/);
    const ours = kube.created
      .slice(before)
      .filter((c) => [a.id, b.id].includes((c.body as any)?.metadata?.labels?.[RUN] ?? ''));
    expect(ours).toEqual([]);
  });

  it('cancel deletes the Job and its pods; the run is stopped once they are gone', async () => {
    const item = await push('k8s', busybox('echo started; sleep 300'));
    const runId = await runOf(item.id);
    await until(async () => (await logsOf(runId)).includes('started\n'), 'the job to print');
    expect(podsOf(runId)).toHaveLength(1);
    await server.client.cancelRun(runId);
    const run = await endOf(runId);
    expect(run.status).toBe('stopped');
    // Stopped is reported only after the pods and the Job are gone.
    expect(podsOf(runId)).toEqual([]);
    expect(jobsOf(runId)).toEqual([]);
    const deletes = kube.requests.filter((r) => r.method === 'DELETE' && r.path.endsWith(`/jobs/liftoff-${runId}`));
    expect(deletes.length).toBeGreaterThan(0);
  });

  it('the watches survive 410 Gone and dropped connections without missing the completion', async () => {
    const item = await push('k8s', busybox('echo waiting; sleep 4; echo done'));
    const runId = await runOf(item.id);
    await until(async () => (await server.client.getRun(runId)).status === 'running', 'running');
    // The Job completes while no watch is open; the history the watches would resume from is gone by then.
    kube.refuseWatches(true);
    kube.dropWatches();
    await until(async () => jobsOf(runId)[0]?.status?.succeeded === 1, 'the Job to complete', 30_000);
    kube.compactHistory();
    kube.refuseWatches(false);
    const run = await endOf(runId);
    expect(run.status).toBe('finished');
    expect(await logsOf(runId)).toMatch(/waiting\ndone\n/);
    // The resumed watches asked for their last resourceVersion and were told it had expired.
    expect(kube.expiredWatches()).toBeGreaterThan(0);
  });

  it('an evicted pod is reported preempted and the item requeued up to the queue count', async () => {
    const item = await push('k8s-preempt', busybox('echo attempt; sleep 300'));
    const seen: string[] = [];
    for (let attempt = 1; attempt <= 3; attempt++) {
      const runId = await runOf(item.id, seen);
      seen.push(runId);
      await until(async () => (await logsOf(runId)).includes('attempt\n'), `attempt ${attempt} to run`);
      const pod = podsOf(runId)[0];
      await kube.evictPod('default', pod.metadata.name, { gracePeriodSeconds: 1 });
      const run = await endOf(runId);
      expect(run.status).toBe('preempted');
      expect(run.error_message).toMatch(/EvictionByEvictionAPI/);
    }
    const final = await until(async () => {
      const it = await server.client.getItem(item.id);
      return isTerminal(it.state) ? it : undefined;
    }, 'the item to end');
    expect(final.state).toBe('failed');
    expect(final.preemptions).toBe(3);
    expect(new Set(seen).size).toBe(3);
  });

  it('a pod that never schedules fails after the start timeout with the unschedulable reason', async () => {
    const item = await push(
      'k8s-timeout',
      busybox('echo never', { spec: { template: { spec: { nodeSelector: { accelerator: 'tpu-v9' } } } } }),
    );
    const runId = await runOf(item.id);
    const warned = await until(async () => {
      const r = await server.client.getRun(runId);
      return r.warning ? r : undefined;
    }, 'the unschedulable warning');
    expect(warned.status).toBe('starting');
    expect(warned.warning).toMatch(/unschedulable: 0\/1 nodes are available/);
    const run = await endOf(runId);
    expect(run.status).toBe('failed');
    expect(run.error_message).toMatch(/start timeout of 3 s: pod \S+ is unschedulable: 0\/1 nodes are available/);
    expect(podsOf(runId)).toEqual([]);
  });

  it('follows logs across a container restart in the same pod', async () => {
    const item = await push(
      'k8s',
      busybox(
        'if [ -f /scratch/once ]; then echo second-instance; else touch /scratch/once; echo first-instance; exit 7; fi',
        {
          spec: {
            backoffLimit: 3,
            template: {
              spec: {
                restartPolicy: 'OnFailure',
                volumes: [{ name: 'scratch', emptyDir: {} }],
                containers: [{ volumeMounts: [{ name: 'scratch', mountPath: '/scratch' }] }],
              },
            },
          },
        },
      ),
    );
    const run = await endOf(await runOf(item.id));
    expect(run.status).toBe('finished');
    expect(await logsOf(run.id)).toMatch(/first-instance\n(.*\n)*second-instance\n/);
  });

  it('re-opens a dropped log stream without repeating or losing lines', async () => {
    const item = await push('k8s', busybox('echo alpha; sleep 2; echo bravo; sleep 2; echo charlie'));
    const runId = await runOf(item.id);
    await until(async () => /^alpha$/m.test(await logsOf(runId)), 'the first line');
    expect(kube.dropLogStreams()).toBeGreaterThan(0);
    const run = await endOf(runId);
    expect(run.status).toBe('finished');
    const output = (await logsOf(runId)).split('\n').filter((l) => !l.startsWith('[liftoff]'));
    expect(output.filter(Boolean)).toEqual(['alpha', 'bravo', 'charlie']);
    // The follower came back after the cut, from where it was.
    const reads = kube.requests.filter((r) => r.path.endsWith('/log') && r.path.includes(`liftoff-${runId}`));
    expect(reads.some((r) => r.query.sinceTime)).toBe(true);
  });

  it('creates a custom resource through the objects API and maps its status', async () => {
    const item = await push(
      'k8s',
      busybox('echo from-operator-pod', {
        apiVersion: 'training.example.com/v1',
        kind: 'TrainJob',
        spec: { replicas: 1, template: { spec: { containers: [{ name: 'trainer' }] } } },
      }),
    );
    const runId = await runOf(item.id);
    const cr = await until(async () => labelled(kube.list('TrainJob'), runId)[0], 'the custom resource');
    expect(cr.apiVersion).toBe('training.example.com/v1');
    const template = cr.spec.template;
    expect(template.spec.containers[0]).toMatchObject({ name: 'trainer', image: BUSYBOX });
    // Act as its operator: run the template as a pod, then report phases.
    kube.setCustomStatus('training.example.com', 'v1', 'trainjobs', 'default', cr.metadata.name, {
      state: { phase: 'Pending' },
    });
    await kube.createPod('default', {
      metadata: { name: `${cr.metadata.name}-worker-0`, labels: template.metadata.labels },
      spec: { ...template.spec, restartPolicy: 'Never' },
    });
    await until(async () => (await logsOf(runId)).includes('from-operator-pod\n'), 'the operator pod output');
    kube.setCustomStatus('training.example.com', 'v1', 'trainjobs', 'default', cr.metadata.name, {
      state: { phase: 'Running' },
    });
    await until(async () => (await server.client.getRun(runId)).status === 'running', 'running');
    kube.setCustomStatus('training.example.com', 'v1', 'trainjobs', 'default', cr.metadata.name, {
      state: { phase: 'Completed' },
    });
    const run = await endOf(runId);
    expect(run.status).toBe('finished');
  });

  it("a typo'd field in the queue's manifest is dropped by the API server, and its warning is in the run's log", async () => {
    const item = await push('k8s-typo', busybox('echo typo-run'));
    const run = await endOf(await runOf(item.id));
    expect(run.status).toBe('finished');
    const logs = await logsOf(run.id);
    expect(logs).toContain(
      'warning from the Kubernetes API server: unknown field "spec.template.spec.containers[0].imagePullPolicyy"',
    );
    const [job] = jobsOf(run.id);
    expect(job.spec.template.spec.containers[0]).not.toHaveProperty('imagePullPolicyy');
  });

  it('a custom resource no CRD declares fails at start with the 404, leaving nothing behind', async () => {
    const item = await push(
      'k8s',
      busybox('echo never', {
        apiVersion: 'kubeflow.org/v1',
        kind: 'PyTorchJob',
        spec: {
          pytorchReplicaSpecs: { Master: { replicas: 1, template: { spec: { containers: [{ name: 'pytorch' }] } } } },
        },
      }),
    );
    const run = await endOf(await runOf(item.id));
    expect(run.status).toBe('failed');
    expect(run.error_message).toMatch(
      /Kubernetes does not serve pytorchjobs\.kubeflow\.org\/v1 \(HTTP 404: no CustomResourceDefinition declares it in this cluster\)/,
    );
    expect(labelled(kube.list('Secret'), run.id)).toEqual([]);
  });

  it('pulls through a registry with an image pull secret it creates and removes', async () => {
    const registry = await startRegistry();
    const image = `${registry.host}/team/busybox:1`;
    const dockerConfig = tempDir('liftoff-dockercfg-');
    const d = (args: string[], input?: string) =>
      execFileSync('docker', ['--config', dockerConfig, ...args], { stdio: 'pipe', ...(input ? { input } : {}) });
    d(['tag', BUSYBOX, image]);
    d(['login', '-u', registry.username, '--password-stdin', registry.host], registry.password);
    d(['push', image]);
    d(['rmi', image]);
    // A second agent whose builder destination is that registry, with its login.
    const cfg = agentConfig(
      dir,
      [
        `stopped_run_timeout: 2`,
        `builder:`,
        `  type: docker`,
        `  destination: ${registry.host}/team/jobs`,
        `  credentials: { username: ${registry.username}, password: ${registry.password} }`,
        `kubernetes:`,
        `  config-file: ${kubeconfig}`,
        '',
      ].join('\n'),
    );
    await server.client.createQueue('default', { name: 'k8s-registry', resource: 'kubernetes' });
    const other = await startAgent(server, { name: 'k8s-registry-agent', queues: ['k8s-registry'], config: cfg });
    try {
      const item = await push('k8s-registry', {
        spec: { source: { type: 'image', image }, entry_point: ['echo', 'pulled with a secret'] },
      });
      const runId = await runOf(item.id);
      const run = await endOf(runId);
      expect(run.status).toBe('finished');
      expect(await logsOf(runId)).toContain('pulled with a secret\n');
      const secret = kube.created.find(
        (c) => c.kind === 'Secret' && (c.body as any).metadata.name === `liftoff-regcred-${runId}`,
      );
      const config = JSON.parse(Buffer.from((secret?.body as any).data['.dockerconfigjson'], 'base64').toString());
      expect(config.auths[registry.host]).toMatchObject({ username: registry.username, password: registry.password });
      expect(kube.get('Secret', 'default', `liftoff-regcred-${runId}`)).toBeUndefined();
    } finally {
      await other.stop();
      execFileSync('docker', ['rmi', '-f', image], { stdio: 'ignore' });
    }
  });

  it('kill -9 mid-run: a restarted agent re-adopts the Job, reports its end and logs, and sweeps leftovers', async () => {
    // A Job of this agent whose run is not active (it ended while the agent was away): the restart removes it.
    const kc = new KubeConfig();
    kc.loadFromFile(kubeconfig);
    const item = await push('k8s', busybox('echo before-crash; sleep 5; echo after-crash'));
    const runId = await runOf(item.id);
    await until(async () => (await logsOf(runId)).includes('before-crash\n'), 'output before the crash');
    const stale = await until(async () => jobsOf(runId)[0], 'the Job');
    await kc.makeApiClient(BatchV1Api).createNamespacedJob({
      namespace: 'default',
      body: {
        metadata: {
          name: 'liftoff-zzzzzzzz',
          labels: { ...stale.metadata.labels, [RUN]: 'zzzzzzzz' },
        },
        spec: {
          template: {
            metadata: { labels: { ...stale.metadata.labels, [RUN]: 'zzzzzzzz' } },
            spec: {
              restartPolicy: 'Never',
              terminationGracePeriodSeconds: 1,
              containers: [{ name: 'main', image: BUSYBOX, command: ['sleep', '300'] }],
            },
          },
        },
      },
    });
    agent.proc.kill('SIGKILL');
    await agent.proc.exited;
    agent = await startAgent(server, {
      name: agentName,
      queues: ['k8s', 'k8s-preempt', 'k8s-timeout', 'k8s-typo'],
      maxJobs: 6,
      config: configPath,
    });
    const run = await endOf(runId);
    expect(run.status).toBe('finished');
    const logs = await logsOf(runId);
    // Whole lines only: the "[liftoff] starting: ..." note names both words too.
    expect(logs.match(/^before-crash$/gm)).toHaveLength(1);
    expect(logs.match(/^after-crash$/gm)).toHaveLength(1);
    await until(async () => jobsOf('zzzzzzzz').length === 0 && podsOf('zzzzzzzz').length === 0, 'the sweep');
  });

  it('an agent whose cluster config is broken refuses to start and takes nothing', async () => {
    await server.client.createQueue('default', { name: 'k8s-broken', resource: 'kubernetes' });
    const item = await push('k8s-broken', busybox('true'));
    const cfg = agentConfig(dir, ['kubernetes:', `  config-file: ${join(dir, 'no-such-kubeconfig')}`, ''].join('\n'));
    const proc = liftoff(['launch-agent', '--name', 'broken-k8s', '-q', 'k8s-broken', '-c', cfg], server.env);
    const { code } = await proc.exited;
    expect(code).toBe(2);
    expect(proc.output).toContain(
      `liftoff: error: Queue "k8s-broken" runs kubernetes jobs, but: Kubeconfig ${join(dir, 'no-such-kubeconfig')} does not exist.`,
    );
    expect((await server.client.getItem(item.id)).state).toBe('pending');
    const agents = (await server.client.listAgents('default')).agents;
    expect(agents.find((a) => a.name === 'broken-k8s')?.status).toBe('KILLED');
  });

  it('every manifest the runner created validates against the official schema', () => {
    const ours = kube.created.filter(
      (c) => (c.body as any)?.metadata?.labels?.['app.kubernetes.io/managed-by'] === 'liftoff',
    );
    const jobs = ours.filter((c) => c.kind === 'Job');
    const secrets = ours.filter((c) => c.kind === 'Secret');
    expect(jobs.length).toBeGreaterThan(8);
    expect(secrets.length).toBeGreaterThan(0);
    for (const c of jobs) expect(() => new JobModel(c.body as never).validate()).not.toThrow();
    for (const c of secrets) expect(() => new SecretModel(c.body as never).validate()).not.toThrow();
  });
});
