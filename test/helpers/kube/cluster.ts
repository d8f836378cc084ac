import { watchCrds } from './crd.js';
import { Store, type ResourceInfo } from './store.js';
import { clone, newUid, randomSuffix, rfc3339, type KObject, type Pod } from './types.js';
import { preparePod, subdomainErrors } from './validation.js';
import { invalid } from './types.js';

const core = (plural: string, kind: string, namespaced = true, statusSubresource = false): ResourceInfo => ({
  group: '',
  version: 'v1',
  plural,
  kind,
  namespaced,
  builtin: true,
  statusSubresource,
  hasGeneration: false,
});

export const POD = core('pods', 'Pod', true, true);
export const SECRET = core('secrets', 'Secret');
export const CONFIGMAP = core('configmaps', 'ConfigMap');
export const EVENT = core('events', 'Event');
export const NAMESPACE = core('namespaces', 'Namespace', false, true);
export const NODE = core('nodes', 'Node', false, true);
export const JOB: ResourceInfo = {
  group: 'batch',
  version: 'v1',
  plural: 'jobs',
  kind: 'Job',
  namespaced: true,
  builtin: true,
  statusSubresource: true,
  hasGeneration: true,
};
export const CRD: ResourceInfo = {
  group: 'apiextensions.k8s.io',
  version: 'v1',
  plural: 'customresourcedefinitions',
  kind: 'CustomResourceDefinition',
  namespaced: false,
  builtin: true,
  statusSubresource: true,
  hasGeneration: true,
};
export const BUILTINS = [POD, SECRET, CONFIGMAP, EVENT, NAMESPACE, NODE, JOB, CRD];

/** API groups served by a real apiserver: requests for resources in them that this fake lacks are 404s. */
export const BUILTIN_GROUPS = new Set([
  '',
  'batch',
  'policy',
  'apps',
  'autoscaling',
  'rbac.authorization.k8s.io',
  'networking.k8s.io',
  'storage.k8s.io',
  'apiextensions.k8s.io',
  'apiregistration.k8s.io',
  'admissionregistration.k8s.io',
  'coordination.k8s.io',
  'discovery.k8s.io',
  'events.k8s.io',
  'node.k8s.io',
  'scheduling.k8s.io',
  'certificates.k8s.io',
  'authentication.k8s.io',
  'authorization.k8s.io',
  'flowcontrol.apiserver.k8s.io',
  'resource.k8s.io',
]);

export interface EventSource {
  component: string;
  host?: string;
}

/** Delays the controllers and the kubelet wait, as a back-off doubling from base to max (ms). */
export interface Backoff {
  baseMs: number;
  maxMs: number;
}

/**
 * How long things take. The defaults keep tests fast; CLUSTER_TIMING is what a real cluster does (Job controller
 * back-off 10 s doubling to 6 min, kubelet crash-loop back-off 10 s to 5 min), with a pod start (image pull and
 * sandbox) of a few seconds.
 */
export interface Timing {
  /** Before a failed Job pod is replaced. Default 0.5 s to 5 s. */
  jobBackoff: Backoff;
  /** Before a crashed container of a restarting pod is started again (CrashLoopBackOff). Default 1 s to 5 s. */
  restartBackoff: Backoff;
  /** How long a scheduled pod stays ContainerCreating before its image is there (a pull, even of a present image). */
  podStartMs: number;
}

export const FAST_TIMING: Timing = {
  jobBackoff: { baseMs: 500, maxMs: 5_000 },
  restartBackoff: { baseMs: 1_000, maxMs: 5_000 },
  podStartMs: 0,
};
export const CLUSTER_TIMING: Timing = {
  jobBackoff: { baseMs: 10_000, maxMs: 360_000 },
  restartBackoff: { baseMs: 10_000, maxMs: 300_000 },
  podStartMs: 4_000,
};

/** The n-th delay (n from 0) of a back-off. */
export const backoffDelay = (b: Backoff, n: number): number => Math.min(b.baseMs * 2 ** n, b.maxMs);

export interface ClusterOptions {
  namespaces: string[];
  nodeName: string;
  nodeLabels: Record<string, string>;
  allocatable: Record<string, string>;
  timing: Timing;
}

/** Shared state of the fake control plane: the store plus what every controller needs (events, pod creation). */
export class Cluster {
  readonly store = new Store();
  readonly nodeName: string;
  private readonly eventKeys = new Map<string, { ns: string; name: string }>();
  private eventSeq = 0;

