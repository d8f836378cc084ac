/**
 * A fake Kubernetes control plane for tests: apiserver wire behaviour (watches, errors, deletion semantics), the
 * Job controller, scheduler, garbage collector and a kubelet that runs pods on the local Docker engine.
 *
 * What @kubernetes/client-node 1.4 does with it (verified by test/kube/fakeKube.test.ts):
 *
 * - A watch resumed from a compacted resourceVersion: the server answers 200 and sends one line
 *   `{"type":"ERROR","object":{kind:'Status',apiVersion:'v1',metadata:{},status:'Failure',
 *   message:'too old resource version: N (M)',reason:'Expired',code:410}}`, then ends the stream (the real cacher
 *   does the same). `Watch.watch` calls the event callback with `('ERROR', <that Status as plain JSON>, <whole line>)`
 *   and then `done(null)` once. done() never carries the 410: remember the ERROR event (`obj.code === 410`) and
 *   re-list. ListWatch/makeInformer does exactly that by itself (resets its resourceVersion, lists, watches again).
 * - A dropped connection (`dropWatches()`): `done(err)` once, err an Error with message 'Premature close' and
 *   code 'ERR_STREAM_PREMATURE_CLOSE' (node-fetch), no statusCode. ListWatch/makeInformer passes it to its 'error'
 *   handlers and does NOT reconnect; call start() again.
 * - A connection that dies before any response (`refuseWatches(true)`): `done(err)` once, err a node-fetch
 *   FetchError (type 'system', code 'ECONNRESET', message 'request to <url> failed, reason: socket hang up');
 *   watch() itself still resolves.
 * - timeoutSeconds running out: the stream just ends, `done(null)`.
 * - A non-200 at watch start (400 bad selector, 401, ...): `done(err)`, err.message the status text ('Bad Request')
 *   and err.statusCode; the Status body is lost.
 * - client-node refuses a plain http:// server unless the kubeconfig cluster has `insecure-skip-tls-verify: true`
 *   ("HTTP protocol is not allowed when skipTLSVerify is not set or false"); writeKubeconfig() sets it for HTTP.
 * - Failed calls throw ApiException: `.code` is the HTTP status, `.body` the raw response text (the Status as a JSON
 *   string). `Log.log` keeps only the code for non-200/non-500 answers (body undefined).
 * - patch* methods send `application/json-patch+json` unless told otherwise (a merge-patch object sent that way is
 *   a 400); pass `setHeaderOptions('Content-Type', PatchStrategy.MergePatch)` as the second argument.
 * - deleteNamespacedJob is typed V1Status: with Foreground (or the batch/v1 default, Orphan) the body is the Job
 *   itself, deserialized as a V1Status (kind 'Job', the Job's status under `status`); Background answers a real
 *   Status `{status:'Success', details:{name, group:'batch', kind:'jobs', uid}}`. Without a policy the response
 *   also carries the apiserver's `Warning: 299 - "child pods are preserved by default ..."` header.
 * - Items of built-in lists carry no kind/apiVersion (neither on the wire nor after deserialization); custom
 *   object lists keep them.
 *
 * - Decoding is kube-apiserver's (decode.ts): unknown fields are dropped with a `Warning` header (400 under
 *   fieldValidation=Strict), a wrong JSON type is a 400 decode error, and client-node's typed create* methods never
 *   send unknown fields at all (their model serializer drops them): send raw JSON through the custom-objects API to
 *   see what a user's manifest does. A custom resource needs a CRD (`customResources`, or create one through the
 *   API); without one its URLs are the plain-text `404 page not found`. Checked against kubectl and the Python
 *   client in test/kube/kubectl.test.ts and test/kube/pythonClient.test.ts.
 *
 * Deliberate simplifications: one node, no taints, no PodDisruptionBudgets (evictions always succeed), NonIndexed
 * Jobs only (completions/parallelism > 1 work; Indexed mode, successPolicy, backoffLimitPerIndex do not), strategic
 * merge patch knows the merge keys of the common core/batch lists only, no server-side apply, continue pages read the
 * current state rather than a snapshot, the containers of a
 * pod do not share a network namespace, probes and sidecar (restartable init) containers are not modelled. Back-offs
 * and pod starts are fast by default (`timing`: FAST_TIMING, Job back-off 0.5 s doubling to 5 s); CLUSTER_TIMING has
 * a real cluster's (10 s to 6 min, a pod start of seconds). Lists and watches in a
 * namespace that does not exist are empty (as on a real cluster); creating there is a 404 `namespaces "x" not found`.
 */
import { execFile } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import Dockerode from 'dockerode';
import { Cluster, FAST_TIMING, POD, type Timing } from './cluster.js';

