import type { V1NodeSelectorRequirement, V1PodFailurePolicyRule } from '@kubernetes/client-node';
import { JOB, NODE, POD, backoffDelay, type Cluster, type EventSource } from './cluster.js';
import { parseQuantity } from './selectors.js';
import type { ResourceInfo } from './store.js';
import {
  clone,
  jsonEqual,
  KubeError,
  rfc3339,
  type Condition,
  type Job,
  type JobStatus,
  type KObject,
  type Pod,
} from './types.js';

export const TRACKING_FINALIZER = 'batch.kubernetes.io/job-tracking';

const isTerminal = (p: Pod) => p.status?.phase === 'Succeeded' || p.status?.phase === 'Failed';
const condTrue = (conds: Condition[] | undefined, type: string) =>
  conds?.some((c) => c.type === type && c.status === 'True') ?? false;

/** Sets a condition, keeping lastTransitionTime when its status does not change (like the controllers do). */
export function setCondition(conds: Condition[], c: Omit<Condition, 'lastTransitionTime'>, now = rfc3339()): void {
  const i = conds.findIndex((x) => x.type === c.type);
  const prev = conds[i];
  const next: Condition = {
    ...c,
    lastTransitionTime: prev && prev.status === c.status ? prev.lastTransitionTime : now,
  };
  if (i >= 0) conds[i] = next;
  else conds.push(next);
}

/** A debounced "something changed, look again" trigger: controllers are level-based passes over the store. */
class Kicker {
  private pending = false;
  private closed = false;
  constructor(private readonly pass: () => void) {}
  kick = (): void => {
    if (this.pending || this.closed) return;
    this.pending = true;
    setImmediate(() => {
      this.pending = false;
      if (this.closed) return;
      try {
        this.pass();
      } catch (e) {
        if (!(e instanceof KubeError)) console.error('fake kube controller pass failed:', e);
      }
    });
  };
  close(): void {
    this.closed = true;
  }
}

const JOB_SOURCE: EventSource = { component: 'job-controller' };

/**
 * The Job controller, for NonIndexed jobs (Indexed completion mode, backoffLimitPerIndex, successPolicy and
 * managedBy are not modelled). Pods carry the `batch.kubernetes.io/job-tracking` finalizer until counted, as since 1.26.
 * Replacement pods after failures are delayed by the Timing's jobBackoff (by default 0.5 s doubling up to 5 s; the
 * real controller, CLUSTER_TIMING: 10 s up to 6 min).
 */
export class JobController {
  private readonly kicker = new Kicker(() => this.pass());
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private readonly lastFailure = new Map<string, number>();
  private readonly unsubscribe: () => void;

  constructor(private readonly cluster: Cluster) {
    this.unsubscribe = cluster.store.subscribe((e) => {
      if (e.resource === 'pods' || e.resource === 'jobs.batch') this.kicker.kick();
    });
  }

  kick(): void {
    this.kicker.kick();
  }

  close(): void {
    this.kicker.close();
    this.unsubscribe();
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
  }

  private wakeAt(key: string, at: number): void {
    const prev = this.timers.get(key);
    if (prev) clearTimeout(prev);
    const t = setTimeout(
      () => {
        this.timers.delete(key);
        this.kicker.kick();
      },
      Math.max(0, at - Date.now()),
    );
    t.unref();
    this.timers.set(key, t);
  }

  private pass(): void {
    const store = this.cluster.store;
    const jobs = store.list(JOB) as Job[];
    const jobUids = new Set(jobs.map((j) => j.metadata.uid));
    for (const j of jobs) this.sync(j.metadata.namespace ?? '', j.metadata.name ?? '');
    // Pods whose Job is gone or which were orphaned lose the tracking finalizer (the controller's orphan handling).
    for (const p of store.list(POD) as Pod[]) {
      if (!p.metadata.finalizers?.includes(TRACKING_FINALIZER)) continue;
      const owner = p.metadata.ownerReferences?.find((r) => r.controller && r.kind === 'Job');
      if (!owner || !jobUids.has(owner.uid)) this.dropFinalizer(p);
    }
  }

  private dropFinalizer(p: Pod): void {
    this.cluster.store.update(POD, p.metadata.namespace ?? '', p.metadata.name ?? '', (o) => {
      o.metadata.finalizers = (o.metadata.finalizers ?? []).filter((f) => f !== TRACKING_FINALIZER);
    });
  }

