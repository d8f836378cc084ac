/**
 * The Kubernetes runner at a real cluster's pace, and with an operator: the test API server with CLUSTER_TIMING
 * (pod starts of 4 s, the kubelet's 10 s crash-loop back-off, the Job controller's 10 s back-off), and Kubeflow's
 * PyTorchJob CRD installed through the API with a small operator that sets status as training-operator does.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CustomObjectsApi, KubeConfig } from '@kubernetes/client-node';
import { isTerminal, type Item, type PushBody } from '@liftoff/core';
import { BUSYBOX, dockerAvailable } from '../helpers/docker.js';
import { CLUSTER_TIMING, startFakeKube, type FakeKube } from '../helpers/kube/index.js';
import { PYTORCHJOB_CRD, startPyTorchOperator } from '../helpers/kube/pytorchOperator.js';
import { agentConfig, cleanupAll, sleep, startAgent, startServer, tempDir, type TestServer } from '../helpers/procs.js';

async function until<T>(fn: () => Promise<T | undefined | false | null>, what: string, ms = 90_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

const RUN = 'liftoff.dev/run-id';
const labelled = (objs: any[], runId: string): any[] => objs.filter((o) => o?.metadata?.labels?.[RUN] === runId);

describe.skipIf(!dockerAvailable())('kubernetes runner at cluster-like delays, with a PyTorchJob operator', () => {
  let kube: FakeKube;
  let server: TestServer;
  let operator: { stop(): void } | undefined;
  const dir = tempDir('liftoff-k8s-cluster-');

  const push = (queue: string, script: string, kubernetes: Record<string, unknown> = {}): Promise<Item> =>
    server.client.push('default', queue, {
      spec: {
        source: { type: 'image', image: BUSYBOX },
        entry_point: ['sh', '-c', script],
        resource_args: { kubernetes },
      },
    } as Omit<PushBody, 'template_variables'>);
  const runOf = (itemId: string) =>
    until(async () => (await server.client.getItem(itemId)).run_id ?? undefined, `a run of item ${itemId}`);
  const endOf = (runId: string) =>
    until(async () => {
      const r = await server.client.getRun(runId);
      return isTerminal(r.status) ? r : undefined;
    }, `run ${runId} to end`);
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
  const pytorchJob = (master: Record<string, unknown>) => ({
    apiVersion: 'kubeflow.org/v1',
    kind: 'PyTorchJob',
    spec: {
      runPolicy: { cleanPodPolicy: 'None' },
      runPolicyy: { typo: true },
      pytorchReplicaSpecs: {
        Master: {
          replicas: 1,
          restartPolicy: 'Never',
          template: { spec: { containers: [{ name: 'pytorch', ...master }] } },
        },
      },
    },
  });

  beforeAll(async () => {
    kube = await startFakeKube({ timing: CLUSTER_TIMING });
    const kubeconfig = await kube.writeKubeconfig(dir);
    const kc = new KubeConfig();
    kc.loadFromFile(kubeconfig);
    // Installed as an admin installs the operator's CRD (the generic objects API sends the JSON as it is).
    await kc.makeApiClient(CustomObjectsApi).createClusterCustomObject({
      group: 'apiextensions.k8s.io',
      version: 'v1',
      plural: 'customresourcedefinitions',
      body: PYTORCHJOB_CRD,
    });
    operator = startPyTorchOperator(kube, 'default');
    server = await startServer();
    await server.client.createQueue('default', { name: 'k8s', resource: 'kubernetes', start_timeout_seconds: 60 });
    await server.client.createQueue('default', { name: 'k8s-hasty', resource: 'kubernetes', start_timeout_seconds: 2 });
    const config = agentConfig(dir, ['kubernetes:', `  config-file: ${kubeconfig}`, ''].join('\n'));
    await startAgent(server, { name: 'k8s-cluster-agent', queues: ['k8s', 'k8s-hasty'], maxJobs: 4, config });
  });

  afterAll(async () => {
    operator?.stop();
    await cleanupAll();
    await kube?.close();
  });

  it('a PyTorchJob runs through its operator: Created, Running, Succeeded; the pruned typo is in the log', async () => {
    // Running long enough for the operator's 100 ms reconcile to see the pod running on a loaded machine (a pod it
    // only ever sees ended gets no Running condition, as with the real operator).
    const item = await push('k8s', 'echo from-the-master; sleep 2', pytorchJob({}));
    const run = await endOf(await runOf(item.id));
    expect(run.status).toBe('finished');
    const logs = await logsOf(run.id);
    expect(logs).toContain('from-the-master\n');
    expect(logs).toContain('warning from the Kubernetes API server: unknown field "spec.runPolicyy"');
    const [cr] = labelled(kube.list('PyTorchJob'), run.id);
    expect(cr.spec).not.toHaveProperty('runPolicyy');
    expect(cr.status.conditions.map((c: { type: string; status: string }) => `${c.type}=${c.status}`)).toEqual([
      'Created=True',
      'Running=False',
      'Succeeded=True',
    ]);
    expect(cr.status.replicaStatuses).toEqual({ Master: { active: 0, succeeded: 1, failed: 0 } });
  });

  it("a PyTorchJob whose master fails ends the run failed with the operator's condition", async () => {
    const item = await push('k8s', 'echo dying; exit 3', pytorchJob({}));
    const run = await endOf(await runOf(item.id));
    expect(run.status).toBe('failed');
    expect(run.error_message).toMatch(
      /PyTorchJob default\/liftoff-\S+ failed: Failed: PyTorchJobFailed: PyTorchJob liftoff-\S+ is failed because 1 Master replica\(s\) failed\./,
    );
  });

  it("a pod start slower than the queue's start timeout fails the run, and leaves no pod", async () => {
    const item = await push('k8s-hasty', 'echo too-late');
    const run = await endOf(await runOf(item.id));
    expect(run.status).toBe('failed');
    expect(run.error_message).toMatch(/start timeout of 2 s/);
    await until(async () => labelled(kube.list('Pod'), run.id).length === 0, 'the pod gone');
    expect(await logsOf(run.id)).not.toContain('too-late\n');
  });

  it("the kubelet's 10 s crash-loop back-off shows as the run's warning, and the Job then fails", async () => {
    const item = await push('k8s', 'echo crashing; exit 1', {
      spec: { backoffLimit: 3, template: { spec: { restartPolicy: 'OnFailure' } } },
    });
    const runId = await runOf(item.id);
    const warned = await until(async () => {
      const r = await server.client.getRun(runId);
      return r.warning ? r : undefined;
    }, 'the crash-loop warning');
    expect(warned.warning).toMatch(/container main: CrashLoopBackOff: back-off 10s restarting failed container=main/);
    const run = await endOf(runId);
    expect(run.status).toBe('failed');
    expect(run.error_message).toMatch(/Job failed: BackoffLimitExceeded/);
  });

  it("the Job controller's 10 s back-off between pods: the run waits for the replacement and logs both", async () => {
    const item = await push('k8s', 'echo attempt-$HOSTNAME; exit 2', { spec: { backoffLimit: 1 } });
    const run = await endOf(await runOf(item.id));
    expect(run.status).toBe('failed');
    expect(run.error_message).toMatch(/exited with code 2 .*Job failed: BackoffLimitExceeded/);
    const attempts = (await logsOf(run.id)).split('\n').filter((l) => l.startsWith('attempt-'));
    expect(attempts).toHaveLength(2);
    expect(new Set(attempts).size).toBe(2);
  });
});
