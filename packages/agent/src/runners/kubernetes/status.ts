import type { V1ContainerStatus, V1Job, V1Pod } from '@kubernetes/client-node';

/** What one pod says about its run. */
export interface PodSignal {
  running: boolean;
  /** A problem that may resolve (or time out): unschedulable, image pull back-off, crash loop. */
  warning?: string;
  /** The pod was taken away (evicted, preempted, node pressure): the run is `preempted` if its Job then fails. */
  disruption?: string;
  /** The last container that ended badly, for the failure message. */
  failure?: { container: string; exitCode: number; reason: string; message?: string };
}

/** Waiting reasons that mean "stuck" rather than "on its way". */
const STUCK_REASONS = new Set([
  'ErrImagePull',
  'ImagePullBackOff',
  'InvalidImageName',
  'CrashLoopBackOff',
  'CreateContainerConfigError',
  'CreateContainerError',
  'RunContainerError',
]);
/** DisruptionTarget reasons: the pod ends through no fault of the job's. */
const DISRUPTIONS = new Set([
  'EvictionByEvictionAPI',
  'PreemptionByScheduler',
  'PreemptionByKubeScheduler',
  'TerminationByKubelet',
  'DeletionByTaintManager',
  'DeletionByPodGC',
]);

/** The kubelet's eviction message for the run's outputs emptyDir (outputs.ts OUTPUTS_VOLUME) past its sizeLimit. */
const OUTPUTS_OVER_CAP = /Usage of EmptyDir volume "liftoff-outputs" exceeds the limit/;

export function readPod(pod: V1Pod, deleted = false): PodSignal {
  const name = pod.metadata?.name ?? '?';
  const statuses: V1ContainerStatus[] = [
    ...(pod.status?.initContainerStatuses ?? []),
    ...(pod.status?.containerStatuses ?? []),
  ];
  const signal: PodSignal = {
    running: !deleted && pod.status?.phase === 'Running' && statuses.some((s) => s.state?.running),
  };
  const conditions = pod.status?.conditions ?? [];
  const unschedulable = conditions.find(
    (c) => c.type === 'PodScheduled' && c.status === 'False' && c.reason === 'Unschedulable',
  );
  if (unschedulable) signal.warning = `pod ${name} is unschedulable: ${unschedulable.message ?? 'no node fits'}`;
  for (const s of statuses) {
    const waiting = s.state?.waiting;
    if (waiting?.reason && STUCK_REASONS.has(waiting.reason)) {
      signal.warning = `pod ${name}, container ${s.name}: ${waiting.reason}${waiting.message ? `: ${waiting.message}` : ''}`;
    }
    const ended = s.state?.terminated ?? (s.state?.waiting ? s.lastState?.terminated : undefined);
    if (ended && ended.exitCode !== 0) {
      signal.failure = {
        container: s.name,
        exitCode: ended.exitCode,
        reason: ended.reason ?? 'Error',
        ...(ended.message ? { message: ended.message } : {}),
      };
    }
  }
  // Past its sizeLimit the kubelet evicts the pod (kubelet eviction manager: "Usage of EmptyDir volume %q exceeds
  // the limit %q."). That is the job's doing, not a disruption: retrying would only fill it again.
  // The kubelet sets the DisruptionTarget condition with the same message before the pod's phase turns Failed.
  const overCap =
    OUTPUTS_OVER_CAP.test(pod.status?.message ?? '') ||
    conditions.some((c) => c.type === 'DisruptionTarget' && OUTPUTS_OVER_CAP.test(c.message ?? ''));
  if (overCap) {
    const last = signal.failure;
    signal.failure = {
      container: last?.container ?? statuses.at(-1)?.name ?? 'main',
      exitCode: last?.exitCode ?? 137,
      reason: 'Evicted',
      message:
        "LIFTOFF_OUTPUT_DIR went past its cap (the agent's outputs-max-mib) and the kubelet evicted the pod; write less there, or raise outputs-max-mib",
    };
    return signal;
  }
  const disrupted = conditions.find(
    (c) => c.type === 'DisruptionTarget' && c.status === 'True' && DISRUPTIONS.has(c.reason ?? ''),
  );
  if (disrupted)
    signal.disruption = `pod ${name}: ${disrupted.reason}${disrupted.message ? `: ${disrupted.message}` : ''}`;
  else if (pod.status?.phase === 'Failed' && pod.status.reason === 'Evicted')
    signal.disruption = `pod ${name}: Evicted${pod.status.message ? `: ${pod.status.message}` : ''}`;
  return signal;
}

export type JobEnd = { state: 'finished' } | { state: 'failed'; reason: string; message: string };

/** A Job's outcome from its conditions (Complete / Failed), the authority once the Job controller decided. */
export function readJob(job: V1Job): JobEnd | undefined {
  const conditions = job.status?.conditions ?? [];
  const isTrue = (type: string) => conditions.find((c) => c.type === type && c.status === 'True');
  if (isTrue('Complete')) return { state: 'finished' };
  const failed = isTrue('Failed');
  if (failed) return { state: 'failed', reason: failed.reason ?? 'Failed', message: failed.message ?? '' };
  return undefined;
}

export type CustomPhase = 'starting' | 'running' | 'finished' | 'failed' | 'stopping';

/** Phase words operators use (Kubeflow, Volcano, JobSet, Ray ...), lower-cased, mapped as W&B Launch maps them. */
const CUSTOM_PHASES: Record<string, CustomPhase> = {
  created: 'starting',
  pending: 'starting',
  queued: 'starting',
  inqueue: 'starting',
  restarting: 'starting',
  running: 'running',
  completing: 'running',
  succeeded: 'finished',
  completed: 'finished',
  complete: 'finished',
  finished: 'finished',
  failed: 'failed',
  aborted: 'failed',
  timeout: 'failed',
  terminated: 'failed',
  terminating: 'stopping',
  aborting: 'stopping',
};

/**
 * A custom resource's phase: `status.state.phase` (Volcano), else `status.phase`, else its newest true condition
 * (Kubeflow training operators, JobSet). Unknown words leave the phase unknown.
 */
export function readCustom(obj: unknown): { phase: CustomPhase; detail: string } | undefined {
  const status = (obj as { status?: Record<string, unknown> } | undefined)?.status;
  if (!status) return undefined;
  const state = status.state as { phase?: unknown } | undefined;
  const word = typeof state?.phase === 'string' ? state.phase : typeof status.phase === 'string' ? status.phase : '';
  const direct = CUSTOM_PHASES[word.toLowerCase()];
  if (direct) return { phase: direct, detail: word };
  const conditions = Array.isArray(status.conditions)
    ? (status.conditions as Array<{ type?: string; status?: string; reason?: string; message?: string }>)
    : [];
  for (const c of [...conditions].reverse()) {
    if (c.status !== 'True' || !c.type) continue;
    const phase = CUSTOM_PHASES[c.type.toLowerCase()];
    if (phase) return { phase, detail: [c.type, c.reason, c.message].filter(Boolean).join(': ') };
  }
  return undefined;
}
