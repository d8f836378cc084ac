import { execFileSync } from 'node:child_process';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ApiextensionsV1Api,
  ApiException,
  BatchV1Api,
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  Log,
  PatchStrategy,
  Watch,
  makeInformer,
  setHeaderOptions,
  type V1Job,
  type V1Pod,
} from '@kubernetes/client-node';
import { BUSYBOX, docker, dockerAvailable, startRegistry } from '../helpers/docker.js';
import { selfSignedCert, startFakeKube, type FakeKube } from '../helpers/kube/index.js';
import { cleanupAll, sleep, tempDir } from '../helpers/procs.js';

interface Cond {
  type: string;
  status: string;
  reason?: string;
  message?: string;
}
interface ContainerStatusWire {
  name: string;
  restartCount: number;
  state: {
    running?: object;
    waiting?: { reason?: string };
    terminated?: { exitCode: number; reason?: string; containerID?: string };
  };
  lastState: { terminated?: { exitCode: number; reason?: string } };
}
/** An object as it travels on the wire (client-node's Watch hands over parsed JSON, not model classes). */
interface Wire {
  kind?: string;
  apiVersion?: string;
  metadata: {
    name: string;
    resourceVersion: string;
    uid: string;
    generation?: number;
    labels?: Record<string, string>;
    ownerReferences?: object[];
    finalizers?: string[];
    deletionTimestamp?: string;
    deletionGracePeriodSeconds?: number;
  };
  data?: Record<string, string>;
  status?: {
    phase?: string;
    reason?: string;
    conditions?: Cond[];
    containerStatuses?: ContainerStatusWire[];
    active?: number;
    succeeded?: number;
    failed?: number;
    completionTime?: string;
    state?: unknown;
  };
}
interface WatchEvent {
  type: string;
  object: Wire;
}
const hasCond = (o: Wire | undefined, type: string) => o?.status?.conditions?.some((c) => c.type === type) ?? false;

/** A client-node Watch that records every callback and the done callback's argument. */
async function watchOf(kc: KubeConfig, path: string, query: Record<string, string | number | boolean> = {}) {
  const events: WatchEvent[] = [];
  let resolveDone: (err: unknown) => void = () => undefined;
  const done = new Promise<unknown>((r) => (resolveDone = r));
  let doneCalls = 0;
  const ctrl = await new Watch(kc).watch(
    path,
    query,
    (type: string, object: unknown) => events.push({ type, object: object as Wire }),
    (err: unknown) => {
      doneCalls++;
      resolveDone(err);
    },
  );
  return { events, done, doneCalls: () => doneCalls, abort: () => ctrl.abort() };
}

async function until<T>(fn: () => T | undefined | false | Promise<T | undefined | false>, what: string, ms = 20_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

/** The Status body of a failed client-node call (ApiException.body is the raw response text). */
function statusOf(e: unknown): { code: number; reason: string; message: string; kind: string } {
  if (!(e instanceof ApiException)) throw e;
  return JSON.parse(e.body as string) as { code: number; reason: string; message: string; kind: string };
}

/** Asymmetric matchers, typed (vitest's return `any`). */
const matching = (re: RegExp): string => expect.stringMatching(re) as string;
const containing = (text: string): string => expect.stringContaining(text) as string;

async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (e) {
    return e;
  }
  throw new Error('expected the call to fail');
}

/** A shell that exits promptly on SIGTERM (a plain `sleep` as PID 1 would ignore it until SIGKILL). */
const SLEEPER = ['sh', '-c', 'trap "exit 143" TERM; echo up; sleep 300 & wait'];

const jobBody = (
  name: string,
  command: string[],
  extra: Record<string, unknown> = {},
  pod: Record<string, unknown> = {},
) =>
  ({
    metadata: { name },
    spec: {
      backoffLimit: 0,
      ...extra,
      template: {
        spec: { restartPolicy: 'Never', containers: [{ name: 'main', image: BUSYBOX, command }], ...pod },
      },
    },
  }) as V1Job;

const HAVE_DOCKER = dockerAvailable();

