import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Job as JobModel } from 'kubernetes-models/batch/v1/Job';
import { Secret as SecretModel } from 'kubernetes-models/v1/Secret';
import { isTerminal, type Item, type PushBody, type Run } from '@liftoff/core';
import { BUSYBOX, dockerAvailable } from '../helpers/docker.js';
import { startFakeKube, type FakeKube } from '../helpers/kube/index.js';
import {
  agentConfig,
  cleanupAll,
  liftoff,
  sleep,
  startAgent,
  startServer,
  tempDir,
  type TestServer,
} from '../helpers/procs.js';

/**
 * Issue #11, Kubernetes part: a job (anyone who can push) cannot choose how the agent reaches its cluster, which
 * namespace it lands in, or settings that reach the node; a start that fails leaves nothing in the cluster; an agent
 * in secure_mode holds W&B's locks. Real server and agent processes against the test API server.
 */
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
const labelled = (objs: any[], runId: string): any[] => objs.filter((o) => o?.metadata?.labels?.[RUN] === runId);
/** Nothing answers on this port: images "from" it never pull, and the agent has a login for it. */
const DEAD_REGISTRY = '127.0.0.1:9';

describe.skipIf(!dockerAvailable())('security: kubernetes jobs cannot touch the agent host or the cluster', () => {
  let kube: FakeKube;
  let server: TestServer;
  const dir = tempDir('liftoff-sec-k8s-');
  const marker = join(dir, 'exec-plugin-ran');
  let evilKubeconfig: string;

  const push = (queue: string, body: Omit<PushBody, 'template_variables'>): Promise<Item> =>
    server.client.push('default', queue, body);
  const busybox = (
    kubernetes: Record<string, unknown> = {},
    script = 'echo ok',
  ): Omit<PushBody, 'template_variables'> => ({
    spec: {
      source: { type: 'image', image: BUSYBOX },
      entry_point: ['sh', '-c', script],
      resource_args: { kubernetes },
    },
  });
  const runOf = (itemId: string) =>
    until(async () => (await server.client.getItem(itemId)).run_id ?? undefined, `a run of item ${itemId}`);
  const endOf = (runId: string, ms = 90_000): Promise<Run> =>
    until(
      async () => {
        const r = await server.client.getRun(runId);
        return isTerminal(r.status) ? r : undefined;
      },
      `run ${runId} to end`,
      ms,
    );
  const finalOf = async (item: Item): Promise<Run> => endOf(await runOf(item.id));
  /** What the test API server ever received for the run, and what it still holds. */
  const createdFor = (runId: string) => kube.created.filter((c) => (c.body as any)?.metadata?.labels?.[RUN] === runId);
  const leftFor = (runId: string) => ({
    jobs: labelled(kube.list('Job'), runId),
    pods: labelled(kube.list('Pod'), runId),
    secrets: labelled(kube.list('Secret'), runId),
  });
  const nothingLeft = { jobs: [], pods: [], secrets: [] };
  /** What the runner created for a run, as kind/name: its upload-token Secret comes before its Job (outputs.md). */
  const madeFor = (runId: string) =>
    createdFor(runId).map((c) => `${c.kind}/${(c.body as any).metadata.name.replace(runId, 'RUN')}`);

  beforeAll(async () => {
    kube = await startFakeKube({ namespaces: ['default', 'ml', 'team-b', 'kube-system'] });
    const kubeconfig = await kube.writeKubeconfig(dir);
    // A kubeconfig a job might have left on the agent host: its exec plugin would run there, as the agent.
    evilKubeconfig = join(dir, 'evil-kubeconfig');
    const credential = JSON.stringify({
      apiVersion: 'client.authentication.k8s.io/v1',
      kind: 'ExecCredential',
      status: { token: kube.token },
    });
    writeFileSync(
      evilKubeconfig,
      [
        'apiVersion: v1',
        'kind: Config',
        'clusters:',
        `- name: evil\n  cluster:\n    server: ${JSON.stringify(kube.url)}\n    insecure-skip-tls-verify: true`,
        'users:',
        '- name: evil',
        '  user:',
        '    exec:',
        '      apiVersion: client.authentication.k8s.io/v1',
        '      command: /bin/sh',
        `      args: ["-c", ${JSON.stringify(`touch ${marker}; echo '${credential}'`)}]`,
        '      interactiveMode: Never',
        'contexts:',
        '- name: evil\n  context:\n    cluster: evil\n    user: evil\n    namespace: kube-system',
        'current-context: evil',
        '',
      ].join('\n'),
    );
    server = await startServer();
    await server.client.createQueue('default', { name: 'k8s', resource: 'kubernetes' });
    await server.client.createQueue('default', {
      name: 'k8s-team-b',
      resource: 'kubernetes',
      allow: ['namespace:team-b'],
    });
    await server.client.createQueue('default', {
      name: 'k8s-timeout',
      resource: 'kubernetes',
      start_timeout_seconds: 3,
    });
    // The queue owner allows hostNetwork; the secure_mode agent must refuse it anyway.
    await server.client.createQueue('default', { name: 'k8s-secure', resource: 'kubernetes', allow: ['hostNetwork'] });
    const base = [`stopped_run_timeout: 2`, 'kubernetes:', `  config-file: ${kubeconfig}`, '  namespaces: [ml]'];
    const registry = [
      'builder:',
      '  type: docker',
      `  destination: ${DEAD_REGISTRY}/team/jobs`,
      '  credentials: { username: agent-user, password: agent-secret-password }',
    ];
    await startAgent(server, {
      name: 'sec-k8s',
      queues: ['k8s', 'k8s-team-b', 'k8s-timeout'],
      maxJobs: 8,
      config: agentConfig(dir, [...base, ...registry, ''].join('\n')),
    });
    // A W&B-style file that sets secure_mode: true, plus the cluster section.
    await startAgent(server, {
      name: 'sec-k8s-secure',
      queues: ['k8s-secure'],
      maxJobs: 4,
      config: agentConfig(dir, ['secure_mode: true', 'max_jobs: 4', ...base, ''].join('\n')),
    });
  });

  afterAll(async () => {
    await cleanupAll();
    await kube?.close();
  });

  it('a kubeconfig or context named in resource args is refused before anything is created; its exec plugin never runs', async () => {
    const cases = [
      { configFile: evilKubeconfig },
      { configFile: evilKubeconfig, context: 'evil' },
      { context: 'evil' },
      { 'config-file': evilKubeconfig },
      { kubeconfig: evilKubeconfig },
    ];
    const items = await Promise.all(cases.map((c) => push('k8s', busybox(c))));
    for (const [i, item] of items.entries()) {
      const run = await finalOf(item);
      const key = Object.keys(cases[i] ?? {})[0];
      expect(run.status).toBe('failed');
      expect(run.error_message).toContain(`resource_args.kubernetes.${key} is refused`);
      expect(run.error_message).toContain('set kubernetes.config-file and kubernetes.context in the agent');
      expect(createdFor(run.id)).toEqual([]);
    }
    expect(existsSync(marker)).toBe(false);
    expect(kube.list('Job', 'kube-system')).toEqual([]);
  });

  it('a namespace outside the allow-lists is refused; the agent list and the queue allowance let one in', async () => {
    const [system, legacy, teamB, ml, viaQueue] = await Promise.all([
      push('k8s', busybox({ metadata: { namespace: 'kube-system' } })),
      push('k8s', busybox({ namespace: 'kube-system' })),
      push('k8s', busybox({ metadata: { namespace: 'team-b' } })),
      push('k8s', busybox({ metadata: { namespace: 'ml' } })),
      push('k8s-team-b', busybox({ metadata: { namespace: 'team-b' } })),
    ]);
    for (const item of [system, legacy]) {
      const run = await finalOf(item);
      expect(run.status).toBe('failed');
      expect(run.error_message).toMatch(
        /Namespace "kube-system" is not one jobs of queue "k8s" may choose \(allowed: "default", "ml"\)/,
      );
      expect(run.error_message).toContain('--allow namespace:kube-system');
      expect(createdFor(run.id)).toEqual([]);
    }
    const refused = await finalOf(teamB);
    expect(refused.status).toBe('failed');
    expect(refused.error_message).toMatch(/Namespace "team-b"/);
    const inMl = await finalOf(ml);
    expect(inMl.status).toBe('finished');
    expect(createdFor(inMl.id).find((c) => c.kind === 'Job')?.namespace).toBe('ml');
    const inTeamB = await finalOf(viaQueue);
    expect(inTeamB.status).toBe('finished');
    expect(createdFor(inTeamB.id).find((c) => c.kind === 'Job')?.namespace).toBe('team-b');
    expect(kube.list('Job', 'kube-system')).toEqual([]);
  });

  it('settings W&B refuses are refused end to end, odd spellings and non-boolean booleans included', async () => {
    const pod = (podSpec: Record<string, unknown>, c: Record<string, unknown> = {}) => ({
      spec: { template: { spec: { ...podSpec, containers: [c] } } },
    });
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [
        pod({ volumes: [{ name: 'h', HostPath: { path: '/' } }] }),
        /hostPath \(spec.template.spec.volumes\[0\].HostPath\)/,
      ],
      [pod({}, { securityContext: { privileged: 'true' } }), /securityContext.privileged is "true" \(string\)/],
      [pod({ HOSTNETWORK: true }), /hostNetwork \(spec.template.spec.HOSTNETWORK\)/],
      [pod({}, { securityContext: { seccompProfile: { type: 'Unconfined' } } }), /unconfined \(.*seccompProfile\)/],
      [pod({ serviceAccountName: 'cluster-admin-sa' }), /--allow serviceAccount:cluster-admin-sa/],
      [pod({ automountServiceAccountToken: true }), /serviceAccountToken/],
      [pod({ nodeName: 'fake-node-1' }), /nodeName \(spec.template.spec.nodeName\)/],
      // The run's own pull secret, named through the run_id macro, refused even though it exists.
      [
        pod({ volumes: [{ name: 'creds', secret: { secretName: 'liftoff-regcred-${run_id}' } }] }),
        /secretName names one of the agent's own objects/,
      ],
      // Its own upload-token Secret by the same macro: refused too (the token is Liftoff's to place).
      [
        pod(
          {},
          { env: [{ name: 'T', valueFrom: { secretKeyRef: { name: 'liftoff-upload-${run_id}', key: 'token' } } }] },
        ),
        /secretKeyRef.name names one of the agent's own objects/,
      ],
      [
        pod({}, { volumeMounts: [{ name: 'x', mountPath: '/mnt/liftoff/outputs' }] }),
        /\/mnt\/liftoff is where Liftoff mounts/,
      ],
      [pod({}, { envFrom: [{ secretRef: { name: 'db' } }] }), /secrets \(.*envFrom\[0\].secretRef\)/],
    ];
    const items = await Promise.all(cases.map(([args]) => push('k8s', busybox(args))));
    for (const [i, item] of items.entries()) {
      const run = await finalOf(item);
      expect(run.status).toBe('failed');
      expect(run.error_message).toMatch(cases[i]?.[1] as RegExp);
      expect(createdFor(run.id)).toEqual([]);
    }
  });

  it('a Job created although the answer to its create was lost is found by its run label and removed', async () => {
    // A proxy in front of the test API server that lets one Job create through but cuts the connection before the
    // answer, as a dropped network or a restarted API server would.
    const kubeUrl = new URL(kube.url);
    let cutNextJobCreate = true;
    const proxy: Server = createServer((req, res) => {
      const up = httpRequest(
        { host: kubeUrl.hostname, port: kubeUrl.port, path: req.url, method: req.method, headers: req.headers },
        (answer) => {
          if (cutNextJobCreate && req.method === 'POST' && /\/jobs(\?|$)/.test(req.url ?? '')) {
            cutNextJobCreate = false;
            answer.resume();
            answer.on('end', () => req.socket.destroy());
            return;
          }
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(res);
        },
      );
      up.on('error', () => res.destroy());
      req.pipe(up);
    });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
    const proxyUrl = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
    const viaProxy = join(dir, 'kubeconfig-via-proxy');
    writeFileSync(
      viaProxy,
      readFileSync(await kube.writeKubeconfig(join(dir, 'p')), 'utf8').replace(kube.url, proxyUrl),
    );
    await server.client.createQueue('default', { name: 'k8s-lossy', resource: 'kubernetes' });
    const agent = await startAgent(server, {
      name: 'sec-k8s-lossy',
      queues: ['k8s-lossy'],
      config: agentConfig(dir, ['kubernetes:', `  config-file: ${viaProxy}`, ''].join('\n')),
    });
    try {
      const run = await finalOf(await push('k8s-lossy', busybox({}, 'sleep 30')));
      expect(run.status).toBe('failed');
      expect(cutNextJobCreate).toBe(false);
      // The API did create it; the agent, not knowing, looked for it by the run label and deleted it.
      expect(madeFor(run.id)).toEqual(['Secret/liftoff-upload-RUN', 'Job/liftoff-RUN']);
      // Deleted in the foreground: gone once its pod is (the pod's grace period is the default 30 s at most).
      const left = leftFor(run.id).jobs[0];
      if (left) expect(left.metadata.deletionTimestamp).toBeTruthy();
      await until(
        async () => JSON.stringify(leftFor(run.id)) === JSON.stringify(nothingLeft),
        'the Job and its pod to go',
        45_000,
      );
    } finally {
      await agent.stop();
      proxy.closeAllConnections();
      await new Promise((r) => proxy.close(r));
    }
  });

  it('a Job the API refuses after the pull secret was created leaves neither behind', async () => {
    // Credentials exist for the image's registry, so the agent creates a pull secret first; the Job then fails
    // validation (a mount of a volume that does not exist).
    const item = await push('k8s', {
      spec: {
        source: { type: 'image', image: `${DEAD_REGISTRY}/team/app:1` },
        resource_args: {
          kubernetes: {
            spec: { template: { spec: { containers: [{ volumeMounts: [{ name: 'nope', mountPath: '/x' }] }] } } },
          },
        },
      },
    });
    const run = await finalOf(item);
    expect(run.status).toBe('failed');
    expect(run.error_message).toMatch(/Kubernetes refused the Job: .*HTTP 422/);
    expect(madeFor(run.id)).toEqual(['Secret/liftoff-regcred-RUN', 'Secret/liftoff-upload-RUN']);
    expect(leftFor(run.id)).toEqual(nothingLeft);
  });

  it('an image that never pulls: the start timeout removes the Job, its pods and the pull secret', async () => {
    const item = await push('k8s-timeout', {
      spec: { source: { type: 'image', image: `${DEAD_REGISTRY}/team/app:1` } },
    });
    const runId = await runOf(item.id);
    await until(async () => leftFor(runId).secrets.length > 0 && leftFor(runId).pods.length > 0, 'the secret and pod');
    const run = await endOf(runId);
    expect(run.status).toBe('failed');
    expect(run.error_message).toMatch(/start timeout of 3 s: .*(ErrImagePull|ImagePullBackOff)/);
    expect(leftFor(runId)).toEqual(nothingLeft);
  });

  it('a container that cannot start: the failed Job and its pod are removed at once, not after the TTL', async () => {
    const item = await push('k8s', {
      spec: { source: { type: 'image', image: BUSYBOX }, entry_point: ['/no/such/program'] },
    });
    const run = await finalOf(item);
    expect(run.status).toBe('failed');
    expect(madeFor(run.id)).toEqual(['Secret/liftoff-upload-RUN', 'Job/liftoff-RUN']);
    await until(async () => JSON.stringify(leftFor(run.id)) === JSON.stringify(nothingLeft), 'the Job to go', 20_000);
  });

  it('secure_mode: a W&B file that sets it loads, and its locks hold even where the queue allows', async () => {
    const secure = (body: Omit<PushBody, 'template_variables'>) => push('k8s-secure', body);
    // The image's own entry point (busybox has none, so the args are the command), as secure_mode wants.
    const imageArgs = (kubernetes: Record<string, unknown>): Omit<PushBody, 'template_variables'> => ({
      spec: { source: { type: 'image', image: BUSYBOX }, args: ['echo', 'ok'], resource_args: { kubernetes } },
    });
    const cases: Array<[Omit<PushBody, 'template_variables'>, RegExp]> = [
      [
        {
          spec: {
            source: { type: 'image', image: BUSYBOX },
            resource_args: {
              kubernetes: { spec: { template: { spec: { containers: [{ command: ['sh', '-c', 'id'] }] } } } },
            },
          },
        },
        /containers\[0\].command the agent's secure_mode runs only the job's own entry point/,
      ],
      [
        imageArgs({ spec: { template: { spec: { hostNetwork: true } } } }),
        /hostNetwork is locked by the agent's secure_mode/,
      ],
      [
        imageArgs({ spec: { template: { spec: { initContainers: [{ name: 'i', image: BUSYBOX }] } } } }),
        /initContainers the agent's secure_mode allows no init containers/,
      ],
      [busybox(), /secure_mode, which does not let an item replace an image's entry point/],
    ];
    const items = await Promise.all(cases.map(([body]) => secure(body)));
    for (const [i, item] of items.entries()) {
      const run = await finalOf(item);
      expect(run.status).toBe('failed');
      expect(run.error_message).toMatch(cases[i]?.[1] as RegExp);
      expect(createdFor(run.id)).toEqual([]);
    }
    // The image's own entry point with the item's args runs.
    const ok = await finalOf(
      await secure({ spec: { source: { type: 'image', image: BUSYBOX }, args: ['echo', 'secure-ok'] } }),
    );
    expect(ok.status).toBe('finished');
    expect(createdFor(ok.id).find((c) => c.kind === 'Job')).toBeDefined();
  });

  it('secure_mode: an agent asked to serve a local-process queue refuses to start', async () => {
    await server.client.createQueue('default', { name: 'local-secure', resource: 'local-process' });
    const cfg = agentConfig(dir, 'secure_mode: true\n');
    const proc = liftoff(['launch-agent', '--name', 'secure-local', '-q', 'local-secure', '-c', cfg], server.env);
    const { code } = await proc.exited;
    expect(code).not.toBe(0);
    expect(proc.output).toContain(
      'Queue "local-secure" runs local-process jobs, which an agent in secure_mode does not serve',
    );
  });

  it('every object the runner created validates against the official schema', () => {
    const ours = kube.created.filter(
      (c) => (c.body as any)?.metadata?.labels?.['app.kubernetes.io/managed-by'] === 'liftoff',
    );
    const jobs = ours.filter((c) => c.kind === 'Job');
    expect(jobs.length).toBeGreaterThan(3);
    for (const c of jobs) expect(() => new JobModel(c.body as never).validate()).not.toThrow();
    for (const c of ours.filter((o) => o.kind === 'Secret')) {
      expect(() => new SecretModel(c.body as never).validate()).not.toThrow();
    }
  });
});