  private podsOf(job: Job): Pod[] {
    return (this.cluster.store.list(POD, job.metadata.namespace) as Pod[]).filter((p) =>
      p.metadata.ownerReferences?.some((r) => r.controller && r.uid === job.metadata.uid),
    );
  }

  /** isPodFailed of the real controller: without a podFailurePolicy, a terminating pod already counts as failed. */
  private isPodFailed(p: Pod, job: Job): boolean {
    if (p.status?.phase === 'Failed') return true;
    if (job.spec.podFailurePolicy || job.spec.podReplacementPolicy === 'Failed') return false;
    return p.metadata.deletionTimestamp !== undefined && p.status?.phase !== 'Succeeded';
  }

  private deletePod(job: Job, p: Pod): void {
    if (p.metadata.deletionTimestamp) return;
    try {
      this.cluster.store.delete(POD, p.metadata.namespace ?? '', p.metadata.name ?? '', {});
      this.cluster.recordEvent(job, 'Normal', 'SuccessfulDelete', `Deleted pod: ${p.metadata.name}`, JOB_SOURCE);
    } catch (e) {
      if (!(e instanceof KubeError && e.code === 404)) throw e;
    }
  }

  private sync(ns: string, name: string): void {
    const store = this.cluster.store;
    const job = store.get(JOB, ns, name) as Job | undefined;
    if (!job) return;
    const uid = job.metadata.uid ?? '';
    const spec = job.spec;
    const st: JobStatus = clone(job.status ?? {});
    const conds = (st.conditions ??= []);
    const now = rfc3339();
    const finished = condTrue(conds, 'Complete') || condTrue(conds, 'Failed');
    let pods = this.podsOf(job);

    // Count finished pods still carrying the tracking finalizer, then release them.
    let failJob: { reason: string; message: string } | undefined;
    for (const p of pods) {
      if (!p.metadata.finalizers?.includes(TRACKING_FINALIZER)) continue;
      if (p.status?.phase === 'Succeeded') {
        if (!finished) st.succeeded = (st.succeeded ?? 0) + 1;
        this.dropFinalizer(p);
      } else if (this.isPodFailed(p, job)) {
        if (!finished) {
          const action = podFailurePolicyAction(job, p);
          if (action?.action === 'FailJob') failJob ??= { reason: 'PodFailurePolicy', message: action.message };
          if (action?.action !== 'Ignore') {
            st.failed = (st.failed ?? 0) + 1;
            this.lastFailure.set(uid, Date.now());
          }
        }
        this.dropFinalizer(p);
      } else if (finished) {
        this.dropFinalizer(p);
      }
    }
    pods = this.podsOf(job);
    let active = pods.filter((p) => !isTerminal(p) && !p.metadata.deletionTimestamp);
    const terminating = () => pods.filter((p) => !isTerminal(p) && p.metadata.deletionTimestamp).length;

    const write = () => {
      st.active = active.length || undefined;
      st.ready = active.filter((p) => condTrue(p.status?.conditions, 'Ready')).length;
      st.terminating = terminating();
      st.uncountedTerminatedPods ??= {};
      if (!st.conditions?.length) delete st.conditions;
      if (!jsonEqual(st, job.status ?? {})) {
        store.update(JOB, ns, name, (o) => {
          o.status = st;
        });
      }
    };

    if (job.metadata.deletionTimestamp) return write();
    if (finished) {
      this.scheduleTtl(job, conds);
      return write();
    }

    if (spec.suspend) {
      for (const p of active) this.deletePod(job, p);
      pods = this.podsOf(job);
      active = [];
      if (!condTrue(conds, 'Suspended')) {
        setCondition(
          conds,
          { type: 'Suspended', status: 'True', reason: 'JobSuspended', message: 'Job suspended' },
          now,
        );
        this.cluster.recordEvent(job, 'Normal', 'Suspended', 'Job suspended', JOB_SOURCE);
      }
      delete st.startTime;
      return write();
    }
    if (condTrue(conds, 'Suspended')) {
      setCondition(conds, { type: 'Suspended', status: 'False', reason: 'JobResumed', message: 'Job resumed' }, now);
      this.cluster.recordEvent(job, 'Normal', 'Resumed', 'Job resumed', JOB_SOURCE);
    }
    st.startTime ??= now;

    const existing = conds.find((c) => c.type === 'FailureTarget' && c.status === 'True');
    let failure = existing ? { reason: existing.reason ?? '', message: existing.message ?? '' } : failJob;
    const backoffLimit = spec.backoffLimit ?? 6;
    const backoffExceeded = { reason: 'BackoffLimitExceeded', message: 'Job has reached the specified backoff limit' };
    if (!failure && (st.failed ?? 0) > backoffLimit) failure = backoffExceeded;
    if (!failure && spec.template.spec?.restartPolicy === 'OnFailure') {
      const restarts = active
        .filter((p) => p.status?.phase === 'Running' || p.status?.phase === 'Pending')
        .flatMap((p) => [...(p.status?.containerStatuses ?? []), ...(p.status?.initContainerStatuses ?? [])])
        .reduce((n, c) => n + c.restartCount, 0);
      if (backoffLimit === 0 ? restarts > 0 : restarts >= backoffLimit) failure = backoffExceeded;
    }
    if (!failure && spec.activeDeadlineSeconds) {
      const deadline = Date.parse(st.startTime) + spec.activeDeadlineSeconds * 1000;
      if (Date.now() >= deadline) {
        failure = { reason: 'DeadlineExceeded', message: 'Job was active longer than specified deadline' };
      } else this.wakeAt(`deadline/${uid}`, deadline);
    }

    if (failure) {
      if (!existing) setCondition(conds, { type: 'FailureTarget', status: 'True', ...failure }, now);
      for (const p of active) this.deletePod(job, p);
      pods = this.podsOf(job);
      active = [];
      // The terminal condition waits until no pod is still terminating (1.31 behaviour).
      if (existing && terminating() === 0) {
        setCondition(conds, { type: 'Failed', status: 'True', ...failure }, now);
        this.cluster.recordEvent(job, 'Warning', failure.reason, failure.message, JOB_SOURCE);
      }
      write();
      if (!existing) this.kicker.kick();
      return;
    }

    const succeeded = st.succeeded ?? 0;
    const completions = spec.completions ?? undefined;
    const complete = completions !== undefined ? succeeded >= completions : succeeded > 0 && active.length === 0;
    if (complete) {
      const hadCriteria = condTrue(conds, 'SuccessCriteriaMet');
      if (!hadCriteria) {
        setCondition(
          conds,
          {
            type: 'SuccessCriteriaMet',
            status: 'True',
            reason: 'CompletionsReached',
            message: 'Reached expected number of succeeded pods',
          },
          now,
        );
      }
      for (const p of active) this.deletePod(job, p);
      pods = this.podsOf(job);
      active = [];
      if (hadCriteria && terminating() === 0) {
        setCondition(
          conds,
          {
            type: 'Complete',
            status: 'True',
            reason: 'CompletionsReached',
            message: 'Reached expected number of succeeded pods',
          },
          now,
        );
        st.completionTime = now;
        this.cluster.recordEvent(job, 'Normal', 'Completed', 'Job completed', JOB_SOURCE);
      }
      write();
      if (!hadCriteria) this.kicker.kick();
      return;
    }

    const parallelism = spec.parallelism ?? 1;
    const want =
      completions !== undefined ? Math.min(parallelism, completions - succeeded) : succeeded > 0 ? 0 : parallelism;
    const counted = active.length + (spec.podReplacementPolicy === 'Failed' ? terminating() : 0);
    if (want > counted) {
      const failed = st.failed ?? 0;
      const last = this.lastFailure.get(uid);
      const delay =
        failed > 0 && last !== undefined ? backoffDelay(this.cluster.opts.timing.jobBackoff, failed - 1) : 0;
      if (last !== undefined && Date.now() < last + delay) {
        this.wakeAt(`backoff/${uid}`, last + delay);
      } else {
        for (let i = counted; i < want; i++) {
          const pod = this.createPod(job);
          if (!pod) break;
          active.push(pod);
        }
      }
    } else if (want < counted) {
      for (const p of active.slice(want)) this.deletePod(job, p);
      active = active.slice(0, want);
    }
    write();
  }