describe.skipIf(!HAVE_DOCKER)('fake Kubernetes API server, driven through @kubernetes/client-node', () => {
  let kube: FakeKube;
  let kc: KubeConfig;
  let core: CoreV1Api;
  let batch: BatchV1Api;
  let custom: CustomObjectsApi;
  const dir = tempDir('liftoff-fakekube-');
  const ns = 'default';
  const podsOfJob = (job: string) =>
    (kube.list('Pod', ns) as Wire[]).filter((p) => p.metadata.labels?.['job-name'] === job);
  const getPod = (name: string) => kube.get('Pod', ns, name) as Wire | undefined;
  const getJob = (name: string) => kube.get('Job', ns, name) as Wire | undefined;

  beforeAll(async () => {
    kube = await startFakeKube({ namespaces: ['default', 'ml'] });
    kc = new KubeConfig();
    kc.loadFromFile(await kube.writeKubeconfig(dir, { namespace: ns }));
    core = kc.makeApiClient(CoreV1Api);
    batch = kc.makeApiClient(BatchV1Api);
    custom = kc.makeApiClient(CustomObjectsApi);
  });

  afterAll(async () => {
    const id = kube?.instanceId;
    await kube?.close();
    await cleanupAll();
    if (id) expect(docker('ps', '-a', '-q', '--filter', `label=liftoff-test.fakekube=${id}`)).toBe('');
  });

  it('runs a Job to Complete, seen through Watches on jobs and pods, and follows its log while it runs', async () => {
    const jobs = await watchOf(kc, `/apis/batch/v1/namespaces/${ns}/jobs`);
    const pods = await watchOf(kc, `/api/v1/namespaces/${ns}/pods`, { labelSelector: 'job-name=hello' });
    const created = await batch.createNamespacedJob({
      namespace: ns,
      body: jobBody('hello', ['sh', '-c', 'echo hello; sleep 1; echo bye']),
    });
    expect(created.metadata?.uid).toBeTruthy();
    expect(created.spec?.selector?.matchLabels?.['batch.kubernetes.io/controller-uid']).toBe(created.metadata?.uid);

    const running = await until(
      () => pods.events.find((e) => e.object.status?.containerStatuses?.[0]?.state?.running),
      'the pod to run',
    );
    const podName = running.object.metadata.name as string;
    expect(podName).toMatch(/^hello-[a-z0-9]{5}$/);
    expect(running.object.metadata.ownerReferences).toEqual([
      expect.objectContaining({ kind: 'Job', name: 'hello', controller: true, blockOwnerDeletion: true }),
    ]);
    expect(running.object.metadata.labels).toMatchObject({
      'job-name': 'hello',
      'batch.kubernetes.io/job-name': 'hello',
      'controller-uid': created.metadata?.uid,
    });

    // Follow the log: "hello" must arrive while "bye" has not been printed yet.
    const out = new PassThrough();
    const chunks: Array<{ at: number; text: string }> = [];
    out.on('data', (b: Buffer) => chunks.push({ at: Date.now(), text: b.toString() }));
    const ended = new Promise<void>((r) => out.on('end', () => r()));
    await new Log(kc).log(ns, podName, 'main', out, { follow: true });
    await ended;
    const text = chunks.map((c) => c.text).join('');
    expect(text).toBe('hello\nbye\n');
    const helloAt = chunks.find((c) => c.text.includes('hello'))?.at ?? 0;
    const byeAt = chunks.find((c) => c.text.includes('bye'))?.at ?? 0;
    expect(byeAt - helloAt).toBeGreaterThan(500);

    const complete = await until(
      () => jobs.events.find((e) => e.object.status?.conditions?.some((c) => c.type === 'Complete')),
      'the Job to complete',
    );
    expect(complete.type).toBe('MODIFIED');
    expect(complete.object).toMatchObject({ kind: 'Job', apiVersion: 'batch/v1' });
    expect(complete.object.status ?? {}).toMatchObject({ succeeded: 1, ready: 0, terminating: 0 });
    expect(complete.object.status?.completionTime).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    const types = jobs.events
      .filter((e) => e.object.metadata.name === 'hello')
      .flatMap((e) => (e.object.status?.conditions ?? []).map((c) => c.type));
    expect(types.indexOf('SuccessCriteriaMet')).toBeLessThan(types.indexOf('Complete'));

    const done = pods.events.filter((e) => e.object.status?.phase === 'Succeeded');
    expect(done.length).toBeGreaterThan(0);
    const term = done[0]?.object.status?.containerStatuses?.[0]?.state.terminated;
    expect(term).toMatchObject({ exitCode: 0, reason: 'Completed' });
    expect(term?.containerID).toMatch(/^docker:\/\/[0-9a-f]{64}$/);
    // Resource versions only grow along a watch.
    const rvs = pods.events.map((e) => Number(e.object.metadata.resourceVersion));
    expect([...rvs].sort((a, b) => a - b)).toEqual(rvs);

    // The typed client read paths agree.
    const pod = await core.readNamespacedPod({ name: podName, namespace: ns });
    expect(pod.status?.phase).toBe('Succeeded');
    expect(await core.readNamespacedPodLog({ name: podName, namespace: ns, container: 'main' })).toBe('hello\nbye\n');
    expect(await core.readNamespacedPodLog({ name: podName, namespace: ns, tailLines: 1 })).toBe('bye\n');
    const stamped = await core.readNamespacedPodLog({ name: podName, namespace: ns, timestamps: true });
    expect(stamped).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z hello\n\S+ bye\n$/);
    const list = await core.listNamespacedPod({ namespace: ns, labelSelector: 'job-name=hello' });
    expect(list.items.map((p) => p.metadata?.name)).toEqual([podName]);
    expect(Number(list.metadata?.resourceVersion)).toBeGreaterThan(0);
    // Like the real apiserver, items of a built-in list carry no kind/apiVersion.
    expect(list.items[0]?.kind).toBeUndefined();
    const events = await core.listNamespacedEvent({
      namespace: ns,
      fieldSelector: `involvedObject.name=${podName},involvedObject.kind=Pod`,
    });
    expect(events.items.map((e) => e.reason)).toEqual(
      expect.arrayContaining(['Scheduled', 'Pulled', 'Created', 'Started']),
    );
    jobs.abort();
    pods.abort();
  });

  it('a failing container: terminated exit code 3 (Error) and the Job Failed with BackoffLimitExceeded', async () => {
    const jobs = await watchOf(kc, `/apis/batch/v1/namespaces/${ns}/jobs`, { fieldSelector: 'metadata.name=fails' });
    await batch.createNamespacedJob({ namespace: ns, body: jobBody('fails', ['sh', '-c', 'echo oops; exit 3']) });
    const failed = await until(
      () => jobs.events.find((e) => e.object.status?.conditions?.some((c) => c.type === 'Failed')),
      'the Job to fail',
    );
    const conds = failed.object.status?.conditions ?? [];
    expect(conds.map((c) => c.type)).toEqual(['FailureTarget', 'Failed']);
    expect(conds[1]).toMatchObject({
      status: 'True',
      reason: 'BackoffLimitExceeded',
      message: 'Job has reached the specified backoff limit',
    });
    expect(failed.object.status?.failed).toBe(1);
    const [pod] = podsOfJob('fails');
    expect(pod?.status?.phase).toBe('Failed');
    expect(pod?.status?.containerStatuses?.[0]?.state?.terminated).toMatchObject({ exitCode: 3, reason: 'Error' });
    expect(await core.readNamespacedPodLog({ name: pod?.metadata?.name ?? '', namespace: ns })).toBe('oops\n');
    jobs.abort();
  });

  it('a watch resumed from a compacted resourceVersion gets one ERROR event (410 Expired), then done(null)', async () => {
    const before = await core.listNamespacedSecret({ namespace: ns });
    const rv = before.metadata?.resourceVersion ?? '';
    await core.createNamespacedSecret({ namespace: ns, body: { metadata: { name: 's1' }, stringData: { a: 'x' } } });
    await core.createNamespacedSecret({ namespace: ns, body: { metadata: { name: 's2' }, stringData: { a: 'y' } } });

    // Before compaction the history replays, in order.
    const resumed = await watchOf(kc, `/api/v1/namespaces/${ns}/secrets`, { resourceVersion: rv });
    await until(() => resumed.events.length >= 2, 'the replayed events');
    expect(resumed.events.map((e) => [e.type, e.object.metadata.name])).toEqual([
      ['ADDED', 's1'],
      ['ADDED', 's2'],
    ]);
    expect(resumed.events[0]?.object.data).toEqual({ a: Buffer.from('x').toString('base64') });
    resumed.abort();

    kube.compactHistory();
    const expired = await watchOf(kc, `/api/v1/namespaces/${ns}/secrets`, { resourceVersion: rv });
    const err = await expired.done;
    expect(err).toBeNull();
    expect(expired.doneCalls()).toBe(1);
    expect(expired.events).toEqual([
      {
        type: 'ERROR',
        object: {
          kind: 'Status',
          apiVersion: 'v1',
          metadata: {},
          status: 'Failure',
          message: matching(new RegExp(`^too old resource version: ${rv} \\(\\d+\\)$`)),
          reason: 'Expired',
          code: 410,
        },
      },
    ]);
    expect(kube.expiredWatches()).toBe(1);

    // Resuming from a fresh list's resourceVersion works again and sees only newer changes.
    const fresh = await core.listNamespacedSecret({ namespace: ns });
    const live = await watchOf(kc, `/api/v1/namespaces/${ns}/secrets`, {
      resourceVersion: fresh.metadata?.resourceVersion ?? '',
    });
    await core.deleteNamespacedSecret({ name: 's1', namespace: ns });
    await until(() => live.events.length === 1, 'the DELETED event');
    expect(live.events[0]).toMatchObject({ type: 'DELETED', object: { metadata: { name: 's1' } } });
    // A DELETED event carries the deletion's own, newer resourceVersion.
    expect(Number(live.events[0]?.object.metadata.resourceVersion)).toBeGreaterThan(
      Number(fresh.metadata?.resourceVersion),
    );
    live.abort();
  });

  it('dropWatches() ends every open watch: the done callback gets an error; timeoutSeconds ends one with done(null)', async () => {
    const w = await watchOf(kc, `/api/v1/namespaces/${ns}/pods`);
    await until(() => kube.openWatches() >= 1, 'the watch to be open');
    kube.dropWatches();
    const err = (await w.done) as Error & { code?: string; type?: string };
    expect(err).toBeInstanceOf(Error);
    // node-fetch's body fails with "Premature close" when the chunked response is cut short.
    expect(err).toMatchObject({ name: 'Error', message: 'Premature close', code: 'ERR_STREAM_PREMATURE_CLOSE' });
    expect(w.doneCalls()).toBe(1);
    await until(() => kube.openWatches() === 0, 'the server to forget the watch');

    const timed = await watchOf(kc, `/api/v1/namespaces/${ns}/pods`, { timeoutSeconds: 1 });
    expect(await timed.done).toBeNull();

    kube.refuseWatches(true);
    const refused = await watchOf(kc, `/api/v1/namespaces/${ns}/pods`);
    const rerr = (await refused.done) as Error & { code?: string; type?: string };
    kube.refuseWatches(false);
    // A connection that dies before any response: node-fetch's FetchError, thrown from fetch itself.
    expect(rerr).toMatchObject({
      name: 'FetchError',
      type: 'system',
      code: 'ECONNRESET',
      message: matching(
        /^request to http:\/\/127\.0\.0\.1:\d+\/api\/v1\/namespaces\/default\/pods\?watch=true failed, reason: socket hang up$/,
      ),
    });
    expect(refused.doneCalls()).toBe(1);

    // A watch refused with a Status (here a 400 for a bad selector) reaches done() as a bare Error: status text and
    // statusCode, no body.
    const bad = await watchOf(kc, `/api/v1/namespaces/${ns}/pods`, { labelSelector: 'a in b' });
    expect(await bad.done).toMatchObject({ message: 'Bad Request', statusCode: 400 });
  });

  it('an informer relists by itself after a 410, but stops on a dropped connection until started again', async () => {
    const informer = makeInformer(kc, `/api/v1/namespaces/${ns}/configmaps`, () =>
      core.listNamespacedConfigMap({ namespace: ns }),
    );
    const added: string[] = [];
    const errors: unknown[] = [];
    informer.on('add', (o) => added.push(o.metadata?.name ?? ''));
    informer.on('error', (e) => errors.push(e));
    await informer.start();
    await until(() => kube.openWatches() === 1, 'the informer watch');
    await core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: 'inf-1' } } });
    await until(() => added.includes('inf-1'), 'inf-1 added');

    kube.dropWatches();
    await until(() => errors.length === 1, 'the informer error');
    expect(errors[0]).toMatchObject({ message: 'Premature close' });
    await sleep(300);
    expect(kube.openWatches()).toBe(0);

    await core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: 'inf-2' } } });
    kube.compactHistory();
    const expiredBefore = kube.expiredWatches();
    const requestsBefore = kube.requests.length;
    await informer.start();
    await until(() => added.includes('inf-2'), 'inf-2 added after the relist');
    expect(kube.expiredWatches()).toBe(expiredBefore + 1);
    const after = kube.requests.slice(requestsBefore).filter((r) => r.path.endsWith('/configmaps'));
    expect(after.map((r) => (r.query.watch ? `watch@${r.query.resourceVersion ? 'rv' : '-'}` : 'list'))).toEqual([
      'watch@rv',
      'list',
      'watch@rv',
    ]);
    expect(errors).toHaveLength(1);
    await informer.stop();
  });

  it('BOOKMARK events arrive on an idle watch with allowWatchBookmarks', async () => {
    const w = await watchOf(kc, `/api/v1/namespaces/ml/pods`, { allowWatchBookmarks: true });
    await until(() => w.events.length > 0, 'a bookmark', 5000);
    expect(w.events[0]).toEqual({
      type: 'BOOKMARK',
      object: { kind: 'Pod', apiVersion: 'v1', metadata: { resourceVersion: matching(/^\d+$/) } },
    });
    w.abort();
  });

  it('a label-selector watch turns objects that stop/start matching into DELETED/ADDED', async () => {
    const w = await watchOf(kc, `/api/v1/namespaces/${ns}/configmaps`, { labelSelector: 'team in (a),tier!=x' });
    await core.createNamespacedConfigMap({
      namespace: ns,
      body: { metadata: { name: 'sel', labels: { team: 'a' } }, data: { k: 'v' } },
    });
    const merge = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
    await core.patchNamespacedConfigMap(
      { name: 'sel', namespace: ns, body: { metadata: { labels: { team: 'b' } } } },
      merge,
    );
    await core.patchNamespacedConfigMap(
      { name: 'sel', namespace: ns, body: { metadata: { labels: { team: 'a' } } } },
      merge,
    );
    // client-node's default patch type is JSON Patch (RFC 6902).
    await core.patchNamespacedConfigMap({
      name: 'sel',
      namespace: ns,
      body: [{ op: 'add', path: '/metadata/labels/tier', value: 'x' }],
    });
    await until(() => w.events.length >= 4, 'four events');
    expect(w.events.map((e) => e.type)).toEqual(['ADDED', 'DELETED', 'ADDED', 'DELETED']);
    // The DELETED of an object that stopped matching carries its last matching content, at the new revision.
    expect(w.events[1]?.object.metadata.labels).toEqual({ team: 'a' });
    expect(Number(w.events[1]?.object.metadata.resourceVersion)).toBeGreaterThan(
      Number(w.events[0]?.object.metadata.resourceVersion),
    );
    const cm = await core.readNamespacedConfigMap({ name: 'sel', namespace: ns });
    expect(cm.metadata?.labels).toEqual({ team: 'a', tier: 'x' });
    // A merge patch body sent as JSON Patch is a 400, as from the real apiserver.
    const bad = statusOf(
      await rejection(core.patchNamespacedConfigMap({ name: 'sel', namespace: ns, body: { data: { k: 'w' } } })),
    );
    expect(bad).toMatchObject({ code: 400, reason: 'BadRequest' });
    w.abort();
  });

  it('errors are Status objects with the apiserver codes and reasons', async () => {
    expect(statusOf(await rejection(core.readNamespacedPod({ name: 'nope', namespace: ns })))).toMatchObject({
      kind: 'Status',
      code: 404,
      reason: 'NotFound',
      message: 'pods "nope" not found',
    });
    expect(statusOf(await rejection(batch.readNamespacedJob({ name: 'nope', namespace: ns })))).toMatchObject({
      code: 404,
      message: 'jobs.batch "nope" not found',
    });
    expect(
      statusOf(await rejection(batch.createNamespacedJob({ namespace: 'nowhere', body: jobBody('x', ['true']) }))),
    ).toMatchObject({ code: 404, reason: 'NotFound', message: 'namespaces "nowhere" not found' });
    expect(
      statusOf(await rejection(batch.createNamespacedJob({ namespace: ns, body: jobBody('hello', ['true']) }))),
    ).toMatchObject({ code: 409, reason: 'AlreadyExists', message: 'jobs.batch "hello" already exists' });
    const noImage = jobBody('no-image', ['true']);
    delete noImage.spec?.template.spec?.containers[0]?.image;
    expect(statusOf(await rejection(batch.createNamespacedJob({ namespace: ns, body: noImage })))).toMatchObject({
      code: 422,
      reason: 'Invalid',
      message: 'Job.batch "no-image" is invalid: spec.template.spec.containers[0].image: Required value',
    });
    const always = jobBody('always', ['true'], {}, { restartPolicy: 'Always' });
    expect(statusOf(await rejection(batch.createNamespacedJob({ namespace: ns, body: always }))).message).toBe(
      'Job.batch "always" is invalid: spec.template.spec.restartPolicy: Required value: valid values: "OnFailure", "Never"',
    );
    expect(
      statusOf(await rejection(batch.createNamespacedJob({ namespace: ns, body: jobBody('Bad_Name', ['true']) }))),
    ).toMatchObject({ code: 422, reason: 'Invalid', message: containing('RFC 1123 subdomain') });
    const conflictJob = await batch.readNamespacedJob({ name: 'hello', namespace: ns });
    conflictJob.metadata = { ...conflictJob.metadata, resourceVersion: '1', labels: { x: 'y' } };
    expect(
      statusOf(await rejection(batch.replaceNamespacedJob({ name: 'hello', namespace: ns, body: conflictJob }))),
    ).toMatchObject({ code: 409, reason: 'Conflict' });

    const anon = new KubeConfig();
    anon.loadFromOptions({
      clusters: [{ name: 'c', server: kube.url, skipTLSVerify: true }],
      users: [{ name: 'u', token: 'wrong' }],
      contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
      currentContext: 'x',
    });
    const unauth = await rejection(anon.makeApiClient(CoreV1Api).listNamespacedPod({ namespace: ns }));
    expect(unauth).toBeInstanceOf(ApiException);
    expect((unauth as ApiException<unknown>).code).toBe(401);
    expect((await fetch(`${kube.url}/api/v1/namespaces/default/pods`)).status).toBe(401);

    // Env and volume sources are checked as the apiserver checks them (the outputs wiring relies on these).
    const main = (c: Record<string, unknown>) => [{ name: 'main', image: BUSYBOX, command: ['true'], ...c }];
    const invalid = async (name: string, pod: Record<string, unknown>) =>
      statusOf(await rejection(batch.createNamespacedJob({ namespace: ns, body: jobBody(name, ['true'], {}, pod) })));
    const both = { name: 'T', value: 'x', valueFrom: { secretKeyRef: { name: 's', key: 'k' } } };
    expect(await invalid('env-both', { containers: main({ env: [both] }) })).toMatchObject({
      code: 422,
      message: containing('env[0].valueFrom: Invalid value: "": may not be specified when `value` is not empty'),
    });
    const noKey = { name: 'T', valueFrom: { secretKeyRef: { name: 's' } } };
    expect((await invalid('env-nokey', { containers: main({ env: [noKey] }) })).message).toContain(
      'env[0].valueFrom.secretKeyRef.key: Required value',
    );
    const twoSources = {
      name: 'T',
      valueFrom: { secretKeyRef: { name: 's', key: 'k' }, fieldRef: { fieldPath: 'x' } },
    };
    expect((await invalid('env-two', { containers: main({ env: [twoSources] }) })).message).toContain(
      'may not have more than one field specified at a time',
    );
    // A quantity that does not parse fails decoding (resource.Quantity's UnmarshalJSON): 400, not 422.
    const badLimit = { volumes: [{ name: 'o', emptyDir: { sizeLimit: 'lots' } }] };
    expect(await invalid('size-limit', badLimit)).toMatchObject({
      code: 400,
      reason: 'BadRequest',
      message:
        'Job in version "v1" cannot be handled as a Job: quantities must match the regular expression \'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$\'',
    });
    const twoTypes = { volumes: [{ name: 'o', emptyDir: {}, configMap: { name: 'c' } }] };
    expect((await invalid('two-types', twoTypes)).message).toContain('may not specify more than 1 volume type');
    const sameMount = {
      volumes: [
        { name: 'a', emptyDir: {} },
        { name: 'b', emptyDir: {} },
      ],
      containers: main({
        volumeMounts: [
          { name: 'a', mountPath: '/mnt/x' },
          { name: 'b', mountPath: '/mnt/x' },
        ],
      }),
    };
    expect((await invalid('same-mount', sameMount)).message).toContain('volumeMounts[1].mountPath: Invalid value');

    // generateName, and the namespace object.
    const gen = await core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { generateName: 'gen-' } } });
    expect(gen.metadata?.name).toMatch(/^gen-[a-z0-9]{5}$/);
    expect((await core.readNamespace({ name: 'ml' })).status?.phase).toBe('Active');
  });

  it('Foreground deletion removes the pods before the Job; the Job carries the foregroundDeletion finalizer meanwhile', async () => {
    await batch.createNamespacedJob({ namespace: ns, body: jobBody('fg', SLEEPER) });
    await kube.waitFor(() => podsOfJob('fg')[0]?.status?.phase === 'Running', 20_000, 'fg pod running');
    const jobs = await watchOf(kc, `/apis/batch/v1/namespaces/${ns}/jobs`, { fieldSelector: 'metadata.name=fg' });
    const pods = await watchOf(kc, `/api/v1/namespaces/${ns}/pods`, { labelSelector: 'job-name=fg' });
    await until(() => jobs.events.length && pods.events.length, 'initial events');
    const res = await batch.deleteNamespacedJob({ name: 'fg', namespace: ns, propagationPolicy: 'Foreground' });
    // While dependents remain the response body is the Job itself, which client-node deserializes as a V1Status:
    // kind 'Job', the Job's status object under `status`, and metadata cut down to V1ListMeta.
    expect(res).toMatchObject({ kind: 'Job', apiVersion: 'batch/v1', status: { active: 1 } });
    await until(() => jobs.events.some((e) => e.type === 'DELETED'), 'the Job to go');
    const all = [...jobs.events.map((e) => ({ ...e, k: 'job' })), ...pods.events.map((e) => ({ ...e, k: 'pod' }))].sort(
      (a, b) => Number(a.object.metadata.resourceVersion) - Number(b.object.metadata.resourceVersion),
    );
    const marked = all.findIndex((e) => e.k === 'job' && e.object.metadata.deletionTimestamp);
    const podGone = all.findIndex((e) => e.k === 'pod' && e.type === 'DELETED');
    const jobGone = all.findIndex((e) => e.k === 'job' && e.type === 'DELETED');
    expect(all[marked]?.object.metadata.finalizers).toEqual(['foregroundDeletion']);
    expect(marked).toBeLessThan(podGone);
    expect(podGone).toBeLessThan(jobGone);
    // The pod was stopped gracefully by its TERM trap, and shows it before it went.
    const lastPod = pods.events.filter((e) => e.type === 'MODIFIED').at(-1)?.object;
    expect(lastPod?.status?.containerStatuses?.[0]?.state.terminated?.exitCode).toBe(143);
    expect(kube.list('Pod', ns).filter((p: V1Pod) => p.metadata?.labels?.['job-name'] === 'fg')).toEqual([]);
    jobs.abort();
    pods.abort();
  });

  it('deleting a Job without a propagationPolicy orphans its pods (batch/v1 default); Background deletes them', async () => {
    await batch.createNamespacedJob({ namespace: ns, body: jobBody('orphaner', SLEEPER) });
    await kube.waitFor(() => podsOfJob('orphaner')[0]?.status?.phase === 'Running', 20_000, 'pod running');
    const info = await batch.deleteNamespacedJobWithHttpInfo({ name: 'orphaner', namespace: ns });
    expect(info.headers.warning).toMatch(/child pods are preserved by default/);
    await kube.waitFor(() => !getJob('orphaner'), 5000, 'the Job to go');
    await kube.waitFor(() => !podsOfJob('orphaner')[0]?.metadata?.finalizers, 5000, 'the tracking finalizer to go');
    const [orphan] = podsOfJob('orphaner');
    expect(orphan?.metadata?.ownerReferences).toBeUndefined();
    expect(orphan?.status?.phase).toBe('Running');
    await core.deleteNamespacedPod({ name: orphan?.metadata?.name ?? '', namespace: ns, gracePeriodSeconds: 0 });

    await batch.createNamespacedJob({ namespace: ns, body: jobBody('bg', SLEEPER) });
    await kube.waitFor(() => podsOfJob('bg')[0]?.status?.phase === 'Running', 20_000, 'pod running');
    const status = await batch.deleteNamespacedJob({ name: 'bg', namespace: ns, propagationPolicy: 'Background' });
    expect(status).toMatchObject({
      kind: 'Status',
      status: 'Success',
      details: { name: 'bg', group: 'batch', kind: 'jobs' },
    });
    expect(getJob('bg')).toBeUndefined();
    await kube.waitFor(() => podsOfJob('bg').length === 0, 10_000, 'the pods to go');
  });

  it('eviction sets DisruptionTarget (EvictionByEvictionAPI) and deletes gracefully; podFailurePolicy Ignore replaces the pod uncounted', async () => {
    await core.createNamespacedPod({
      namespace: ns,
      body: {
        metadata: { name: 'evictee' },
        spec: { restartPolicy: 'Never', containers: [{ name: 'main', image: BUSYBOX, command: SLEEPER }] },
      },
    });
    await kube.waitFor(() => getPod('evictee')?.status?.phase === 'Running', 20_000, 'running');
    const w = await watchOf(kc, `/api/v1/namespaces/${ns}/pods`, { fieldSelector: 'metadata.name=evictee' });
    await core.createNamespacedPodEviction({
      name: 'evictee',
      namespace: ns,
      body: { apiVersion: 'policy/v1', kind: 'Eviction', metadata: { name: 'evictee', namespace: ns } },
    });
    await until(() => w.events.some((e) => e.type === 'DELETED'), 'the pod to go');
    const flagged = w.events.find((e) => e.object.status?.conditions?.some((c) => c.type === 'DisruptionTarget'));
    expect(flagged?.object.status?.conditions).toContainEqual(
      expect.objectContaining({
        type: 'DisruptionTarget',
        status: 'True',
        reason: 'EvictionByEvictionAPI',
        message: 'Eviction API: evicting',
      }),
    );
    expect(flagged?.object.metadata.deletionTimestamp).toBeUndefined();
    expect(w.events.some((e) => e.object.metadata.deletionGracePeriodSeconds === 30)).toBe(true);
    w.abort();

    await batch.createNamespacedJob({
      namespace: ns,
      body: jobBody('evicted-job', SLEEPER, {
        backoffLimit: 0,
        podFailurePolicy: { rules: [{ action: 'Ignore', onPodConditions: [{ type: 'DisruptionTarget' }] }] },
      }),
    });
    await kube.waitFor(() => podsOfJob('evicted-job')[0]?.status?.phase === 'Running', 20_000, 'running');
    const first = podsOfJob('evicted-job')[0]?.metadata?.name ?? '';
    await kube.evictPod(ns, first);
    await kube.waitFor(
      () => podsOfJob('evicted-job').some((p) => p.metadata?.name !== first && p.status?.phase === 'Running'),
      20_000,
      'a replacement pod',
    );
    const job = await batch.readNamespacedJob({ name: 'evicted-job', namespace: ns });
    expect(job.status?.failed).toBeUndefined();
    expect(job.status?.conditions).toBeUndefined();
    await batch.deleteNamespacedJob({ name: 'evicted-job', namespace: ns, propagationPolicy: 'Background' });
  });

  it('disruptPod(TerminationByKubelet) leaves a Failed pod with the condition, counted as a Job failure', async () => {
    await batch.createNamespacedJob({ namespace: ns, body: jobBody('pressure', SLEEPER) });
    await kube.waitFor(() => podsOfJob('pressure')[0]?.status?.phase === 'Running', 20_000, 'running');
    const name = podsOfJob('pressure')[0]?.metadata?.name ?? '';
    await kube.disruptPod(ns, name);
    const pod = await core.readNamespacedPod({ name, namespace: ns });
    expect(pod.status).toMatchObject({ phase: 'Failed', reason: 'Evicted' });
    expect(pod.status?.conditions).toContainEqual(
      expect.objectContaining({ type: 'DisruptionTarget', status: 'True', reason: 'TerminationByKubelet' }),
    );
    await kube.waitFor(() => hasCond(getJob('pressure'), 'Failed'), 10_000, 'the Job to fail');

    await core.createNamespacedPod({
      namespace: ns,
      body: {
        metadata: { name: 'preempted' },
        spec: { restartPolicy: 'Never', containers: [{ name: 'main', image: BUSYBOX, command: SLEEPER }] },
      },
    });
    await kube.waitFor(() => getPod('preempted')?.status?.phase === 'Running', 20_000, 'running');
    const w = await watchOf(kc, `/api/v1/namespaces/${ns}/pods`, { fieldSelector: 'metadata.name=preempted' });
    await kube.disruptPod(ns, 'preempted', 'PreemptionByScheduler');
    await until(() => w.events.some((e) => e.type === 'DELETED'), 'the preempted pod to go');
    expect(w.events.find((e) => hasCond(e.object, 'DisruptionTarget'))?.object.status?.conditions).toContainEqual(
      expect.objectContaining({
        reason: 'PreemptionByScheduler',
        message: 'default-scheduler: preempting to accommodate a higher priority pod',
      }),
    );
    w.abort();
  });

  it('an unschedulable pod stays Pending with PodScheduled=False/Unschedulable and a FailedScheduling event', async () => {
    await batch.createNamespacedJob({
      namespace: ns,
      body: jobBody('nowhere', ['true'], {}, { nodeSelector: { accelerator: 'tpu-v9' } }),
    });
    await kube.waitFor(
      () => podsOfJob('nowhere')[0]?.status?.conditions?.some((c) => c.reason === 'Unschedulable') ?? false,
      10_000,
      'unschedulable',
    );
    const pod = podsOfJob('nowhere')[0] as V1Pod;
    expect(pod.status?.phase).toBe('Pending');
    expect(pod.status?.conditions).toContainEqual(
      expect.objectContaining({
        type: 'PodScheduled',
        status: 'False',
        reason: 'Unschedulable',
        message:
          "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector. preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling.",
      }),
    );
    const events = await core.listNamespacedEvent({
      namespace: ns,
      fieldSelector: `involvedObject.name=${pod.metadata?.name},involvedObject.kind=Pod`,
    });
    expect(events.items).toContainEqual(
      expect.objectContaining({
        type: 'Warning',
        reason: 'FailedScheduling',
        source: { component: 'default-scheduler' },
      }),
    );

    await core.createNamespacedPod({
      namespace: ns,
      body: {
        metadata: { name: 'too-big' },
        spec: { containers: [{ name: 'main', image: BUSYBOX, resources: { requests: { cpu: '64', memory: '1Gi' } } }] },
      },
    });
    await kube.waitFor(() => !!getPod('too-big')?.status?.conditions?.[0]?.message, 10_000, 'too-big');
    expect(getPod('too-big')?.status?.conditions?.[0]?.message).toBe(
      '0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling.',
    );
    // An unscheduled pod has no kubelet to wait for: deleting it is immediate.
    await core.deleteNamespacedPod({ name: 'too-big', namespace: ns });
    expect(getPod('too-big')).toBeUndefined();
    await batch.deleteNamespacedJob({ name: 'nowhere', namespace: ns, propagationPolicy: 'Background' });
  });

  it('a custom object round-trips through CustomObjectsApi, with a watch and the status subresource', async () => {
    const group = 'training.example.com';
    const version = 'v1';
    const plural = 'trainjobs';
    const body = {
      apiVersion: `${group}/${version}`,
      kind: 'TrainJob',
      metadata: { name: 'tj' },
      spec: { replicas: 1 },
    };
    // No CRD declares the group yet: the mux's plain 404, as on a real cluster.
    const undeclared = await rejection(
      custom.createNamespacedCustomObject({ group, version, namespace: ns, plural, body }),
    );
    expect(undeclared).toMatchObject({ code: 404, body: '404 page not found\n' });
    await kc.makeApiClient(ApiextensionsV1Api).createCustomResourceDefinition({
      body: {
        apiVersion: 'apiextensions.k8s.io/v1',
        kind: 'CustomResourceDefinition',
        metadata: { name: `${plural}.${group}` },
        spec: {
          group,
          names: { plural, kind: 'TrainJob' },
          scope: 'Namespaced',
          versions: [
            {
              name: version,
              served: true,
              storage: true,
              subresources: { status: {} },
              // client-node serializes its models by property name: the wire's x-kubernetes-... keys are spelled so.
              schema: { openAPIV3Schema: { type: 'object', x_kubernetes_preserve_unknown_fields: true } },
            },
          ],
        },
      },
    });
    const w = await watchOf(kc, `/apis/${group}/${version}/namespaces/${ns}/${plural}`);
    const created = (await custom.createNamespacedCustomObject({ group, version, namespace: ns, plural, body })) as {
      metadata: { uid: string; generation: number };
    };
    expect(created.metadata.generation).toBe(1);
    expect(kube.created.at(-1)).toEqual({ apiVersion: `${group}/${version}`, kind: 'TrainJob', namespace: ns, body });
    const got = (await custom.getNamespacedCustomObject({ group, version, namespace: ns, plural, name: 'tj' })) as {
      kind: string;
      spec: unknown;
    };
    expect(got).toMatchObject({ kind: 'TrainJob', spec: { replicas: 1 } });
    kube.setCustomStatus(group, version, plural, ns, 'tj', { state: { phase: 'Running' } });
    await custom.patchNamespacedCustomObjectStatus(
      { group, version, namespace: ns, plural, name: 'tj', body: { status: { state: { phase: 'Done' } } } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
    await custom.patchNamespacedCustomObject({
      group,
      version,
      namespace: ns,
      plural,
      name: 'tj',
      body: [{ op: 'replace', path: '/spec/replicas', value: 2 }],
    });
    const list = (await custom.listNamespacedCustomObject({ group, version, namespace: ns, plural })) as {
      kind: string;
      items: Array<{ kind: string; metadata: { generation: number }; status: unknown }>;
    };
    expect(list.kind).toBe('TrainJobList');
    expect(list.items[0]).toMatchObject({
      kind: 'TrainJob',
      metadata: { generation: 2 },
      status: { state: { phase: 'Done' } },
    });
    const deleted: unknown = await custom.deleteNamespacedCustomObject({
      group,
      version,
      namespace: ns,
      plural,
      name: 'tj',
    });
    expect(deleted).toMatchObject({ kind: 'Status', status: 'Success', details: { name: 'tj', group, kind: plural } });
    await until(() => w.events.some((e) => e.type === 'DELETED'), 'DELETED');
    expect(w.events.map((e) => e.type)).toEqual(['ADDED', 'MODIFIED', 'MODIFIED', 'MODIFIED', 'DELETED']);
    expect(w.events[1]?.object.status).toEqual({ state: { phase: 'Running' } });
    w.abort();
  });

  it('restartPolicy OnFailure restarts the container in the same pod; both instances are readable', async () => {
    const script =
      'if [ -f /scratch/once ]; then echo second-instance; else touch /scratch/once; echo first-instance; exit 7; fi';
    await batch.createNamespacedJob({
      namespace: ns,
      body: jobBody(
        'again',
        ['sh', '-c', script],
        { backoffLimit: 3 },
        {
          restartPolicy: 'OnFailure',
          volumes: [{ name: 'scratch', emptyDir: {} }],
          containers: [
            {
              name: 'main',
              image: BUSYBOX,
              command: ['sh', '-c', script],
              volumeMounts: [{ name: 'scratch', mountPath: '/scratch' }],
            },
          ],
        },
      ),
    });
    await kube.waitFor(() => hasCond(getJob('again'), 'Complete'), 20_000, 'again to complete');
    const [pod] = podsOfJob('again');
    const name = pod?.metadata?.name ?? '';
    const cs = pod?.status?.containerStatuses?.[0];
    expect(pod?.status?.phase).toBe('Succeeded');
    expect(cs?.restartCount).toBe(1);
    expect(cs?.lastState?.terminated).toMatchObject({ exitCode: 7, reason: 'Error' });
    expect(cs?.state?.terminated).toMatchObject({ exitCode: 0, reason: 'Completed' });
    expect(await core.readNamespacedPodLog({ name, namespace: ns, previous: true })).toBe('first-instance\n');
    expect(await core.readNamespacedPodLog({ name, namespace: ns })).toBe('second-instance\n');
    const out = new PassThrough();
    let text = '';
    out.on('data', (b: Buffer) => (text += b.toString()));
    const ended = new Promise<void>((r) => out.on('end', () => r()));
    await new Log(kc).log(ns, name, 'main', out, { previous: true });
    await ended;
    expect(text).toBe('first-instance\n');
  });

  it('the kubelet wires env (secret, configMap, fieldRef), volumes, OOM kills and image pull failures', async () => {
    await core.createNamespacedSecret({
      namespace: ns,
      body: { metadata: { name: 'creds' }, stringData: { token: 's3cret' } },
    });
    const secret = await core.readNamespacedSecret({ name: 'creds', namespace: ns });
    expect(secret.data).toEqual({ token: Buffer.from('s3cret').toString('base64') });
    expect(secret.type).toBe('Opaque');
    await core.createNamespacedConfigMap({
      namespace: ns,
      body: { metadata: { name: 'cfg' }, data: { mode: 'fast' } },
    });
    await core.createNamespacedPod({
      namespace: ns,
      body: {
        metadata: { name: 'wired', labels: { app: 'w' } },
        spec: {
          restartPolicy: 'Never',
          volumes: [
            { name: 'c', configMap: { name: 'cfg', items: [{ key: 'mode', path: 'sub/mode.txt' }] } },
            { name: 's', secret: { secretName: 'creds' } },
          ],
          containers: [
            {
              name: 'main',
              image: BUSYBOX,
              command: ['sh', '-c'],
              args: ['echo "$TOKEN $MODE $POD $(APP_LABEL)"; cat /c/sub/mode.txt /s/token'],
              env: [
                { name: 'TOKEN', valueFrom: { secretKeyRef: { name: 'creds', key: 'token' } } },
                { name: 'MODE', valueFrom: { configMapKeyRef: { name: 'cfg', key: 'mode' } } },
                { name: 'POD', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
                { name: 'APP_LABEL', valueFrom: { fieldRef: { fieldPath: "metadata.labels['app']" } } },
              ],
              volumeMounts: [
                { name: 'c', mountPath: '/c' },
                { name: 's', mountPath: '/s' },
              ],
            },
          ],
        },
      },
    });
    await kube.waitFor(() => getPod('wired')?.status?.phase === 'Succeeded', 20_000, 'wired');
    expect(await core.readNamespacedPodLog({ name: 'wired', namespace: ns })).toBe('s3cret fast wired w\nfasts3cret');

    await core.createNamespacedPod({
      namespace: ns,
      body: {
        metadata: { name: 'staged' },
        spec: {
          restartPolicy: 'Never',
          volumes: [{ name: 'work', emptyDir: {} }],
          initContainers: [
            {
              name: 'prepare',
              image: BUSYBOX,
              command: ['sh', '-c', 'echo prepared > /work/state; echo init done'],
              volumeMounts: [{ name: 'work', mountPath: '/work' }],
            },
          ],
          containers: [
            {
              name: 'main',
              image: BUSYBOX,
              command: ['cat', '/work/state'],
              volumeMounts: [{ name: 'work', mountPath: '/work' }],
            },
            { name: 'side', image: BUSYBOX, command: ['echo', 'side'] },
          ],
        },
      },
    });
    await kube.waitFor(() => getPod('staged')?.status?.phase === 'Succeeded', 20_000, 'staged');
    const staged = await core.readNamespacedPod({ name: 'staged', namespace: ns });
    expect(staged.status?.initContainerStatuses?.[0]?.state?.terminated).toMatchObject({
      exitCode: 0,
      reason: 'Completed',
    });
    expect(await core.readNamespacedPodLog({ name: 'staged', namespace: ns, container: 'main' })).toBe('prepared\n');
    expect(await core.readNamespacedPodLog({ name: 'staged', namespace: ns, container: 'prepare' })).toBe(
      'init done\n',
    );
    expect(statusOf(await rejection(core.readNamespacedPodLog({ name: 'staged', namespace: ns })))).toMatchObject({
      code: 400,
      message:
        'a container name must be specified for pod staged, choose one of: [main side] or one of the init containers: [prepare]',
    });

    await core.createNamespacedPod({
      namespace: ns,
      body: {
        metadata: { name: 'oom' },
        spec: {
          restartPolicy: 'Never',
          containers: [
            {
              name: 'main',
              image: BUSYBOX,
              command: ['dd', 'if=/dev/zero', 'of=/dev/null', 'bs=64M', 'count=1'],
              resources: { limits: { memory: '16Mi' } },
            },
          ],
        },
      },
    });
    await kube.waitFor(() => getPod('oom')?.status?.phase === 'Failed', 30_000, 'oom');
    expect(getPod('oom')?.status?.containerStatuses?.[0]?.state.terminated).toMatchObject({
      exitCode: 137,
      reason: 'OOMKilled',
    });

    await core.createNamespacedPod({
      namespace: ns,
      body: {
        metadata: { name: 'nopull' },
        spec: { containers: [{ name: 'main', image: '127.0.0.1:1/nope/busybox:1' }] },
      },
    });
    const reasons = new Set<string>();
    await kube.waitFor(
      () => {
        const r = getPod('nopull')?.status?.containerStatuses?.[0]?.state?.waiting?.reason as string;
        if (r) reasons.add(r);
        return reasons.has('ErrImagePull') && reasons.has('ImagePullBackOff');
      },
      20_000,
      'pull failures',
    );
    const err = statusOf(await rejection(core.readNamespacedPodLog({ name: 'nopull', namespace: ns })));
    expect(err).toMatchObject({ code: 400, reason: 'BadRequest' });
    expect(err.message).toMatch(/^container "main" in pod "nopull" is waiting to start: /);
    // Log.log drops the Status body of a 400: only the code survives.
    const logErr = await rejection(new Log(kc).log(ns, 'nopull', 'main', new PassThrough()));
    expect(logErr).toMatchObject({ code: 400, body: undefined });
    const events = await core.listNamespacedEvent({ namespace: ns, fieldSelector: 'involvedObject.name=nopull' });
    expect(events.items.some((e) => e.type === 'Warning' && e.reason === 'Failed')).toBe(true);
    await core.deleteNamespacedPod({ name: 'nopull', namespace: ns });
    await kube.waitFor(() => !getPod('nopull'), 10_000, 'nopull to go');
  });

  it('pulls a private image with the credentials of an imagePullSecret', async () => {
    const registry = await startRegistry();
    const image = `${registry.host}/team/busybox:1`;
    const cfgDir = tempDir('liftoff-fakekube-dockercfg-');
    const d = (...args: string[]) => execFileSync('docker', ['--config', cfgDir, ...args], { stdio: 'pipe' });
    d('tag', BUSYBOX, image);
    execFileSync('docker', ['--config', cfgDir, 'login', '-u', registry.username, '--password-stdin', registry.host], {
      input: registry.password,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    d('push', image);
    d('rmi', image);
    try {
      const auths = { [registry.host]: { username: registry.username, password: registry.password } };
      await core.createNamespacedSecret({
        namespace: ns,
        body: {
          metadata: { name: 'regcred' },
          type: 'kubernetes.io/dockerconfigjson',
          data: { '.dockerconfigjson': Buffer.from(JSON.stringify({ auths })).toString('base64') },
        },
      });
      await core.createNamespacedPod({
        namespace: ns,
        body: {
          metadata: { name: 'private' },
          spec: {
            restartPolicy: 'Never',
            imagePullSecrets: [{ name: 'regcred' }],
            containers: [{ name: 'main', image, command: ['echo', 'pulled'] }],
          },
        },
      });
      await kube.waitFor(() => getPod('private')?.status?.phase === 'Succeeded', 30_000, 'private');
      expect(await core.readNamespacedPodLog({ name: 'private', namespace: ns })).toBe('pulled\n');
      const events = await core.listNamespacedEvent({ namespace: ns, fieldSelector: 'involvedObject.name=private' });
      expect(events.items.map((e) => e.reason)).toContain('Pulling');
    } finally {
      execFileSync('docker', ['rmi', '-f', image], { stdio: 'ignore' });
    }
  });

  it('suspend, activeDeadlineSeconds and ttlSecondsAfterFinished', async () => {
    await batch.createNamespacedJob({ namespace: ns, body: jobBody('later', ['true'], { suspend: true }) });
    await kube.waitFor(() => hasCond(getJob('later'), 'Suspended'), 5000, 'suspended');
    expect(podsOfJob('later')).toEqual([]);
    await batch.patchNamespacedJob(
      { name: 'later', namespace: ns, body: { spec: { suspend: false } } },
      setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch),
    );
    await kube.waitFor(() => hasCond(getJob('later'), 'Complete'), 20_000, 'later to complete');
    expect(getJob('later')?.metadata.generation).toBe(2);

    await batch.createNamespacedJob({
      namespace: ns,
      body: jobBody('deadline', SLEEPER, { activeDeadlineSeconds: 1 }),
    });
    await kube.waitFor(() => hasCond(getJob('deadline'), 'Failed'), 20_000, 'deadline');
    expect(getJob('deadline')?.status?.conditions?.at(-1)).toMatchObject({
      type: 'Failed',
      reason: 'DeadlineExceeded',
      message: 'Job was active longer than specified deadline',
    });

    await batch.createNamespacedJob({ namespace: ns, body: jobBody('ttl', ['true'], { ttlSecondsAfterFinished: 1 }) });
    await kube.waitFor(() => !!getJob('ttl')?.status?.completionTime, 20_000, 'ttl to complete');
    await kube.waitFor(() => !getJob('ttl') && podsOfJob('ttl').length === 0, 10_000, 'ttl cleanup');
  });

  it('decodes as kube-apiserver: Warn/Ignore/Strict, Go booleans, limit/continue with its 410, served CRD versions only', async () => {
    const api = (path: string, init: RequestInit = {}) =>
      fetch(`${kube.url}${path}`, {
        ...init,
        headers: { Authorization: `Bearer ${kube.token}`, 'Content-Type': 'application/json', ...init.headers },
      });
    const cm = (name: string) =>
      JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name }, data: { k: 'v' }, bogus: 1, Data: 2 });
    const base = `/api/v1/namespaces/${ns}/configmaps`;
    const warned = await api(base, { method: 'POST', body: cm('dec-a') });
    expect(warned.status).toBe(201);
    // Field names are case-sensitive (Go's decoder in apimachinery is): `Data` is as unknown as `bogus`.
    expect(warned.headers.get('warning')).toBe('299 - "unknown field \\"bogus\\"", 299 - "unknown field \\"Data\\""');
    expect(await warned.json()).not.toHaveProperty('bogus');
    const ignored = await api(`${base}?fieldValidation=Ignore`, { method: 'POST', body: cm('dec-b') });
    expect([ignored.status, ignored.headers.get('warning')]).toEqual([201, null]);
    const strict = await api(`${base}?fieldValidation=Strict`, { method: 'POST', body: cm('dec-c') });
    expect(strict.status).toBe(400);
    expect(await strict.json()).toMatchObject({
      reason: 'BadRequest',
      message:
        'ConfigMap in version "v1" cannot be handled as a ConfigMap: strict decoding error: unknown field "bogus", unknown field "Data"',
    });

    // strconv.ParseBool: watch=T is a watch; watch=yes is a 400.
    const ctl = new AbortController();
    const watching = await api(`${base}?watch=T&labelSelector=none%3Dnone`, { signal: ctl.signal });
    expect(watching.headers.get('transfer-encoding')).toBe('chunked');
    ctl.abort();
    expect((await api(`${base}?watch=yes`)).status).toBe(400);

    // limit/continue, and a token whose revision was compacted away.
    const page1 = (await (await api(`${base}?limit=1`)).json()) as {
      items: unknown[];
      metadata: { continue: string; remainingItemCount: number };
    };
    expect(page1.items).toHaveLength(1);
    expect(page1.metadata.remainingItemCount).toBeGreaterThan(0);
    const page2 = (await (
      await api(`${base}?limit=1&continue=${encodeURIComponent(page1.metadata.continue)}`)
    ).json()) as { items: Array<{ metadata: { name: string } }> };
    expect(page2.items.map((i) => i.metadata.name)).not.toContain(
      (page1.items[0] as { metadata: { name: string } }).metadata.name,
    );
    // A write after the token's revision, then compaction up to it: the token's revision is gone.
    expect((await api(base, { method: 'POST', body: cm('dec-d') })).status).toBe(201);
    kube.compactHistory();
    const stale = await api(`${base}?limit=1&continue=${encodeURIComponent(page1.metadata.continue)}`);
    expect(stale.status).toBe(410);
    expect(await stale.json()).toMatchObject({ reason: 'Expired', code: 410 });

    // Only a CRD's served versions exist; a wrong type in a built-in is the decoder's 400.
    expect((await api(`/apis/training.example.com/v2/namespaces/${ns}/trainjobs`)).status).toBe(404);
    const six = await api(`/apis/batch/v1/namespaces/${ns}/jobs`, {
      method: 'POST',
      body: JSON.stringify(jobBody('six', ['true'], { backoffLimit: 'six' })),
    });
    expect(six.status).toBe(400);
    expect((await six.json()).message).toBe(
      'Job in version "v1" cannot be handled as a Job: json: cannot unmarshal string into Go struct field JobSpec.spec.backoffLimit of type int32',
    );
  });

  it('serves HTTPS for a kubeconfig with certificate-authority, and in-cluster config', async () => {
    const tlsDir = tempDir('liftoff-fakekube-tls-');
    const cert = await selfSignedCert(tlsDir);
    const secure = await startFakeKube({ tls: { key: cert.key, cert: cert.cert } });
    try {
      expect(secure.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
      const path = await secure.writeKubeconfig(tlsDir, { namespace: 'default' });
      const skc = new KubeConfig();
      skc.loadFromFile(path);
      expect(skc.getCurrentCluster()?.caFile).toBeTruthy();
      const api = skc.makeApiClient(CoreV1Api);
      expect((await api.listNamespacedPod({ namespace: 'default' })).items).toEqual([]);
      const w = await watchOf(skc, '/api/v1/namespaces/default/configmaps');
      await api.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'over-tls' } } });
      await until(() => w.events.length === 1, 'the event over TLS');
      w.abort();

      const { pathPrefix, env } = await secure.writeInClusterFiles(tlsDir);
      const saved = { ...process.env };
      Object.assign(process.env, env);
      try {
        const inCluster = new KubeConfig();
        inCluster.loadFromCluster(pathPrefix);
        const ns2 = await inCluster.makeApiClient(CoreV1Api).readNamespace({ name: 'default' });
        expect(ns2.metadata?.name).toBe('default');
      } finally {
        process.env = saved;
      }
    } finally {
      await secure.close();
    }
  });
});