export { CLUSTER_TIMING, FAST_TIMING, type Timing } from './cluster.js';
import { GarbageCollector, JobController, Scheduler, setCondition } from './controllers.js';
import { Kubelet } from './kubelet.js';
import { ApiServer, evict, type CreatedRecord, type RequestRecord } from './server.js';
import { clone, type KObject, type Pod } from './types.js';

export { INSTANCE_LABEL } from './kubelet.js';

export interface FakeKube {
  /** http(s)://127.0.0.1:<random port> */
  url: string;
  token: string;
  /** Name of the single fake node. */
  nodeName: string;
  /** Value of the `liftoff-test.fakekube` label on every docker container this instance starts. */
  instanceId: string;
  /** Writes a kubeconfig (cluster server=url, user token, one context named 'fake' with optional namespace) and returns its path. */
  writeKubeconfig(
    dir: string,
    opts?: { namespace?: string; contextName?: string; extraContexts?: Array<{ name: string; namespace?: string }> },
  ): Promise<string>;
  /**
   * Writes the service-account files `KubeConfig.loadFromCluster(pathPrefix)` reads (token, ca.crt, namespace) under
   * `dir` and returns that prefix plus the KUBERNETES_SERVICE_HOST/PORT it needs. TLS instances only (in-cluster
   * config always speaks https unless the port is 80/8080/8001).
   */
  writeInClusterFiles(
    dir: string,
    namespace?: string,
  ): Promise<{ pathPrefix: string; env: { KUBERNETES_SERVICE_HOST: string; KUBERNETES_SERVICE_PORT: string } }>;
  /** Every object created through the API, in order, exactly as the client POSTed it (for schema validation). */
  readonly created: Array<{ apiVersion: string; kind: string; namespace: string; body: unknown }>;
  /** Current objects of a kind (e.g. 'Job', 'Pod', 'Secret', or a custom kind) in a namespace (all when omitted). */
  list(kind: string, namespace?: string): any[];
  get(kind: string, namespace: string, name: string): any;
  /** Drops the watch history: any watch resuming from an older resourceVersion gets the 410 Expired ERROR event. */
  compactHistory(): void;
  /** Destroys every open watch connection's socket (simulates a dropped connection / apiserver restart). */
  dropWatches(): void;
  /** Destroys every open pods/log connection (a follower must re-open it and not repeat what it delivered). */
  dropLogStreams(): number;
  /** Number of currently open watch connections (so tests can wait for a re-established watch). */
  openWatches(): number;
  /** While true, every new watch request has its connection destroyed before any response (an unreachable apiserver). */
  refuseWatches(refuse: boolean): void;
  /** How many watch requests were answered with the 410 Expired ERROR event so far. */
  expiredWatches(): number;
  /**
   * Evicts a pod as the Eviction API does (DisruptionTarget/EvictionByEvictionAPI, graceful delete). The grace period
   * is the pod's terminationGracePeriodSeconds (30 s by default) unless given, as with an Eviction's deleteOptions;
   * note that a PID-1 shell without a TERM trap ignores SIGTERM and so takes the whole grace period to die.
   */
  evictPod(namespace: string, name: string, opts?: { gracePeriodSeconds?: number }): Promise<void>;
  /**
   * Kubelet-side disruption: pod condition DisruptionTarget with reason TerminationByKubelet (node pressure), phase
   * Failed, container killed; the pod object stays. PreemptionByScheduler: the condition, then a graceful delete.
   */
  disruptPod(namespace: string, name: string, reason?: 'TerminationByKubelet' | 'PreemptionByScheduler'): Promise<void>;
  /** Sets a custom object's status (acting as its operator). */
  setCustomStatus(
    group: string,
    version: string,
    plural: string,
    namespace: string,
    name: string,
    status: unknown,
  ): void;
  /** Creates a pod directly (acting as an operator for a custom resource), running it like any other. */
  createPod(namespace: string, pod: unknown): Promise<any>;
  /** Request log: method + path + query of every API request (to assert e.g. that watches resumed with resourceVersion). */
  readonly requests: Array<{ method: string; path: string; query: Record<string, string> }>;
  /** Resolves when pred() is true (checked on every state change and every 50 ms); rejects after timeoutMs. */
  waitFor(pred: () => boolean, timeoutMs?: number, what?: string): Promise<void>;
  /** Stops everything: closes watches and the server, kills and removes every docker container it started, deletes temp dirs. */
  close(): Promise<void>;
}