  /** Undefined when the apiserver refused the pod (reported as a FailedCreate event, like the real controller). */
  private createPod(job: Job): Pod | undefined {
    const t = job.spec.template;
    let pod: Pod;
    try {
      pod = this.createPodFromTemplate(job, t);
    } catch (e) {
      if (!(e instanceof KubeError)) throw e;
      this.cluster.recordEvent(job, 'Warning', 'FailedCreate', `Error creating: ${e.message}`, JOB_SOURCE);
      return undefined;
    }
    this.cluster.recordEvent(job, 'Normal', 'SuccessfulCreate', `Created pod: ${pod.metadata.name}`, JOB_SOURCE);
    return pod;
  }

  private createPodFromTemplate(job: Job, t: Job['spec']['template']): Pod {
    return this.cluster.createPod(job.metadata.namespace ?? '', {
      metadata: {
        generateName: `${job.metadata.name}-`,
        labels: { ...t.metadata?.labels },
        ...(t.metadata?.annotations ? { annotations: { ...t.metadata.annotations } } : {}),
        ownerReferences: [
          {
            apiVersion: 'batch/v1',
            kind: 'Job',
            name: job.metadata.name ?? '',
            uid: job.metadata.uid ?? '',
            controller: true,
            blockOwnerDeletion: true,
          },
        ],
        finalizers: [TRACKING_FINALIZER],
      },
      spec: clone(t.spec) as Pod['spec'],
    });
  }