  constructor(readonly opts: ClusterOptions) {
    this.nodeName = opts.nodeName;
    for (const info of BUILTINS) this.store.register(info);
    watchCrds(this);
    for (const ns of opts.namespaces) {
      this.store.create(NAMESPACE, {
        apiVersion: 'v1',
        kind: 'Namespace',
        metadata: { name: ns, uid: newUid(), labels: { 'kubernetes.io/metadata.name': ns } },
        spec: { finalizers: ['kubernetes'] },
        status: { phase: 'Active' },
      });
    }
    const capacity = { pods: '110', 'ephemeral-storage': '100Gi', ...opts.allocatable };
    this.store.create(NODE, {
      apiVersion: 'v1',
      kind: 'Node',
      metadata: { name: opts.nodeName, uid: newUid(), labels: { ...opts.nodeLabels } },
      spec: {},
      status: {
        capacity,
        allocatable: capacity,
        conditions: [
          {
            type: 'Ready',
            status: 'True',
            reason: 'KubeletReady',
            message: 'kubelet is posting ready status',
            lastHeartbeatTime: rfc3339(),
            lastTransitionTime: rfc3339(),
          },
        ],
        addresses: [
          { type: 'InternalIP', address: HOST_IP },
          { type: 'Hostname', address: opts.nodeName },
        ],
        nodeInfo: {
          kubeletVersion: 'v1.31.0',
          containerRuntimeVersion: 'docker://fake',
          operatingSystem: 'linux',
          architecture: opts.nodeLabels['kubernetes.io/arch'] ?? 'amd64',
        },
      },
    });
  }

  namespaceExists(ns: string): boolean {
    return this.store.get(NAMESPACE, '', ns) !== undefined;
  }

  /**
   * Creates a pod the way the apiserver would (generateName, validation, defaulting, admission); used by the API,
   * the job controller and the test-side `createPod`.
   */
  createPod(ns: string, body: Pod): Pod {
    const pod = clone(body);
    pod.apiVersion = 'v1';
    pod.kind = 'Pod';
    pod.metadata ??= {};
    pod.metadata.namespace = ns;
    if (!pod.metadata.name && pod.metadata.generateName) {
      pod.metadata.name = generateName(pod.metadata.generateName);
    }
    const name = pod.metadata.name ?? '';
    if (!name) {
      throw invalid('Pod', '', '', [
        { field: 'metadata.name', type: 'Required', detail: 'name or generateName is required' },
      ]);
    }
    const nameErrs = subdomainErrors('metadata.name', name);
    if (nameErrs.length) throw invalid('Pod', '', name, nameErrs);
    pod.metadata.uid = newUid();
    preparePod(pod);
    return this.store.create(POD, pod) as Pod;
  }

  /**
   * Records an Event like client-go's recorder: repeats of the same (object, reason, message) bump `count` and
   * `lastTimestamp` on the existing Event instead of creating a new one.
   */
  recordEvent(
    involved: KObject,
    type: 'Normal' | 'Warning',
    reason: string,
    message: string,
    source: EventSource,
    fieldPath?: string,
  ): void {
    const ns = involved.metadata.namespace || 'default';
    const key = [involved.metadata.uid, type, reason, message, fieldPath ?? '', source.component].join('\u0000');
    const now = rfc3339();
    const seen = this.eventKeys.get(key);
    if (seen && this.store.get(EVENT, seen.ns, seen.name)) {
      this.store.update(EVENT, seen.ns, seen.name, (e) => {
        e.count = ((e.count as number | undefined) ?? 1) + 1;
        e.lastTimestamp = now;
      });
      return;
    }
    const name = `${involved.metadata.name}.${(BigInt(Date.now()) * 1_000_000n + BigInt(this.eventSeq++ % 1_000_000)).toString(16)}`;
    const involvedObject: Record<string, unknown> = {
      kind: involved.kind,
      namespace: involved.metadata.namespace,
      name: involved.metadata.name,
      uid: involved.metadata.uid,
      apiVersion: involved.apiVersion,
      resourceVersion: involved.metadata.resourceVersion,
    };
    if (fieldPath) involvedObject.fieldPath = fieldPath;
    this.store.create(EVENT, {
      apiVersion: 'v1',
      kind: 'Event',
      metadata: { name, namespace: ns, uid: newUid() },
      involvedObject,
      reason,
      message,
      source: source.host ? { component: source.component, host: source.host } : { component: source.component },
      firstTimestamp: now,
      lastTimestamp: now,
      count: 1,
      type,
      eventTime: null,
      reportingComponent: source.component,
      reportingInstance: source.host ?? '',
    });
    this.eventKeys.set(key, { ns, name });
  }
}

export const HOST_IP = '10.0.0.10';

/** generateName: the prefix (cut to leave room) plus five random characters. */
export function generateName(prefix: string): string {
  return `${prefix.slice(0, 58)}${randomSuffix(5)}`;
}