export interface FakeKubeOptions {
  namespaces?: string[];
  nodeLabels?: Record<string, string>;
  /** cpu/memory, plus any extended resource the node should offer (e.g. 'nvidia.com/gpu': '2'). */
  allocatable?: { cpu?: string; memory?: string; [resource: string]: string | undefined };
  docker?: Dockerode;
  /** How long back-offs and pod starts take: FAST_TIMING by default; CLUSTER_TIMING for real-cluster delays. */
  timing?: Partial<Timing>;
  /** Serve HTTPS with this key/cert (PEM) instead of HTTP — for in-cluster config tests. */
  tls?: { key: string; cert: string };
  /**
   * CRDs to install (any spec and status preserved, status subresource on). A custom resource no CRD declares is a
   * 404 (`404 page not found`), as on a real cluster; a test may also create CustomResourceDefinitions through the API.
   */
  customResources?: Array<{ group: string; version: string; plural: string; kind: string }>;
}

const NODE_NAME = 'fake-node-1';

export async function startFakeKube(opts: FakeKubeOptions = {}): Promise<FakeKube> {
  const instanceId = randomUUID().slice(0, 8);
  const token = randomBytes(24).toString('hex');
  const allocatable: Record<string, string> = { cpu: '8', memory: '16Gi' };
  for (const [k, v] of Object.entries(opts.allocatable ?? {})) if (v !== undefined) allocatable[k] = v;
  const cluster = new Cluster({
    namespaces: opts.namespaces ?? ['default'],
    nodeName: NODE_NAME,
    nodeLabels: opts.nodeLabels ?? {
      'kubernetes.io/hostname': NODE_NAME,
      'kubernetes.io/os': 'linux',
      'kubernetes.io/arch': 'amd64',
    },
    allocatable,
    timing: { ...FAST_TIMING, ...opts.timing },
  });
  const docker = opts.docker ?? new Dockerode();
  const kubelet = new Kubelet(cluster, docker, instanceId);
  const controllers = [new JobController(cluster), new Scheduler(cluster), new GarbageCollector(cluster)];
  const created: CreatedRecord[] = [];
  const requests: RequestRecord[] = [];
  let port = 0;
  const api = new ApiServer(cluster, kubelet, token, created, requests, () => `127.0.0.1:${port}`);
  for (const cr of opts.customResources ?? []) api.declare(cr);
  const server: Server = opts.tls
    ? createHttpsServer({ key: opts.tls.key, cert: opts.tls.cert }, api.handle)
    : createHttpServer(api.handle);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  port = (server.address() as AddressInfo).port;
  const url = `${opts.tls ? 'https' : 'http'}://127.0.0.1:${port}`;
  const store = cluster.store;
  let kubeconfigs = 0;

  const kindInfos = (kind: string) => [...store.infos.values()].filter((i) => i.kind === kind);
  const pod = (ns: string, name: string) => {
    const p = store.get(POD, ns, name) as Pod | undefined;
    if (!p) throw new Error(`pod ${ns}/${name} not found`);
    return p;
  };

  const waitFor = (pred: () => boolean, timeoutMs = 20_000, what = 'condition'): Promise<void> =>
    new Promise((resolve, reject) => {
      let settled = false;
      const check = () => {
        if (settled) return;
        let ok = false;
        try {
          ok = pred();
        } catch {
          ok = false;
        }
        if (!ok) return;
        finish();
        resolve();
      };
      const finish = () => {
        settled = true;
        unsubscribe();
        clearInterval(interval);
        clearTimeout(timer);
      };
      const unsubscribe = store.subscribe(() => setImmediate(check));
      const interval = setInterval(check, 50);
      const timer = setTimeout(() => {
        if (settled) return;
        finish();
        reject(new Error(`fake kube: timed out after ${timeoutMs} ms waiting for ${what}`));
      }, timeoutMs);
      check();
    });

  const fake: FakeKube = {
    url,
    token,
    nodeName: NODE_NAME,
    instanceId,
    created,
    requests,

    async writeKubeconfig(dir, o = {}) {
      mkdirSync(dir, { recursive: true });
      const contextName = o.contextName ?? 'fake';
      // client-node 1.x refuses a plain http:// server unless the cluster says insecure-skip-tls-verify.
      let caLine = '\n    insecure-skip-tls-verify: true';
      if (opts.tls) {
        const ca = join(dir, `fake-kube-ca-${instanceId}.crt`);
        writeFileSync(ca, opts.tls.cert);
        caLine = `\n    certificate-authority: ${JSON.stringify(ca)}`;
      }
      const ctx = (name: string, ns?: string) =>
        `- name: ${JSON.stringify(name)}\n  context:\n    cluster: fake\n    user: fake${ns ? `\n    namespace: ${JSON.stringify(ns)}` : ''}`;
      const yaml = [
        'apiVersion: v1',
        'kind: Config',
        'clusters:',
        `- name: fake\n  cluster:\n    server: ${JSON.stringify(url)}${caLine}`,
        'users:',
        `- name: fake\n  user:\n    token: ${JSON.stringify(token)}`,
        'contexts:',
        ctx(contextName, o.namespace),
        ...(o.extraContexts ?? []).map((c) => ctx(c.name, c.namespace)),
        `current-context: ${JSON.stringify(contextName)}`,
        '',
      ].join('\n');
      kubeconfigs++;
      let path = join(dir, kubeconfigs === 1 ? 'kubeconfig' : `kubeconfig-${kubeconfigs}`);
      while (existsSync(path)) path = join(dir, `kubeconfig-${++kubeconfigs}`);
      writeFileSync(path, yaml, { mode: 0o600 });
      return path;
    },

    async writeInClusterFiles(dir, namespace = 'default') {
      if (!opts.tls) throw new Error('in-cluster config needs a TLS fake (startFakeKube({ tls }))');
      const sa = join(dir, 'var/run/secrets/kubernetes.io/serviceaccount');
      mkdirSync(sa, { recursive: true });
      writeFileSync(join(sa, 'token'), token);
      writeFileSync(join(sa, 'ca.crt'), opts.tls.cert);
      writeFileSync(join(sa, 'namespace'), namespace);
      return { pathPrefix: dir, env: { KUBERNETES_SERVICE_HOST: '127.0.0.1', KUBERNETES_SERVICE_PORT: String(port) } };
    },

    list(kind, namespace) {
      return kindInfos(kind).flatMap((i) => store.list(i, namespace).map((o) => clone(o)));
    },

    get(kind, namespace, name) {
      for (const i of kindInfos(kind)) {
        const o = store.get(i, i.namespaced ? namespace : '', name);
        if (o) return clone(o);
      }
      return undefined;
    },

    compactHistory: () => store.compact(),
    dropWatches() {
      for (const w of [...api.watches]) w.socket?.destroy();
    },
    openWatches: () => api.watches.size,
    dropLogStreams() {
      const n = api.logStreams.size;
      for (const r of [...api.logStreams]) r.socket?.destroy();
      return n;
    },
    refuseWatches(refuse) {
      api.refuseWatches = refuse;
    },
    expiredWatches: () => api.expiredWatches,

    async evictPod(namespace, name, o = {}) {
      evict(
        cluster,
        namespace,
        name,
        o.gracePeriodSeconds !== undefined ? { gracePeriodSeconds: o.gracePeriodSeconds } : {},
      );
    },

    async disruptPod(namespace, name, reason = 'TerminationByKubelet') {
      const p = pod(namespace, name);
      const byKubelet = reason === 'TerminationByKubelet';
      // Only the kubelet of the pod's node can evict it for node pressure.
      if (byKubelet && p.spec.nodeName !== NODE_NAME) {
        throw new Error(`pod ${namespace}/${name} is not running on ${NODE_NAME}`);
      }
      const message = byKubelet
        ? 'The node was low on resource: memory. Threshold quantity: 100Mi, available: 51200Ki. '
        : `${p.spec.schedulerName ?? 'default-scheduler'}: preempting to accommodate a higher priority pod`;
      store.update(POD, namespace, name, (o) => {
        const st = ((o as Pod).status ??= {});
        setCondition((st.conditions ??= []), {
          type: 'DisruptionTarget',
          status: 'True',
          lastProbeTime: null,
          reason,
          message,
        });
      });
      if (!byKubelet) {
        store.delete(POD, namespace, name, {});
        return;
      }
      kubelet.disrupt(p, message);
      const phase = () => (store.get(POD, namespace, name) as Pod | undefined)?.status?.phase;
      await waitFor(() => phase() === 'Failed' || phase() === undefined, 30_000, `pod ${name} Failed after disruption`);
    },

    setCustomStatus(group, _version, plural, namespace, name, status) {
      const info = store.infos.get(`${plural}.${group}`);
      const o = info && store.get(info, namespace, name);
      if (!info || !o) throw new Error(`${plural}.${group} ${namespace}/${name} not found`);
      store.update(info, namespace, name, (x: KObject) => {
        x.status = clone(status);
      });
    },

    async createPod(namespace, p) {
      return clone(cluster.createPod(namespace, p as Pod));
    },

    waitFor,

    async close() {
      for (const c of controllers) c.close();
      for (const w of [...api.watches]) w.end();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await kubelet.close();
    },
  };
  return fake;
}

/** A self-signed certificate for 127.0.0.1 (SAN IP:127.0.0.1) made by `openssl`; caFile is the cert itself. */
export async function selfSignedCert(dir: string): Promise<{ key: string; cert: string; caFile: string }> {
  mkdirSync(dir, { recursive: true });
  const keyFile = join(dir, 'fake-kube.key');
  const certFile = join(dir, 'fake-kube.crt');
  // prettier-ignore
  await promisify(execFile)('openssl', [
    'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2',
    '-keyout', keyFile, '-out', certFile,
    '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1',
  ]);
  return { key: readFileSync(keyFile, 'utf8'), cert: readFileSync(certFile, 'utf8'), caFile: certFile };
}