  /** The TTL-after-finished controller: deletes the Job (Background) ttlSecondsAfterFinished after it finished. */
  private scheduleTtl(job: Job, conds: Condition[]): void {
    const ttl = job.spec.ttlSecondsAfterFinished;
    if (ttl === undefined || ttl === null) return;
    const done = conds.find((c) => (c.type === 'Complete' || c.type === 'Failed') && c.status === 'True');
    if (!done?.lastTransitionTime) return;
    const at = Date.parse(done.lastTransitionTime) + ttl * 1000;
    const ns = job.metadata.namespace ?? '';
    const name = job.metadata.name ?? '';
    const key = `ttl/${job.metadata.uid}`;
    if (this.timers.has(key)) return;
    const t = setTimeout(
      () => {
        try {
          this.cluster.store.delete(JOB, ns, name, {
            propagationPolicy: 'Background',
            preconditions: { uid: job.metadata.uid ?? '' },
          });
        } catch {
          // Already gone or replaced: nothing to clean.
        }
      },
      Math.max(0, at - Date.now()),
    );
    t.unref();
    this.timers.set(key, t);
  }
}

/** Evaluates spec.podFailurePolicy for a failed pod (first matching rule wins). */
function podFailurePolicyAction(job: Job, pod: Pod): { action: string; message: string } | undefined {
  const rules: V1PodFailurePolicyRule[] = job.spec.podFailurePolicy?.rules ?? [];
  const who = `${pod.metadata.namespace}/${pod.metadata.name}`;
  for (const [i, rule] of rules.entries()) {
    if (rule.onPodConditions?.length) {
      for (const pc of rule.onPodConditions) {
        const c = pod.status?.conditions?.find((x) => x.type === pc.type);
        if (c && c.status === (pc.status ?? 'True')) {
          return {
            action: rule.action,
            message: `Pod ${who} has condition ${pc.type} matching ${rule.action} rule at index ${i}`,
          };
        }
      }
    }
    const oe = rule.onExitCodes;
    if (oe) {
      for (const cs of pod.status?.containerStatuses ?? []) {
        if (oe.containerName && oe.containerName !== cs.name) continue;
        const code = cs.state.terminated?.exitCode;
        if (code === undefined || code === 0) continue;
        const inSet = oe.values.includes(code);
        if (oe.operator === 'In' ? inSet : !inSet) {
          return {
            action: rule.action,
            message: `Container ${cs.name} for pod ${who} failed with exit code ${code} matching ${rule.action} rule at index ${i}`,
          };
        }
      }
    }
  }
  return undefined;
}

const SCHED_SOURCE: EventSource = { component: 'default-scheduler' };

/** Effective pod requests: max(sum of containers, any single init container), per resource. */
export function podRequests(p: Pod): Record<string, number> {
  const sum: Record<string, number> = {};
  for (const c of p.spec.containers ?? []) {
    for (const [k, v] of Object.entries(c.resources?.requests ?? {})) sum[k] = (sum[k] ?? 0) + parseQuantity(v);
  }
  for (const c of p.spec.initContainers ?? []) {
    for (const [k, v] of Object.entries(c.resources?.requests ?? {})) sum[k] = Math.max(sum[k] ?? 0, parseQuantity(v));
  }
  return sum;
}

