import {
  chmodSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { ServerResponse } from 'node:http';
import type Dockerode from 'dockerode';
import type { V1Container, V1EnvVar, V1KeyToPath } from '@kubernetes/client-node';
import { CONFIGMAP, HOST_IP, POD, SECRET, backoffDelay, type Cluster, type EventSource } from './cluster.js';
import { setCondition } from './controllers.js';
import { parseQuantity } from './selectors.js';
import type { StoreEvent } from './store.js';
import {
  badRequest,
  rfc3339,
  type Condition,
  type ContainerState,
  type ContainerStateTerminated,
  type ContainerStatus,
  type Pod,
  type PodStatus,
} from './types.js';

/** Label on every docker container the fake starts; its value is the FakeKube instance id. */
export const INSTANCE_LABEL = 'liftoff-test.fakekube';

const isTerminal = (p: Pod) => p.status?.phase === 'Succeeded' || p.status?.phase === 'Failed';
const dockerTime = (t: string | undefined) => (t && !t.startsWith('0001-') ? rfc3339(new Date(t)) : undefined);

class ConfigError extends Error {}

interface Instance {
  id: string;
  attempt: number;
}

interface CState {
  spec: V1Container;
  init: boolean;
  status: ContainerStatus;
  instances: Instance[];
}

export interface LogQuery {
  follow: boolean;
  previous: boolean;
  timestamps: boolean;
  tailLines?: number;
  sinceSeconds?: number;
  sinceTime?: string;
  limitBytes?: number;
}

/**
 * Which docker container a log request reads, worded exactly like the kubelet's validateContainerLogStatus
 * (these become 400 BadRequest Status responses).
 */
export function logContainerId(pod: Pod, container: string, previous: boolean): string | undefined {
  const statuses = [...(pod.status?.initContainerStatuses ?? []), ...(pod.status?.containerStatuses ?? [])];
  const s = statuses.find((x) => x.name === container);
  const podName = pod.metadata.name ?? '';
  if (!s) throw badRequest(`container "${container}" in pod "${podName}" is waiting to start - no logs yet`);
  const strip = (id: string | undefined) => id?.replace(/^docker:\/\//, '');
  const last = s.lastState.terminated;
  if (previous) {
    if (!last?.containerID)
      throw badRequest(`previous terminated container "${container}" in pod "${podName}" not found`);
    return strip(last.containerID);
  }
  if (s.state.running) return strip(s.containerID);
  const term = s.state.terminated;
  if (term) {
    if (term.containerID) return strip(term.containerID);
    if (last?.containerID) return strip(last.containerID);
    throw badRequest(`container "${container}" in pod "${podName}" is terminated`);
  }
  if (last) {
    if (!last.containerID) throw badRequest(`container "${container}" in pod "${podName}" is terminated`);
    return strip(last.containerID);
  }
  const reason = s.state.waiting?.reason;
  if (reason === 'ErrImagePull') {
    throw badRequest(`container "${container}" in pod "${podName}" is waiting to start: image can't be pulled`);
  }
  if (reason === 'ImagePullBackOff') {
    throw badRequest(
      `container "${container}" in pod "${podName}" is waiting to start: trying and failing to pull image`,
    );
  }
  throw badRequest(`container "${container}" in pod "${podName}" is waiting to start: ${reason ?? ''}`);
}

/** Parses docker's multiplexed stdout/stderr frames (8-byte headers) into one byte stream, across chunk edges. */
class Demuxer {
  private buf = Buffer.alloc(0);
  constructor(private readonly out: (b: Buffer) => void) {}
  push(chunk: Buffer): void {
    this.buf = Buffer.concat([this.buf, chunk]);
    while (this.buf.length >= 8) {
      const size = this.buf.readUInt32BE(4);
      if (this.buf.length < 8 + size) break;
      this.out(this.buf.subarray(8, 8 + size));
      this.buf = this.buf.subarray(8 + size);
    }
  }
}

function registryOf(image: string): string {
  const first = image.split('/')[0] ?? '';
  if (image.includes('/') && (first.includes('.') || first.includes(':') || first === 'localhost')) return first;
  return 'docker.io';
}

function normalizeRegistry(key: string): string {
  const host = key.replace(/^https?:\/\//, '').split('/')[0] ?? '';
  return ['index.docker.io', 'registry-1.docker.io', 'registry.hub.docker.com'].includes(host) ? 'docker.io' : host;
}

/** `$(VAR)` expansion of command, args and env values; `$$` escapes a dollar; unknown references stay as written. */
function expand(s: string, vars: Map<string, string>): string {
  return s.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)/g, (m, name: string | undefined) =>
    m === '$$' ? '$' : vars.has(name ?? '') ? (vars.get(name ?? '') as string) : m,
  );
}

let ipCounter = 2;

export class Kubelet {
  private readonly workers = new Map<string, PodWorker>();
  private readonly unsubscribe: () => void;
  closed = false;

  constructor(
    readonly cluster: Cluster,
    readonly docker: Dockerode,
    readonly instanceId: string,
  ) {
    this.unsubscribe = cluster.store.subscribe((e) => this.onPodEvent(e));
  }

  get source(): EventSource {
    return { component: 'kubelet', host: this.cluster.nodeName };
  }

  private onPodEvent(e: StoreEvent): void {
    if (e.resource !== 'pods' || this.closed) return;
    const pod = e.obj as Pod;
    const uid = pod.metadata.uid ?? '';
    const w = this.workers.get(uid);
    if (e.type === 'DELETED') {
      if (w) {
        this.workers.delete(uid);
        w.removed();
      }
      return;
    }
    if (pod.spec.nodeName !== this.cluster.nodeName) return;
    if (!w) {
      if (isTerminal(pod)) return;
      const nw = new PodWorker(this, pod);
      this.workers.set(uid, nw);
      nw.start();
      if (pod.metadata.deletionTimestamp) nw.terminate(pod.metadata.deletionGracePeriodSeconds ?? 0);
      return;
    }
    if (pod.metadata.deletionTimestamp) w.terminate(pod.metadata.deletionGracePeriodSeconds ?? 0);
  }

  /** Node-pressure eviction: the kubelet kills the pod and leaves it Failed (it is not deleted). */
  disrupt(pod: Pod, message: string): void {
    this.workers.get(pod.metadata.uid ?? '')?.evict('Evicted', message);
  }

  async streamLogs(containerId: string, q: LogQuery, res: ServerResponse): Promise<void> {
    const ctr = this.docker.getContainer(containerId);
    const opts = {
      stdout: true,
      stderr: true,
      timestamps: q.timestamps,
      ...(q.tailLines !== undefined ? { tail: q.tailLines } : {}),
      ...(q.sinceSeconds !== undefined ? { since: Date.now() / 1000 - q.sinceSeconds } : {}),
      ...(q.sinceTime !== undefined ? { since: Date.parse(q.sinceTime) / 1000 } : {}),
    };
    let remaining = q.limitBytes ?? Infinity;
    const write = (b: Buffer) => {
      if (remaining <= 0) return;
      const part = b.length > remaining ? b.subarray(0, remaining) : b;
      remaining -= part.length;
      res.write(part);
    };
    // A TTY container's log is raw bytes; otherwise docker multiplexes stdout/stderr frames.
    const tty = (await ctr.inspect()).Config.Tty;
    const sink = (b: Buffer) => (tty ? write(b) : demux.push(b));
    const demux = new Demuxer(write);
    const head = () => res.writeHead(200, { 'Content-Type': 'text/plain', 'Transfer-Encoding': 'chunked' });
    if (!q.follow) {
      const buf = await ctr.logs({ ...opts, follow: false });
      head();
      sink(buf);
      res.end();
      return;
    }
    const stream = (await ctr.logs({ ...opts, follow: true })) as NodeJS.ReadableStream & { destroy?: () => void };
    head();
    await new Promise<void>((resolve) => {
      const finish = () => {
        resolve();
        if (!res.writableEnded) res.end();
      };
      stream.on('data', sink);
      stream.on('end', finish);
      stream.on('close', finish);
      stream.on('error', finish);
      res.on('close', () => {
        stream.destroy?.();
        resolve();
      });
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    this.unsubscribe();
    const ws = [...this.workers.values()];
    this.workers.clear();
    for (const w of ws) w.removed();
    await Promise.allSettled(ws.map((w) => w.cleaned));
    await this.sweep();
  }

  /** Removes every docker container this instance labelled (also the ones of workers already forgotten). */
  async sweep(): Promise<void> {
    const list = await this.docker.listContainers({
      all: true,
      filters: { label: [`${INSTANCE_LABEL}=${this.instanceId}`] },
    });
    await Promise.allSettled(list.map((c) => this.docker.getContainer(c.Id).remove({ force: true })));
  }
}

/** One pod on the fake node: volumes, image pulls, init containers in order, then the app containers. */
class PodWorker {
  private readonly ns: string;
  private readonly name: string;
  private readonly uid: string;
  private readonly dir: string;
  private readonly podIP: string;
  private readonly states: CState[];
  private readonly running = new Map<string, string>();
  private readonly sleepers = new Set<() => void>();
  private stopping = false;
  private gone = false;
  private finished = false;
  private evicted: { reason: string; message: string } | undefined;
  private startTime = rfc3339();
  private deadlineTimer: NodeJS.Timeout | undefined;
  private usageTimer: NodeJS.Timeout | undefined;
  private done: Promise<void> = Promise.resolve();
  cleaned: Promise<void> = Promise.resolve();

  constructor(
    private readonly kubelet: Kubelet,
    pod: Pod,
  ) {
    this.ns = pod.metadata.namespace ?? '';
    this.name = pod.metadata.name ?? '';
    this.uid = pod.metadata.uid ?? '';
    this.dir = mkdtempSync(join(tmpdir(), 'fake-kubelet-'));
    chmodSync(this.dir, 0o755);
    this.podIP = pod.spec.hostNetwork ? HOST_IP : `10.244.0.${(ipCounter++ % 250) + 2}`;
    // Until it starts, a pod with init containers reports every container as PodInitializing.
    const waiting = pod.spec.initContainers?.length ? 'PodInitializing' : 'ContainerCreating';
    const initial = (c: V1Container, init: boolean): CState => ({
      spec: c,
      init,
      instances: [],
      status: {
        name: c.name,
        image: c.image ?? '',
        imageID: '',
        ready: false,
        started: false,
        restartCount: 0,
        state: { waiting: { reason: waiting } },
        lastState: {},
      },
    });
    this.states = [
      ...(pod.spec.initContainers ?? []).map((c) => initial(c, true)),
      ...pod.spec.containers.map((c) => initial(c, false)),
    ];
  }

  private get cluster(): Cluster {
    return this.kubelet.cluster;
  }
  private get docker(): Dockerode {
    return this.kubelet.docker;
  }

  private pod(): Pod | undefined {
    const p = this.cluster.store.get(POD, this.ns, this.name) as Pod | undefined;
    return p && p.metadata.uid === this.uid ? p : undefined;
  }

  start(): void {
    this.done = this.run().catch((e: unknown) => {
      if (!this.gone) console.error(`fake kubelet: pod ${this.ns}/${this.name} failed:`, e);
    });
    const ads = this.pod()?.spec.activeDeadlineSeconds;
    if (ads) {
      this.deadlineTimer = setTimeout(
        () => this.evict('DeadlineExceeded', 'Pod was active on the node longer than the specified deadline'),
        ads * 1000,
      );
      this.deadlineTimer.unref();
    }
    this.watchEmptyDirUsage();
  }

  /**
   * The eviction manager's local-storage check for emptyDirs with a sizeLimit: the bytes under the volume (files not
   * followed through links) past the limit evict the pod, with the kubelet's message and DisruptionTarget condition
   * (reason TerminationByKubelet). The kubelet checks on its housekeeping interval (10 s); this every 500 ms.
   */
  private watchEmptyDirUsage(): void {
    const limited = (this.pod()?.spec.volumes ?? []).flatMap((v) =>
      v.emptyDir?.sizeLimit !== undefined ? [{ name: v.name, limit: String(v.emptyDir.sizeLimit) }] : [],
    );
    if (!limited.length) return;
    const usage = (dir: string): number => {
      let total = 0;
      let names: string[] = [];
      try {
        names = readdirSync(dir);
      } catch {
        return 0;
      }
      for (const n of names) {
        try {
          const st = lstatSync(join(dir, n));
          total += st.isDirectory() ? usage(join(dir, n)) : st.size;
        } catch {
          // Gone meanwhile.
        }
      }
      return total;
    };
    this.usageTimer = setInterval(() => {
      if (this.finished || this.gone || this.evicted) return void clearInterval(this.usageTimer);
      for (const v of limited) {
        if (usage(this.volumeDir(v.name)) <= parseQuantity(v.limit)) continue;
        const message = `Usage of EmptyDir volume "${v.name}" exceeds the limit "${v.limit}". `;
        this.cluster.store.update(POD, this.ns, this.name, (o) => {
          setCondition((((o as Pod).status ??= {}).conditions ??= []), {
            type: 'DisruptionTarget',
            status: 'True',
            lastProbeTime: null,
            reason: 'TerminationByKubelet',
            message,
          });
        });
        this.event('Warning', 'Evicted', message);
        this.evict('Evicted', message);
        return;
      }
    }, 500);
    this.usageTimer.unref();
  }

  private event(type: 'Normal' | 'Warning', reason: string, message: string, c?: CState): void {
    const pod = this.pod();
    if (!pod || this.gone) return;
    const fieldPath = c ? `spec.${c.init ? 'initContainers' : 'containers'}{${c.spec.name}}` : undefined;
    this.cluster.recordEvent(pod, type, reason, message, this.kubelet.source, fieldPath);
  }

  /** Sleeps, cut short when the pod starts terminating. */
  private sleep(ms: number): Promise<void> {
    if (this.stopping) return Promise.resolve();
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(t);
        this.sleepers.delete(wake);
        resolve();
      };
      const t = setTimeout(wake, ms);
      this.sleepers.add(wake);
    });
  }

  private wakeAll(): void {
    for (const w of [...this.sleepers]) w();
  }

  /** Graceful deletion: SIGTERM now, SIGKILL after the grace period (docker stop -t). */
  terminate(graceSeconds: number): void {
    const first = !this.stopping;
    this.stopping = true;
    this.wakeAll();
    if (this.finished) {
      if (first) this.finalDelete();
      return;
    }
    for (const [name, id] of this.running) {
      const c = this.states.find((s) => s.spec.name === name);
      if (first) this.event('Normal', 'Killing', `Stopping container ${name}`, c);
      void this.docker
        .getContainer(id)
        .stop({ t: Math.max(0, Math.round(graceSeconds)) })
        .catch(() => undefined);
    }
  }

  evict(reason: string, message: string): void {
    if (this.finished || this.evicted) return;
    this.evicted = { reason, message };
    this.stopping = true;
    this.wakeAll();
    for (const [name, id] of this.running) {
      const c = this.states.find((s) => s.spec.name === name);
      this.event('Normal', 'Killing', `Stopping container ${name}`, c);
      void this.docker
        .getContainer(id)
        .kill()
        .catch(() => undefined);
    }
    this.publish();
  }

  /** The pod left the API: kill at once, then drop its containers and files. */
  removed(): void {
    this.gone = true;
    if (this.usageTimer) clearInterval(this.usageTimer);
    this.stopping = true;
    if (this.deadlineTimer) clearTimeout(this.deadlineTimer);
    this.wakeAll();
    for (const id of this.running.values()) {
      void this.docker
        .getContainer(id)
        .kill()
        .catch(() => undefined);
    }
    this.cleaned = this.done.then(async () => {
      const ids = this.states.flatMap((s) => s.instances.map((i) => i.id));
      await Promise.allSettled(ids.map((id) => this.docker.getContainer(id).remove({ force: true })));
      rmSync(this.dir, { recursive: true, force: true });
    });
  }

  private finalDelete(): void {
    const pod = this.pod();
    if (!pod?.metadata.deletionTimestamp || this.gone) return;
    try {
      this.cluster.store.delete(POD, this.ns, this.name, { gracePeriodSeconds: 0, preconditions: { uid: this.uid } });
    } catch {
      // Already gone.
    }
  }

  private async run(): Promise<void> {
    this.publish();
    if (await this.prepareVolumes()) {
      let initOk = true;
      for (const c of this.states.filter((s) => s.init)) {
        if (this.stopping || !(await this.runContainer(c))) {
          initOk = false;
          break;
        }
      }
      if (initOk && !this.stopping)
        await Promise.all(this.states.filter((s) => !s.init).map((c) => this.runContainer(c)));
    }
    this.finished = true;
    if (this.deadlineTimer) clearTimeout(this.deadlineTimer);
    if (this.gone) return;
    this.publish();
    if (this.pod()?.metadata.deletionTimestamp) this.finalDelete();
  }

  // ---- volumes ----

  private volumeDir(name: string): string {
    return join(this.dir, 'volumes', name);
  }

  private writeFiles(base: string, entries: Array<[string, Buffer]>, items: V1KeyToPath[] | undefined, mode: number) {
    mkdirSync(base, { recursive: true });
    chmodSync(base, 0o755);
    const byKey = new Map(entries);
    const wanted = items?.length
      ? items.map((i) => ({ key: i.key, path: i.path, mode: i.mode ?? mode }))
      : entries.map(([k]) => ({ key: k, path: k, mode }));
    for (const w of wanted) {
      const data = byKey.get(w.key);
      if (data === undefined) throw new ConfigError(`configmap references non-existent config key: ${w.key}`);
      const file = join(base, w.path);
      mkdirSync(dirname(file), { recursive: true });
      writeFileSync(file, data);
      chmodSync(file, w.mode);
    }
  }

  /** Returns false when the pod started terminating before its volumes could be set up. */
  private async prepareVolumes(): Promise<boolean> {
    for (;;) {
      if (this.stopping) return false;
      const pod = this.pod();
      if (!pod) return false;
      try {
        for (const v of pod.spec.volumes ?? []) {
          const dir = this.volumeDir(v.name);
          if (v.configMap) {
            const cm = this.cluster.store.get(CONFIGMAP, this.ns, v.configMap.name ?? '');
            if (!cm && !v.configMap.optional) throw new ConfigError(`configmap "${v.configMap.name}" not found`);
            const entries: Array<[string, Buffer]> = [
              ...Object.entries((cm?.data as Record<string, string> | undefined) ?? {}).map(
                ([k, s]) => [k, Buffer.from(s)] as [string, Buffer],
              ),
              ...Object.entries((cm?.binaryData as Record<string, string> | undefined) ?? {}).map(
                ([k, s]) => [k, Buffer.from(s, 'base64')] as [string, Buffer],
              ),
            ];
            this.writeFiles(dir, entries, v.configMap.items, v.configMap.defaultMode ?? 0o644);
          } else if (v.secret) {
            const sec = this.cluster.store.get(SECRET, this.ns, v.secret.secretName ?? '');
            if (!sec && !v.secret.optional) throw new ConfigError(`secret "${v.secret.secretName}" not found`);
            const entries = Object.entries((sec?.data as Record<string, string> | undefined) ?? {}).map(
              ([k, s]) => [k, Buffer.from(s, 'base64')] as [string, Buffer],
            );
            this.writeFiles(dir, entries, v.secret.items, v.secret.defaultMode ?? 0o644);
          } else if (v.downwardAPI) {
            const entries = (v.downwardAPI.items ?? []).map(
              (i) =>
                [i.path, Buffer.from(i.fieldRef ? this.fieldValue(pod, i.fieldRef.fieldPath) : '')] as [string, Buffer],
            );
            this.writeFiles(dir, entries, undefined, v.downwardAPI.defaultMode ?? 0o644);
          } else if (v.hostPath) {
            if (v.hostPath.type === 'DirectoryOrCreate') mkdirSync(v.hostPath.path, { recursive: true });
          } else {
            // emptyDir, and anything else (PVCs included) gets a fresh directory that lives as long as the pod.
            mkdirSync(dir, { recursive: true });
            chmodSync(dir, 0o777);
          }
        }
        return true;
      } catch (e) {
        if (!(e instanceof ConfigError)) throw e;
        const vol = (pod.spec.volumes ?? []).find((v) =>
          e.message.includes(`"${v.configMap?.name ?? v.secret?.secretName}"`),
        );
        this.event('Warning', 'FailedMount', `MountVolume.SetUp failed for volume "${vol?.name ?? ''}" : ${e.message}`);
        await this.sleep(1000);
      }
    }
  }

  private binds(pod: Pod, c: V1Container, termFile: string): string[] {
    const binds: string[] = [];
    for (const m of c.volumeMounts ?? []) {
      const v = pod.spec.volumes?.find((x) => x.name === m.name);
      if (!v) continue;
      let src = v.hostPath ? v.hostPath.path : this.volumeDir(v.name);
      if (m.subPath) {
        src = join(src, m.subPath);
        if (!v.configMap && !v.secret && !v.downwardAPI) mkdirSync(src, { recursive: true });
      }
      const ro = m.readOnly || v.configMap || v.secret || v.downwardAPI;
      binds.push(`${src}:${m.mountPath}:${ro ? 'ro' : 'rw'}`);
    }
    binds.push(`${termFile}:${c.terminationMessagePath ?? '/dev/termination-log'}:rw`);
    return binds;
  }

  // ---- env ----

  private fieldValue(pod: Pod, fieldPath: string): string {
    const m = /^metadata\.(labels|annotations)\['(.+)'\]$/.exec(fieldPath);
    if (m) return pod.metadata[m[1] as 'labels' | 'annotations']?.[m[2] as string] ?? '';
    const fmtMap = (r: Record<string, string> | undefined) =>
      Object.entries(r ?? {})
        .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
        .join('\n');
    switch (fieldPath) {
      case 'metadata.name':
        return pod.metadata.name ?? '';
      case 'metadata.namespace':
        return pod.metadata.namespace ?? '';
      case 'metadata.uid':
        return pod.metadata.uid ?? '';
      case 'metadata.labels':
        return fmtMap(pod.metadata.labels);
      case 'metadata.annotations':
        return fmtMap(pod.metadata.annotations);
      case 'spec.nodeName':
        return pod.spec.nodeName ?? '';
      case 'spec.serviceAccountName':
        return pod.spec.serviceAccountName ?? '';
      case 'status.hostIP':
        return HOST_IP;
      case 'status.podIP':
      case 'status.podIPs':
        return this.podIP;
      default:
        throw new ConfigError(`unsupported fieldPath: ${fieldPath}`);
    }
  }

  private resolveEnv(pod: Pod, c: V1Container): Map<string, string> {
    const env = new Map<string, string>();
    const store = this.cluster.store;
    for (const ef of c.envFrom ?? []) {
      const ref = ef.configMapRef ?? ef.secretRef;
      const isSecret = !!ef.secretRef;
      const obj = store.get(isSecret ? SECRET : CONFIGMAP, this.ns, ref?.name ?? '');
      if (!obj) {
        if (ref?.optional) continue;
        throw new ConfigError(`${isSecret ? 'secret' : 'configmap'} "${ref?.name}" not found`);
      }
      for (const [k, v] of Object.entries((obj.data as Record<string, string> | undefined) ?? {})) {
        env.set(`${ef.prefix ?? ''}${k}`, isSecret ? Buffer.from(v, 'base64').toString() : v);
      }
    }
    for (const e of c.env ?? []) {
      const v = this.envValue(pod, e, env);
      if (v !== undefined) env.set(e.name, v);
    }
    return env;
  }

  private envValue(pod: Pod, e: V1EnvVar, env: Map<string, string>): string | undefined {
    if (!e.valueFrom) return expand(e.value ?? '', env);
    const { secretKeyRef: sk, configMapKeyRef: ck, fieldRef, resourceFieldRef } = e.valueFrom;
    if (sk || ck) {
      const isSecret = !!sk;
      const ref = (sk ?? ck) as { name?: string; key: string; optional?: boolean };
      const obj = this.cluster.store.get(isSecret ? SECRET : CONFIGMAP, this.ns, ref.name ?? '');
      if (!obj) {
        if (ref.optional) return undefined;
        throw new ConfigError(`${isSecret ? 'secret' : 'configmap'} "${ref.name}" not found`);
      }
      const raw = (obj.data as Record<string, string> | undefined)?.[ref.key];
      if (raw === undefined) {
        if (ref.optional) return undefined;
        throw new ConfigError(
          `couldn't find key ${ref.key} in ${isSecret ? 'Secret' : 'ConfigMap'} ${this.ns}/${ref.name}`,
        );
      }
      return isSecret ? Buffer.from(raw, 'base64').toString() : raw;
    }
    if (fieldRef) return this.fieldValue(pod, fieldRef.fieldPath);
    if (resourceFieldRef) {
      const [kind, res] = resourceFieldRef.resource.split('.') as ['limits' | 'requests', string];
      const target =
        pod.spec.containers.find((x) => x.name === (resourceFieldRef.containerName || e.name)) ??
        pod.spec.containers[0];
      const q = parseQuantity(target?.resources?.[kind]?.[res] ?? (res === 'cpu' ? '8' : '16Gi'));
      const divisor = parseQuantity(resourceFieldRef.divisor ?? '1') || 1;
      return String(Math.ceil(q / divisor));
    }
    return '';
  }

  // ---- images ----

  private pullAuth(pod: Pod, image: string): Record<string, string> | undefined {
    const want = registryOf(image);
    for (const ref of pod.spec.imagePullSecrets ?? []) {
      const sec = this.cluster.store.get(SECRET, this.ns, ref.name ?? '');
      if (!sec) {
        this.event(
          'Warning',
          'FailedToRetrieveImagePullSecret',
          `Unable to retrieve some image pull secrets (${ref.name}); attempting to pull the image may not succeed.`,
        );
        continue;
      }
      const data = (sec.data as Record<string, string> | undefined) ?? {};
      let auths: Record<string, { auth?: string; username?: string; password?: string }> = {};
      try {
        if (data['.dockerconfigjson']) {
          auths =
            (JSON.parse(Buffer.from(data['.dockerconfigjson'], 'base64').toString()) as { auths?: typeof auths })
              .auths ?? {};
        } else if (data['.dockercfg']) {
          auths = JSON.parse(Buffer.from(data['.dockercfg'], 'base64').toString()) as typeof auths;
        }
      } catch {
        continue;
      }
      for (const [key, entry] of Object.entries(auths)) {
        if (normalizeRegistry(key) !== want) continue;
        let { username, password } = entry;
        if (entry.auth) {
          const decoded = Buffer.from(entry.auth, 'base64').toString();
          const i = decoded.indexOf(':');
          username = decoded.slice(0, i);
          password = decoded.slice(i + 1);
        }
        return { username: username ?? '', password: password ?? '', serveraddress: want };
      }
    }
    return undefined;
  }

  private async imageInfo(image: string): Promise<Dockerode.ImageInspectInfo | undefined> {
    try {
      return await this.docker.getImage(image).inspect();
    } catch {
      return undefined;
    }
  }

  private async pull(image: string, auth: Record<string, string> | undefined): Promise<void> {
    const stream = await this.docker.pull(image, auth ? { authconfig: auth } : {});
    await new Promise<void>((resolve, reject) => {
      this.docker.modem.followProgress(stream, (err: Error | null, out: Array<{ error?: string }>) => {
        const failed = out?.find((o) => o.error);
        if (err) reject(err);
        else if (failed) reject(new Error(failed.error));
        else resolve();
      });
    });
  }

  /** Returns the image's id for the status, or undefined when the pod began terminating first. */
  private async ensureImage(c: CState): Promise<string | undefined> {
    const image = c.spec.image ?? '';
    const policy = c.spec.imagePullPolicy ?? 'IfNotPresent';
    const idOf = (i: Dockerode.ImageInspectInfo) =>
      i.RepoDigests?.[0] ? `docker-pullable://${i.RepoDigests[0]}` : `docker://${i.Id}`;
    let attempt = 0;
    for (;;) {
      if (this.stopping) return undefined;
      const present = await this.imageInfo(image);
      if (policy === 'Never' || (policy === 'IfNotPresent' && present)) {
        const startMs = this.cluster.opts.timing.podStartMs;
        if (present && startMs > 0 && attempt === 0) {
          // A node that must pull (or unpack, or set up a sandbox) first: the pod sits in ContainerCreating.
          this.event('Normal', 'Pulling', `Pulling image "${image}"`, c);
          await this.sleep(startMs);
          if (this.stopping) return undefined;
        }
        if (present) {
          this.event('Normal', 'Pulled', `Container image "${image}" already present on machine`, c);
          return idOf(present);
        }
        const msg = `Container image "${image}" is not present with pull policy of Never`;
        this.setState(c, { waiting: { reason: 'ErrImageNeverPull', message: msg } });
        this.event('Warning', 'ErrImageNeverPull', msg, c);
        await this.sleep(Math.min(1000 * 2 ** attempt++, 5000));
        continue;
      }
      const pod = this.pod();
      if (!pod) return undefined;
      this.event('Normal', 'Pulling', `Pulling image "${image}"`, c);
      const t0 = Date.now();
      try {
        await this.pull(image, this.pullAuth(pod, image));
        const info = await this.imageInfo(image);
        const secs = ((Date.now() - t0) / 1000).toFixed(3);
        this.event(
          'Normal',
          'Pulled',
          `Successfully pulled image "${image}" in ${secs}s (${secs}s including waiting). Image size: ${info?.Size ?? 0} bytes.`,
          c,
        );
        if (info) return idOf(info);
      } catch (e) {
        const detail = (e as { json?: { message?: string } }).json?.message ?? (e as Error).message;
        const msg = `rpc error: code = Unknown desc = Error response from daemon: ${detail}`;
        this.event('Warning', 'Failed', `Failed to pull image "${image}": ${msg}`, c);
        this.event('Warning', 'Failed', 'Error: ErrImagePull', c);
        this.setState(c, { waiting: { reason: 'ErrImagePull', message: msg } });
        await this.sleep(300);
        if (this.stopping) return undefined;
        this.event('Normal', 'BackOff', `Back-off pulling image "${image}"`, c);
        this.event('Warning', 'Failed', 'Error: ImagePullBackOff', c);
        this.setState(c, {
          waiting: { reason: 'ImagePullBackOff', message: `Back-off pulling image "${image}": ErrImagePull: ${msg}` },
        });
        await this.sleep(Math.min(1000 * 2 ** attempt++, 5000));
      }
    }
  }

  // ---- containers ----

  private setState(c: CState, state: ContainerState): void {
    c.status.state = state;
    c.status.ready = !!state.running;
    c.status.started = !!state.running;
    this.publish();
  }

  private async createContainer(pod: Pod, c: CState, imageID: string, env: Map<string, string>): Promise<string> {
    const spec = c.spec;
    const attempt = c.instances.length;
    const termFile = join(this.dir, 'termination', `${spec.name}-${attempt}`);
    mkdirSync(dirname(termFile), { recursive: true });
    writeFileSync(termFile, '');
    chmodSync(termFile, 0o666);
    const sc = { ...pod.spec.securityContext, ...spec.securityContext };
    const user =
      sc.runAsUser !== undefined
        ? `${sc.runAsUser}${sc.runAsGroup !== undefined ? `:${sc.runAsGroup}` : ''}`
        : undefined;
    const limits = spec.resources?.limits ?? {};
    const memory = limits.memory !== undefined ? Math.round(parseQuantity(limits.memory)) : undefined;
    const cpu = limits.cpu !== undefined ? parseQuantity(limits.cpu) : undefined;
    const caps = (spec.securityContext?.capabilities ?? {}) as { add?: string[]; drop?: string[] };
    const ctr = await this.docker.createContainer({
      name: `k8s_${spec.name}_${this.name}_${this.ns}_${this.uid}_${attempt}`,
      Image: spec.image,
      ...(spec.command ? { Entrypoint: spec.command.map((s) => expand(s, env)) } : {}),
      ...(spec.args ? { Cmd: spec.args.map((s) => expand(s, env)) } : spec.command ? { Cmd: [] } : {}),
      Env: [...env].map(([k, v]) => `${k}=${v}`),
      ...(spec.workingDir ? { WorkingDir: spec.workingDir } : {}),
      ...(user ? { User: user } : {}),
      ...(pod.spec.hostNetwork ? {} : { Hostname: (pod.spec.hostname ?? this.name).slice(0, 63) }),
      Tty: spec.tty ?? false,
      OpenStdin: spec.stdin ?? false,
      Labels: {
        [INSTANCE_LABEL]: this.kubelet.instanceId,
        'io.kubernetes.pod.uid': this.uid,
        'io.kubernetes.pod.namespace': this.ns,
        'io.kubernetes.pod.name': this.name,
        'io.kubernetes.container.name': spec.name,
      },
      HostConfig: {
        Binds: this.binds(pod, spec, termFile),
        ...(memory !== undefined ? { Memory: memory, MemorySwap: memory } : {}),
        ...(cpu !== undefined ? { NanoCpus: Math.round(cpu * 1e9) } : {}),
        Privileged: sc.privileged ?? false,
        ...(caps.add?.length ? { CapAdd: caps.add } : {}),
        ...(caps.drop?.length ? { CapDrop: caps.drop } : {}),
        ...(sc.readOnlyRootFilesystem ? { ReadonlyRootfs: true } : {}),
        ...(sc.allowPrivilegeEscalation === false ? { SecurityOpt: ['no-new-privileges'] } : {}),
        ...(pod.spec.hostNetwork ? { NetworkMode: 'host' } : {}),
      },
    });
    c.instances.push({ id: ctr.id, attempt });
    c.status.imageID = imageID;
    return ctr.id;
  }

  private terminationMessage(c: CState, attempt: number, exitCode: number, logs: () => Promise<string>) {
    let msg = '';
    try {
      msg = readFileSync(join(this.dir, 'termination', `${c.spec.name}-${attempt}`), 'utf8').slice(0, 4096);
    } catch {
      // No file: no message.
    }
    if (!msg && exitCode !== 0 && c.spec.terminationMessagePolicy === 'FallbackToLogsOnError') return logs();
    return Promise.resolve(msg);
  }

  /** Runs one container to completion, restarting it per restartPolicy; true when it finally exited 0. */
  private async runContainer(c: CState): Promise<boolean> {
    let crashes = 0;
    if (c.status.state.waiting?.reason === 'PodInitializing')
      this.setState(c, { waiting: { reason: 'ContainerCreating' } });
    for (;;) {
      if (this.stopping) return false;
      const imageID = await this.ensureImage(c);
      if (imageID === undefined) return false;
      const pod = this.pod();
      if (!pod || this.stopping) return false;
      let env: Map<string, string>;
      try {
        env = this.resolveEnv(pod, c.spec);
      } catch (e) {
        if (!(e instanceof ConfigError)) throw e;
        this.event('Warning', 'Failed', `Error: ${e.message}`, c);
        this.setState(c, { waiting: { reason: 'CreateContainerConfigError', message: e.message } });
        await this.sleep(1000);
        continue;
      }
      let id: string;
      try {
        id = await this.createContainer(pod, c, imageID, env);
      } catch (e) {
        const msg = (e as { json?: { message?: string } }).json?.message ?? (e as Error).message;
        this.event('Warning', 'Failed', `Error: ${msg}`, c);
        this.setState(c, { waiting: { reason: 'CreateContainerError', message: msg } });
        await this.sleep(1000);
        continue;
      }
      const ctr = this.docker.getContainer(id);
      this.event('Normal', 'Created', `Created container: ${c.spec.name}`, c);
      if (this.stopping) return false;
      this.running.set(c.spec.name, id);
      try {
        await ctr.start();
      } catch (e) {
        this.running.delete(c.spec.name);
        const msg = (e as { json?: { message?: string } }).json?.message ?? (e as Error).message;
        this.event('Warning', 'Failed', `Error: ${msg}`, c);
        c.status.lastState = c.status.state.terminated ? { terminated: c.status.state.terminated } : c.status.lastState;
        this.setState(c, {
          terminated: {
            exitCode: 128,
            reason: 'StartError',
            message: msg,
            startedAt: '1970-01-01T00:00:00Z',
            finishedAt: rfc3339(),
            containerID: `docker://${id}`,
          },
        });
        if (pod.spec.restartPolicy === 'Never' || this.stopping) return false;
        await this.sleep(1000);
        continue;
      }
      if (this.stopping) {
        const grace = this.evicted || this.gone ? 0 : (this.pod()?.metadata.deletionGracePeriodSeconds ?? 0);
        void ctr.stop({ t: grace }).catch(() => undefined);
      }
      this.event('Normal', 'Started', `Started container ${c.spec.name}`, c);
      const started = await ctr.inspect().catch(() => undefined);
      c.status.containerID = `docker://${id}`;
      c.status.restartCount = c.instances.length - 1;
      this.setState(c, { running: { startedAt: dockerTime(started?.State.StartedAt) ?? rfc3339() } });

      await ctr.wait().catch(() => undefined);
      let info = await ctr.inspect().catch(() => undefined);
      // dockerd learns of an OOM kill from a cgroup event that may land after the exit (seconds later on a loaded
      // machine; over 5 s once in CI): look again for a while.
      for (let i = 0; i < 150 && info?.State.ExitCode === 137 && !info.State.OOMKilled && info.HostConfig.Memory; i++) {
        await this.sleep(100);
        info = await ctr.inspect().catch(() => info);
      }
      this.running.delete(c.spec.name);
      const exitCode = info?.State.ExitCode ?? 137;
      const attempt = c.instances[c.instances.length - 1]?.attempt ?? 0;
      const term: ContainerStateTerminated = {
        exitCode,
        reason: info?.State.OOMKilled ? 'OOMKilled' : exitCode === 0 ? 'Completed' : 'Error',
        startedAt: dockerTime(info?.State.StartedAt) ?? rfc3339(),
        finishedAt: dockerTime(info?.State.FinishedAt) ?? rfc3339(),
        containerID: `docker://${id}`,
      };
      const message = await this.terminationMessage(c, attempt, exitCode, async () => {
        const buf = await ctr
          .logs({ stdout: true, stderr: true, follow: false, tail: 80 })
          .catch(() => Buffer.alloc(0));
        let text = '';
        new Demuxer((b) => (text += b.toString())).push(buf);
        return text.slice(-2048);
      });
      if (message) term.message = message;
      if (this.gone) return false;
      this.setState(c, { terminated: term });

      const policy = pod.spec.restartPolicy ?? 'Always';
      const restart =
        !this.stopping &&
        (c.init
          ? policy !== 'Never' && exitCode !== 0
          : policy === 'Always' || (policy === 'OnFailure' && exitCode !== 0));
      if (!restart) return exitCode === 0;
      crashes++;
      c.status.lastState = { terminated: term };
      if (crashes > 1) {
        const delay = backoffDelay(this.cluster.opts.timing.restartBackoff, crashes - 2);
        const who = `${this.name}_${this.ns}(${this.uid})`;
        this.event('Warning', 'BackOff', `Back-off restarting failed container ${c.spec.name} in pod ${who}`, c);
        this.setState(c, {
          waiting: {
            reason: 'CrashLoopBackOff',
            message: `back-off ${delay / 1000}s restarting failed container=${c.spec.name} pod=${who}`,
          },
        });
        await this.sleep(delay);
      }
    }
  }

  // ---- status ----

  /** The pod phase as kubelet's getPhase computes it; `terminal` once a deleted/evicted pod has stopped. */
  private phase(restartPolicy: string, terminal: boolean): NonNullable<PodStatus['phase']> {
    const init = this.states.filter((s) => s.init).map((s) => s.status);
    const main = this.states.filter((s) => !s.init).map((s) => s.status);
    let pendingInit = 0;
    let failedInit = 0;
    for (const s of init) {
      const t = s.state.terminated;
      if (t && t.exitCode === 0) continue;
      pendingInit++;
      if (t || s.lastState.terminated) failedInit++;
    }
    let phase: NonNullable<PodStatus['phase']>;
    if (failedInit > 0 && restartPolicy === 'Never') phase = 'Failed';
    else if (pendingInit > 0) phase = 'Pending';
    else {
      let running = 0;
      let waiting = 0;
      let stopped = 0;
      let succeeded = 0;
      for (const s of main) {
        if (s.state.running) running++;
        else if (s.state.terminated) {
          stopped++;
          if (s.state.terminated.exitCode === 0) succeeded++;
        } else if (s.lastState.terminated) stopped++;
        else waiting++;
      }
      if (waiting > 0) phase = 'Pending';
      else if (running > 0) phase = 'Running';
      else if (stopped > 0) {
        if (terminal) phase = stopped === succeeded ? 'Succeeded' : 'Failed';
        else if (restartPolicy === 'Always') phase = 'Running';
        else if (stopped === succeeded) phase = 'Succeeded';
        else if (restartPolicy === 'Never') phase = 'Failed';
        else phase = 'Running';
      } else phase = 'Pending';
    }
    if (terminal && phase !== 'Succeeded' && phase !== 'Failed') phase = 'Failed';
    return phase;
  }

  private publish(): void {
    if (this.gone) return;
    const pod = this.pod();
    if (!pod) return;
    const terminal = this.finished && (this.stopping || !!this.evicted);
    if (terminal) {
      // Containers that never ran are reported the way the kubelet does for a pod torn down before they started.
      for (const s of this.states) {
        if (s.status.state.waiting) {
          s.status.state = {
            terminated: {
              exitCode: 137,
              reason: 'ContainerStatusUnknown',
              message: 'The container could not be located when the pod was terminated',
              startedAt: undefined,
              finishedAt: undefined,
            },
          };
          delete s.status.state.terminated?.startedAt;
          delete s.status.state.terminated?.finishedAt;
          s.status.ready = false;
          s.status.started = false;
        }
      }
    }
    const phase = this.evicted && this.finished ? 'Failed' : this.phase(pod.spec.restartPolicy ?? 'Always', terminal);
    const init = this.states.filter((s) => s.init);
    const main = this.states.filter((s) => !s.init);
    const now = rfc3339();
    this.cluster.store.update(POD, this.ns, this.name, (o) => {
      const p = o as Pod;
      const st: PodStatus = (p.status ??= {});
      st.phase = phase;
      st.hostIP = HOST_IP;
      st.hostIPs = [{ ip: HOST_IP }];
      st.podIP = this.podIP;
      st.podIPs = [{ ip: this.podIP }];
      st.startTime ??= this.startTime;
      if (this.evicted) {
        st.reason = this.evicted.reason;
        st.message = this.evicted.message;
      }
      const conds: Condition[] = (st.conditions ??= []);
      const kubeletConds: Condition[] = [];
      const put = (c: Omit<Condition, 'lastTransitionTime'>) => {
        setCondition(conds, { lastProbeTime: null, ...c }, now);
        kubeletConds.push(conds.find((x) => x.type === c.type) as Condition);
      };
      put({ type: 'PodReadyToStartContainers', status: terminal ? 'False' : 'True' });
      const uninit = init.filter((s) => s.status.state.terminated?.exitCode !== 0).map((s) => s.spec.name);
      put(
        uninit.length && phase !== 'Succeeded'
          ? {
              type: 'Initialized',
              status: 'False',
              reason: 'ContainersNotInitialized',
              message: `containers with incomplete status: [${uninit.join(' ')}]`,
            }
          : { type: 'Initialized', status: 'True' },
      );
      const unready = main.filter((s) => !s.status.ready).map((s) => s.spec.name);
      const readiness: Omit<Condition, 'type' | 'lastTransitionTime'> =
        phase === 'Succeeded'
          ? { status: 'False', reason: 'PodCompleted' }
          : phase === 'Failed'
            ? { status: 'False', reason: 'PodFailed' }
            : unready.length
              ? {
                  status: 'False',
                  reason: 'ContainersNotReady',
                  message: `containers with unready status: [${unready.join(' ')}]`,
                }
              : { status: 'True' };
      put({ type: 'Ready', ...readiness });
      put({ type: 'ContainersReady', ...readiness });
      // Kubelet-owned conditions first, in the kubelet's order; the scheduler's and others' after.
      st.conditions = [...kubeletConds, ...conds.filter((c) => !kubeletConds.includes(c))];
      if (init.length) st.initContainerStatuses = init.map((s) => structuredClone(s.status));
      st.containerStatuses = main.map((s) => structuredClone(s.status));
    });
  }
}
