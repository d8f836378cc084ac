import type { AgentConfigFile } from '@liftoff/core';
import { LABEL_AGENT, LABEL_RUN, labelValue } from '../../runners/kubernetes/manifest.js';

type Obj = Record<string, unknown>;
export type BuilderConfigFile = NonNullable<AgentConfigFile['builder']>;

export const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

export const LABEL_ROLE = 'liftoff.dev/role';

/**
 * The `liftoff.dev/run-id` value of a run's build objects: `<run id>-build`, not the run id itself. The kubernetes
 * runner finds a run's Job and pods by that label (re-adoption after an agent restart, its pod watch), so a build Job
 * left by a crashed agent must not look like the run's Job; its start-up sweep deletes it as a leftover instead.
 */
export const buildRunLabel = (runId: string): string => `${runId}-build`;
/** W&B's default `build-job-name`, kept so existing RBAC, quotas and dashboards keyed on it keep working. */
export const DEFAULT_BUILD_JOB_NAME = 'wandb-launch-container-build';
/** W&B's build timeout (`_DEFAULT_BUILD_TIMEOUT_SECS`); `kaniko-config` spec.activeDeadlineSeconds overrides it. */
export const DEFAULT_BUILD_DEADLINE_SECONDS = 1800;
/** A finished build Job is deleted by the agent at once; this only bounds one an agent crash left behind. */
const TTL_SECONDS_AFTER_FINISHED = 600;

/** What a builder puts in the Job's one container and pod: the rest of the Job is the skeleton's. */
export interface BuildPod {
  container: Obj;
  volumes: Obj[];
}

export interface JobInput {
  name: string;
  namespace: string;
  runId: string;
  agentId: string;
  pod: BuildPod;
  /** The agent config's `builder.kaniko-config`: a Job fragment the skeleton is merged over. */
  fragment: Obj | undefined;
}

/**
 * The build Job: the `kaniko-config` fragment as the base (W&B's meaning: any Job field, and at most one container
 * whose fields are kept), then what the build needs on top: name, namespace, labels, `backoffLimit: 0` (a failed
 * build is not retried: it fails the same way), a deadline, `restartPolicy: Never`, the builder's container (its
 * args merged by the builder) and volumes appended to the fragment's. The pod gets no service-account token unless
 * the fragment asks for one: a build needs no access to the Kubernetes API.
 */
export function buildJobBody(input: JobInput): Obj {
  const base = structuredClone(input.fragment ?? {});
  const labels = {
    'app.kubernetes.io/managed-by': 'liftoff',
    [LABEL_RUN]: buildRunLabel(input.runId),
    [LABEL_AGENT]: labelValue(input.agentId),
    [LABEL_ROLE]: 'build',
  };
  const meta = isObj(base.metadata) ? base.metadata : {};
  const spec = isObj(base.spec) ? base.spec : {};
  const template = isObj(spec.template) ? spec.template : {};
  const tmeta = isObj(template.metadata) ? template.metadata : {};
  const pod = isObj(template.spec) ? template.spec : {};
  const given = Array.isArray(pod.containers) ? pod.containers.filter(isObj) : [];
  const first = given[0] ?? {};
  const list = (o: Obj, k: string): unknown[] => (Array.isArray(o[k]) ? o[k] : []);
  // The fragment's env and mounts stay, the build's are added after them (so a duplicate env name is the build's).
  const container = {
    ...first,
    ...input.pod.container,
    env: [...list(first, 'env'), ...list(input.pod.container, 'env')],
    volumeMounts: [...list(first, 'volumeMounts'), ...list(input.pod.container, 'volumeMounts')],
  };
  return {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: {
      ...meta,
      name: input.name,
      namespace: input.namespace,
      labels: { ...(isObj(meta.labels) ? meta.labels : {}), ...labels },
    },
    spec: {
      ttlSecondsAfterFinished: TTL_SECONDS_AFTER_FINISHED,
      activeDeadlineSeconds: DEFAULT_BUILD_DEADLINE_SECONDS,
      ...spec,
      backoffLimit: 0,
      template: {
        ...template,
        metadata: { ...tmeta, labels: { ...(isObj(tmeta.labels) ? tmeta.labels : {}), ...labels } },
        spec: {
          automountServiceAccountToken: false,
          ...pod,
          restartPolicy: 'Never',
          containers: [container],
          volumes: [...(Array.isArray(pod.volumes) ? (pod.volumes as unknown[]) : []), ...input.pod.volumes],
        },
      },
    },
  };
}

/** The fragment's one container (W&B allows at most one), or undefined; more than one is refused by the caller. */
export function fragmentContainer(fragment: Obj | undefined): { count: number; container: Obj | undefined } {
  const spec = isObj(fragment?.spec) ? fragment.spec : {};
  const template = isObj(spec.template) ? spec.template : {};
  const pod = isObj(template.spec) ? template.spec : {};
  const list = Array.isArray(pod.containers) ? pod.containers : [];
  return { count: list.length, container: list.find(isObj) };
}

/** A dockerconfigjson for one registry host (what kaniko reads at /kaniko/.docker/config.json, buildah via REGISTRY_AUTH_FILE). */
export function dockerConfigJson(host: string, login: { username: string; password: string }): string {
  const auth = Buffer.from(`${login.username}:${login.password}`).toString('base64');
  return JSON.stringify({ auths: { [host]: { username: login.username, password: login.password, auth } } });
}