function matchesNodeRequirement(r: V1NodeSelectorRequirement, labels: Record<string, string>): boolean {
  const has = r.key in labels;
  const v = labels[r.key];
  const values = r.values ?? [];
  switch (r.operator) {
    case 'In':
      return has && values.includes(v as string);
    case 'NotIn':
      return !has || !values.includes(v as string);
    case 'Exists':
      return has;
    case 'DoesNotExist':
      return !has;
    case 'Gt':
      return has && Number(v) > Number(values[0]);
    case 'Lt':
      return has && Number(v) < Number(values[0]);
    default:
      return false;
  }
}

/** The scheduler for the single fake node: nodeSelector, required node affinity and resource fit. Taints are not modelled. */
export class Scheduler {
  private readonly kicker = new Kicker(() => this.pass());
  private readonly unsubscribe: () => void;

  constructor(private readonly cluster: Cluster) {
    this.unsubscribe = cluster.store.subscribe((e) => {
      if (e.resource === 'pods' || e.resource === 'nodes') this.kicker.kick();
    });
    this.kicker.kick();
  }

  close(): void {
    this.kicker.close();
    this.unsubscribe();
  }

  private pass(): void {
    const store = this.cluster.store;
    const node = store.get(NODE, '', this.cluster.nodeName);
    if (!node) return;
    const labels = node.metadata.labels ?? {};
    const allocatable = (node.status as { allocatable: Record<string, string> }).allocatable;
    const pods = store.list(POD) as Pod[];
    const used: Record<string, number> = {};
    for (const p of pods) {
      if (p.spec.nodeName !== this.cluster.nodeName || isTerminal(p)) continue;
      for (const [k, v] of Object.entries(podRequests(p))) used[k] = (used[k] ?? 0) + v;
    }
    const pending = pods
      .filter(
        (p) =>
          !p.spec.nodeName &&
          !p.metadata.deletionTimestamp &&
          p.spec.schedulerName === 'default-scheduler' &&
          p.status?.phase === 'Pending',
      )
      .sort((a, b) => Number(a.metadata.resourceVersion) - Number(b.metadata.resourceVersion));
    for (const p of pending) {
      const ns = p.metadata.namespace ?? '';
      const name = p.metadata.name ?? '';
      let message: string | undefined;
      const selectorOk =
        Object.entries(p.spec.nodeSelector ?? {}).every(([k, v]) => labels[k] === v) &&
        (() => {
          const terms =
            p.spec.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms;
          if (!terms?.length) return true;
          return terms.some((t) => (t.matchExpressions ?? []).every((r) => matchesNodeRequirement(r, labels)));
        })();
      if (!selectorOk) {
        message =
          "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector. preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling.";
      } else {
        const req = podRequests(p);
        const short: string[] = [];
        let hopeless = false;
        for (const [k, v] of Object.entries(req)) {
          if (v <= 0) continue;
          const cap = parseQuantity(allocatable[k] ?? '0');
          if ((used[k] ?? 0) + v > cap) short.push(k);
          if (v > cap) hopeless = true;
        }
        if (short.length) {
          message = `0/1 nodes are available: ${short
            .sort()
            .map((k) => `1 Insufficient ${k}`)
            .join(', ')}. preemption: 0/1 nodes are available: 1 ${
            hopeless ? 'Preemption is not helpful for scheduling' : 'No preemption victims found for incoming pod'
          }.`;
        } else {
          for (const [k, v] of Object.entries(req)) used[k] = (used[k] ?? 0) + v;
        }
      }
      if (message) {
        const prev = p.status?.conditions?.find((c) => c.type === 'PodScheduled');
        if (prev?.status === 'False' && prev.message === message) continue;
        store.update(POD, ns, name, (o) => {
          const st = ((o as Pod).status ??= {});
          setCondition((st.conditions ??= []), {
            type: 'PodScheduled',
            status: 'False',
            lastProbeTime: null,
            reason: 'Unschedulable',
            message,
          });
        });
        this.cluster.recordEvent(p, 'Warning', 'FailedScheduling', message, SCHED_SOURCE);
        continue;
      }
      // The binding subresource sets nodeName and PodScheduled=True in one write.
      store.update(POD, ns, name, (o) => {
        const pod = o as Pod;
        pod.spec.nodeName = this.cluster.nodeName;
        const st = (pod.status ??= {});
        setCondition((st.conditions ??= []), { type: 'PodScheduled', status: 'True', lastProbeTime: null });
      });
      this.cluster.recordEvent(
        p,
        'Normal',
        'Scheduled',
        `Successfully assigned ${ns}/${name} to ${this.cluster.nodeName}`,
        SCHED_SOURCE,
      );
    }
  }
}

