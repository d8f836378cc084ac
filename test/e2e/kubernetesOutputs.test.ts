import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigMap as ConfigMapModel } from 'kubernetes-models/v1/ConfigMap';
import { Job as JobModel } from 'kubernetes-models/batch/v1/Job';
import { Secret as SecretModel } from 'kubernetes-models/v1/Secret';
import { LiftoffClient, LiftoffError, isTerminal, type PushBody, type Run } from '@liftoff/core';
import { PYTHON, dockerAvailable } from '../helpers/docker.js';
import { startFakeKube, type FakeKube } from '../helpers/kube/index.js';
import {
  agentConfig,
  cleanupAll,
  cli,
  sleep,
  startAgent,
  startServer,
  tempDir,
  type TestServer,
} from '../helpers/procs.js';

async function until<T>(fn: () => Promise<T | undefined | false | null>, what: string, ms = 90_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(200);
  }
}

/** The job's own script: a model and a checkpoint in $LIFTOFF_OUTPUT_DIR; on SIGTERM, a checkpoint and exit 3. */
const TRAIN = `
import os, signal, sys, time
out = os.environ["LIFTOFF_OUTPUT_DIR"]
def stop(*_):
    open(os.path.join(out, "checkpoint-sigterm.pt"), "wb").write(b"state at SIGTERM " * 100)
    print("saved a checkpoint on SIGTERM", flush=True)
    sys.exit(3)
signal.signal(signal.SIGTERM, stop)
os.makedirs(os.path.join(out, "ckpt"), exist_ok=True)
open(os.path.join(out, "ckpt", "epoch-1.pt"), "wb").write(bytes(range(256)) * 400)
if os.environ.get("WAIT") == "1":
    print("training", flush=True)
    time.sleep(600)
open(os.path.join(out, "model.bin"), "wb").write(b"weights " * 50000)
print("trained", flush=True)
`;

/** Where the agent mounts the helper in the job's container (LIFTOFF_OUTPUTS_HELPER). */
const HELPER_PATH = '/mnt/liftoff/bin/liftoff_outputs.py';
const MODEL = Buffer.from('weights '.repeat(50000));
const EPOCH = Buffer.from(Array.from({ length: 400 }, () => [...Array(256).keys()]).flat());

/**
 * Issue 17, outputs of Kubernetes jobs end to end: real `liftoff server` and `liftoff launch-agent` processes, a
 * kubernetes queue on the test API server, whose kubelet runs the pods as Docker containers of the python image
 * (scripts/services/docker.sh). The pods run on the host network (queue allowance hostNetwork), which is how they
 * reach the server on 127.0.0.1 there; the agent's kubernetes.pod-server-url names it as they see it.
 */