/**
 * The garbage collector (ownerReferences, orphan and foregroundDeletion finalizers) plus the pod GC's handling of
 * terminating pods that never reached a node (marked Failed so the Job controller can count them).
 */
export class GarbageCollector {
  private readonly kicker = new Kicker(() => this.pass());
  private readonly unsubscribe: () => void;

  constructor(private readonly cluster: Cluster) {
    this.unsubscribe = cluster.store.subscribe((e) => {
      if (e.resource !== 'events') this.kicker.kick();
    });
  }

  close(): void {
    this.kicker.close();
    this.unsubscribe();
  }

  private pass(): void {
    const store = this.cluster.store;
    const all: Array<{ info: ResourceInfo; obj: KObject }> = [];
    for (const info of store.infos.values()) {
      if (info.plural === 'events') continue;
      for (const obj of store.list(info)) all.push({ info, obj });
    }
    const uids = new Set(all.map((x) => x.obj.metadata.uid));
    const dependentsOf = (uid: string | undefined) =>
      all.filter((x) => x.obj.metadata.ownerReferences?.some((r) => r.uid === uid));
    const key = (x: { obj: KObject }) => [x.obj.metadata.namespace ?? '', x.obj.metadata.name ?? ''] as const;

    for (const owner of all) {
      const m = owner.obj.metadata;
      if (!m.deletionTimestamp) continue;
      if (m.finalizers?.includes('orphan')) {
        for (const d of dependentsOf(m.uid)) {
          store.update(d.info, ...key(d), (o) => {
            o.metadata.ownerReferences = o.metadata.ownerReferences?.filter((r) => r.uid !== m.uid);
            if (!o.metadata.ownerReferences?.length) delete o.metadata.ownerReferences;
          });
        }
        store.update(owner.info, ...key(owner), (o) => {
          o.metadata.finalizers = o.metadata.finalizers?.filter((f) => f !== 'orphan');
        });
      } else if (m.finalizers?.includes('foregroundDeletion')) {
        const deps = dependentsOf(m.uid);
        for (const d of deps) {
          if (!d.obj.metadata.deletionTimestamp) this.deleteQuietly(d.info, d.obj);
        }
        const blocking = deps.filter(
          (d) =>
            store.get(d.info, ...key(d)) &&
            d.obj.metadata.ownerReferences?.some((r) => r.uid === m.uid && r.blockOwnerDeletion),
        );
        if (!blocking.length) {
          store.update(owner.info, ...key(owner), (o) => {
            o.metadata.finalizers = o.metadata.finalizers?.filter((f) => f !== 'foregroundDeletion');
          });
        }
      }
    }

    for (const d of all) {
      const refs = d.obj.metadata.ownerReferences;
      if (!refs?.length || d.obj.metadata.deletionTimestamp || !store.get(d.info, ...key(d))) continue;
      const missing = refs.filter((r) => !uids.has(r.uid));
      if (!missing.length) continue;
      if (missing.length === refs.length) this.deleteQuietly(d.info, d.obj);
      else {
        store.update(d.info, ...key(d), (o) => {
          o.metadata.ownerReferences = o.metadata.ownerReferences?.filter((r) => uids.has(r.uid));
        });
      }
    }

    for (const p of store.list(POD) as Pod[]) {
      if (p.metadata.deletionTimestamp && !p.spec.nodeName && !isTerminal(p)) {
        store.update(POD, p.metadata.namespace ?? '', p.metadata.name ?? '', (o) => {
          ((o as Pod).status ??= {}).phase = 'Failed';
        });
      }
    }
  }

  private deleteQuietly(info: ResourceInfo, obj: KObject): void {
    try {
      this.cluster.store.delete(info, obj.metadata.namespace ?? '', obj.metadata.name ?? '', {
        propagationPolicy: 'Background',
        preconditions: { uid: obj.metadata.uid ?? '' },
      });
    } catch (e) {
      if (!(e instanceof KubeError)) throw e;
    }
  }
}