describe.skipIf(!dockerAvailable())('kubernetes run outputs through the upload token and the helper', () => {
  let kube: FakeKube;
  let server: TestServer;
  const dir = tempDir('liftoff-k8s-out-');

  const push = (body: Omit<PushBody, 'template_variables'>) => server.client.push('default', 'k8s-out', body);
  const job = (entry: string[], env: Record<string, string> = {}): Omit<PushBody, 'template_variables'> => ({
    spec: { source: { type: 'image', image: PYTHON }, entry_point: entry, env },
  });
  /** `python3 $LIFTOFF_OUTPUTS_HELPER run -- python3 -c TRAIN`, the helper as the pod's entry point. */
  const helperRun = ['python3', '$(LIFTOFF_OUTPUTS_HELPER)', 'run', '--', 'python3', '-c', TRAIN];
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
  const created = (kind: string, name: string) =>
    kube.created.find((c) => c.kind === kind && (c.body as any)?.metadata?.name === name)?.body as any;
  /** The run's token, as the agent put it in the run's Secret. */
  const tokenOf = (runId: string) =>
    Buffer.from(created('Secret', `liftoff-upload-${runId}`).data.token as string, 'base64').toString();

  beforeAll(async () => {
    kube = await startFakeKube({ namespaces: ['default'] });
    const kubeconfig = await kube.writeKubeconfig(dir);
    server = await startServer();
    await server.client.createQueue('default', {
      name: 'k8s-out',
      resource: 'kubernetes',
      allow: ['hostNetwork'],
      resource_args: { kubernetes: { spec: { template: { spec: { hostNetwork: true } } } } },
    });
    // Pods on the host network see the server as localhost, the agent as 127.0.0.1: the option names the former.
    const podUrl = server.url.replace('127.0.0.1', 'localhost');
    const config = agentConfig(
      dir,
      [
        'stopped_run_timeout: 30',
        'outputs-max-mib: 64',
        'kubernetes:',
        `  config-file: ${kubeconfig}`,
        `  pod-server-url: ${podUrl}`,
        '',
      ].join('\n'),
    );
    await startAgent(server, { name: 'k8s-out-agent', queues: ['k8s-out'], maxJobs: 3, config });
  }, 120_000);

  afterAll(async () => {
    await cleanupAll();
    await kube?.close();
  });

  let firstRun: Run;

  it('a job run through the helper: its model and checkpoint are listed and downloaded byte for byte', async () => {
    // Launched as docs/outputs.md shows it: the helper's path as the entry point, the command after `run --`.
    const launched = await cli(
      [
        'launch',
        '-q',
        'k8s-out',
        '--image',
        PYTHON,
        '-E',
        `python3 ${HELPER_PATH} run -- python3 -c`,
        '--json',
        '--',
        TRAIN,
      ],
      server.env,
    );
    expect(launched.code, launched.output).toBe(0);
    const runId = await runOf((JSON.parse(launched.output) as { id: string }).id);
    firstRun = await endOf(runId);
    const logs = await logsOf(runId);
    expect(firstRun.status, logs).toBe('finished');
    expect(logs).toContain('trained');
    expect(logs).toContain('liftoff_outputs: outputs uploaded: 2 file(s)');
    expect(logs).toContain('[liftoff] outputs uploaded by the job: 2 file(s)');
    const out = tempDir('liftoff-k8s-download-');
    const got = await cli(['runs', 'outputs', runId, '--download', out], server.env);
    expect(got.code, got.output).toBe(0);
    expect(readFileSync(join(out, 'model.bin')).equals(MODEL)).toBe(true);
    expect(readFileSync(join(out, 'ckpt', 'epoch-1.pt')).equals(EPOCH)).toBe(true);

    // What the cluster received: the token only in the run's Secret, the Job naming it by secretKeyRef.
    const token = tokenOf(runId);
    expect(token).toMatch(/^lu_/);
    const jobBody = created('Job', `liftoff-${runId}`);
    expect(JSON.stringify(jobBody)).not.toContain(token);
    expect(JSON.stringify(jobBody)).not.toContain(token.slice(3, 20));
    const main = jobBody.spec.template.spec.containers[0];
    expect(main.env).toContainEqual({
      name: 'LIFTOFF_UPLOAD_TOKEN',
      valueFrom: { secretKeyRef: { name: `liftoff-upload-${runId}`, key: 'token' } },
    });
    expect(main.env).toContainEqual({
      name: 'LIFTOFF_UPLOAD_URL',
      value: server.url.replace('127.0.0.1', 'localhost'),
    });
    expect(jobBody.spec.template.spec.volumes).toContainEqual({
      name: 'liftoff-outputs',
      emptyDir: { sizeLimit: '64Mi' },
    });
    // The Job owns the Secret (the cluster collects it), and the agent deleted it at the end anyway.
    expect(kube.get('Secret', 'default', `liftoff-upload-${runId}`)).toBeUndefined();
    // The server dropped the token with the run's end.
    const t = new LiftoffClient({ baseUrl: server.url, apiKey: token });
    const refused = await t.startOutputUpload(runId, { path: 'late', size: 0, sha256: '0'.repeat(64) }).catch((e) => e);
    expect((refused as LiftoffError).code).toBe('UPLOAD_TOKEN_REFUSED');
  }, 180_000);

  it('a cancelled job traps SIGTERM and writes a checkpoint; it ends stopped with the checkpoint listed', async () => {
    const item = await push(job(helperRun, { WAIT: '1' }));
    const runId = await runOf(item.id);
    await until(async () => (await logsOf(runId)).includes('training\n'), 'the job to train');
    await server.client.cancelRun(runId);
    const run = await endOf(runId);
    const logs = await logsOf(runId);
    expect(run.status, logs).toBe('stopped');
    expect(logs).toContain('saved a checkpoint on SIGTERM');
    const listed = (await server.client.listOutputs(runId)).outputs.map((o) => o.path);
    expect(listed).toEqual(['checkpoint-sigterm.pt', 'ckpt/epoch-1.pt']);
    const out = tempDir('liftoff-k8s-download-');
    expect((await cli(['runs', 'outputs', runId, '--download', out], server.env)).code).toBe(0);
    expect(readFileSync(join(out, 'checkpoint-sigterm.pt'), 'utf8')).toBe('state at SIGTERM '.repeat(100));
  }, 180_000);

  it("a second run cannot upload to the first run's outputs with its own token", async () => {
    const script = 'LIFTOFF_RUN_ID=$TARGET python3 "$LIFTOFF_OUTPUTS_HELPER" upload; echo "helper exit=$?"';
    const item = await push(job(['sh', '-c', `echo x > "$LIFTOFF_OUTPUT_DIR/x"; ${script}`], { TARGET: firstRun.id }));
    const runId = await runOf(item.id);
    const run = await endOf(runId);
    const logs = await logsOf(runId);
    expect(run.status, logs).toBe('finished');
    expect(logs).toMatch(/outputs not uploaded: NOT_FOUND: .*nothing is listed/);
    expect(logs).toContain('helper exit=1');
    expect((await server.client.listOutputs(firstRun.id)).outputs.map((o) => o.path)).toEqual([
      'ckpt/epoch-1.pt',
      'model.bin',
    ]);
    // This run committed nothing itself: the agent says so and how to use the helper.
    expect(logs).toContain(
      '[liftoff] outputs: the job uploaded none. To keep files, write them to $LIFTOFF_OUTPUT_DIR',
    );
  }, 180_000);

  it('a job writing past the cap is evicted by the kubelet: the run fails saying why, and is not retried', async () => {
    const fill =
      'import os, time\nopen(os.path.join(os.environ["LIFTOFF_OUTPUT_DIR"], "big"), "wb").write(b"x" * (70 << 20))\nprint("filled", flush=True)\ntime.sleep(120)';
    const item = await push(job(['python3', '-c', fill]));
    const runId = await runOf(item.id);
    const run = await endOf(runId);
    expect(run.status, await logsOf(runId)).toBe('failed');
    expect(run.error_message).toContain("LIFTOFF_OUTPUT_DIR went past its cap (the agent's outputs-max-mib)");
    expect((await server.client.getItem(item.id)).state).toBe('failed');
    expect((await server.client.listOutputs(runId)).outputs).toEqual([]);
  }, 180_000);

  it('what the runner created validates against the official schemas', () => {
    const ours = kube.created.filter(
      (c) => (c.body as any)?.metadata?.labels?.['app.kubernetes.io/managed-by'] === 'liftoff',
    );
    const byKind = (k: string) => ours.filter((c) => c.kind === k).map((c) => c.body as never);
    expect(byKind('Job').length).toBe(4);
    expect(byKind('Secret').length).toBe(4);
    expect(byKind('ConfigMap').length).toBeGreaterThan(0);
    for (const b of byKind('Job')) expect(() => new JobModel(b).validate()).not.toThrow();
    for (const b of byKind('Secret')) expect(() => new SecretModel(b).validate()).not.toThrow();
    for (const b of byKind('ConfigMap')) expect(() => new ConfigMapModel(b).validate()).not.toThrow();
  });
});
