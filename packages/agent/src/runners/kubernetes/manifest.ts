import { createHash } from 'node:crypto';
import { ManifestRefusedError, type LaunchSpec } from '@liftoff/core';
import { defaultServiceAccountToken, hardenContainer, normKey } from './guardrails.js';

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

export const LABEL_RUN = 'liftoff.dev/run-id';
export const LABEL_ITEM = 'liftoff.dev/item-id';
export const LABEL_AGENT = 'liftoff.dev/agent';
export const LABEL_QUEUE = 'liftoff.dev/queue';
export const LABEL_ENTITY = 'liftoff.dev/entity';
export const ANNOTATION_AGENT_ID = 'liftoff.dev/agent-id';
const MANAGED_BY = { 'app.kubernetes.io/managed-by': 'liftoff' };

/** Finished Jobs stay this long for `kubectl describe` before Kubernetes deletes them (and their pods). */
export const DEFAULT_TTL_SECONDS_AFTER_FINISHED = 600;

/** Keys of `resource_args.kubernetes` that steer the runner instead of being part of the manifest. */
const SETTING_KEYS = ['namespace', 'plural', 'builder'] as const;
/**
 * Keys (compared as guardrail keys are: case, "-" and "_" ignored) that would choose how the agent reaches a
 * cluster. W&B reads `configFile` and `context` from resource args; here that would let a job make the agent load a
 * kubeconfig of its choosing (whose `exec` plugin runs on the agent host), so cluster access is the agent config's.
 */
const CLUSTER_ACCESS_KEYS = new Set(
  [
    'configFile',
    'config',
    'kubeconfig',
    'kubeconfigFile',
    'kubeconfigPath',
    'context',
    'kubeContext',
    'cluster',
    'server',
    'user',
    'token',
    'credentials',
    'exec',
    'authProvider',
    'serviceAccountDir',
  ].map(normKey),
);
const MANIFEST_KEYS = ['apiVersion', 'kind', 'metadata', 'spec'] as const;

export interface KubeSettings {
  /** Legacy W&B key; `metadata.namespace` wins. */
  namespace?: string;
  /** Custom resources: the plural of the kind's resource (default: lower-cased kind + "s"). */
  plural?: string;
}

/** Splits the job's `resource_args.kubernetes` into runner settings and the manifest fragment. */
export function splitResourceArgs(args: Obj | undefined): { settings: KubeSettings; fragment: Obj } {
  const settings: KubeSettings = {};
  const fragment: Obj = {};
  for (const [k, v] of Object.entries(args ?? {})) {
    if (CLUSTER_ACCESS_KEYS.has(normKey(k)))
      throw new ManifestRefusedError(
        `resource_args.kubernetes.${k} is refused: a job cannot choose how the agent reaches its cluster. Cluster access (kubeconfig, context, credentials) comes only from the agent config: set kubernetes.config-file and kubernetes.context in the agent's launch-config.yaml.`,
      );
    if ((MANIFEST_KEYS as readonly string[]).includes(k)) fragment[k] = structuredClone(v);
    else if (k === 'builder') continue;
    else if ((SETTING_KEYS as readonly string[]).includes(k)) {
      if (typeof v !== 'string' || !v)
        throw new ManifestRefusedError(`resource_args.kubernetes.${k} must be a non-empty string.`);
      settings[k as keyof KubeSettings] = v;
    } else {
      throw new ManifestRefusedError(
        `resource_args.kubernetes.${k} is not something Liftoff understands: give a manifest (${MANIFEST_KEYS.join(', ')}) and optionally ${SETTING_KEYS.filter((s) => s !== 'builder').join(', ')}.`,
      );
    }
  }
  if (fragment.metadata !== undefined && !isObj(fragment.metadata))
    throw new ManifestRefusedError('resource_args.kubernetes.metadata must be an object.');
  if (fragment.spec !== undefined && !isObj(fragment.spec))
    throw new ManifestRefusedError('resource_args.kubernetes.spec must be an object.');
  return { settings, fragment };
}

/** A Kubernetes label value: at most 63 characters of [A-Za-z0-9._-], alphanumeric at both ends; hashed otherwise. */
export function labelValue(s: string): string {
  if (s.length <= 63 && /^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$/.test(s)) return s;
  const hash = createHash('sha256').update(s).digest('hex').slice(0, 10);
  const head = s
    .replace(/[^A-Za-z0-9._-]+/g, '-')
    .replace(/^[^A-Za-z0-9]+/, '')
    .slice(0, 50)
    .replace(/[^A-Za-z0-9]+$/, '');
  return head ? `${head}-${hash}` : hash;
}

export interface JobIdentity {
  runId: string;
  itemId: string;
  queue: string;
  entity: string;
  agentId: string;
}

export const runLabels = (id: JobIdentity): Record<string, string> => ({
  ...MANAGED_BY,
  [LABEL_RUN]: id.runId,
  [LABEL_ITEM]: labelValue(id.itemId),
  [LABEL_AGENT]: labelValue(id.agentId),
  [LABEL_QUEUE]: labelValue(id.queue),
  [LABEL_ENTITY]: labelValue(id.entity),
});

export interface ManifestInput extends JobIdentity {
  spec: LaunchSpec;
  image: string;
  env: Record<string, string>;
  namespace: string;
  /** A dockerconfigjson Secret the pods pull with. */
  pullSecret?: string;
  /** The queue allows service-account tokens in pods (`serviceAccountToken`). */
  tokenAllowed?: boolean;
}

export type BuiltManifest =
  | { kind: 'job'; namespace: string; name: string; body: Obj }
  | {
      kind: 'custom';
      namespace: string;
      name: string;
      body: Obj;
      group: string;
      version: string;
      plural: string;
    };

export const isBatchJob = (fragment: Obj): boolean =>
  (fragment.apiVersion === undefined || fragment.apiVersion === 'batch/v1') &&
  (fragment.kind === undefined || fragment.kind === 'Job');

/**
 * Merges the job into the fragment (see docs/kubernetes.md, "Merge rules"). The fragment is the user's; Liftoff
 * adds what it must own (labels, image, command, environment) and fills defaults only where the fragment is silent.
 */
export function buildManifest(fragment: Obj, settings: KubeSettings, input: ManifestInput): BuiltManifest {
  const body = structuredClone(fragment);
  const labels = runLabels(input);
  const meta = isObj(body.metadata) ? body.metadata : {};
  body.metadata = meta;
  meta.namespace = input.namespace;
  meta.labels = { ...(isObj(meta.labels) ? meta.labels : {}), ...labels };
  meta.annotations = { ...(isObj(meta.annotations) ? meta.annotations : {}), [ANNOTATION_AGENT_ID]: input.agentId };
  // A name derived from the run makes a retried create idempotent (409 → it already exists).
  if (typeof meta.name !== 'string' || !meta.name) {
    delete meta.generateName;
    meta.name = `liftoff-${input.runId}`;
  }
  const name = meta.name as string;
  if (isBatchJob(body)) {
    body.apiVersion = 'batch/v1';
    body.kind = 'Job';
    const spec = isObj(body.spec) ? body.spec : {};
    body.spec = spec;
    spec.backoffLimit ??= 0;
    spec.ttlSecondsAfterFinished ??= DEFAULT_TTL_SECONDS_AFTER_FINISHED;
    const template = isObj(spec.template) ? spec.template : {};
    spec.template = template;
    const podSpec = isObj(template.spec) ? template.spec : {};
    template.spec = podSpec;
    podSpec.restartPolicy ??= 'Never';
    if (!Array.isArray(podSpec.containers) || podSpec.containers.length === 0) podSpec.containers = [{}];
    preparePodTemplate(template, labels, input);
    return { kind: 'job', namespace: input.namespace, name, body };
  }
  const apiVersion = body.apiVersion;
  if (typeof apiVersion !== 'string' || !apiVersion.includes('/') || typeof body.kind !== 'string') {
    throw new ManifestRefusedError(
      `A custom resource needs apiVersion "<group>/<version>" and a kind (got apiVersion ${JSON.stringify(apiVersion)}, kind ${JSON.stringify(body.kind)}). For a plain Job, use apiVersion batch/v1 or leave it out.`,
    );
  }
  const [group, version] = apiVersion.split('/') as [string, string];
  const templates = findPodTemplates(body);
  if (!templates.length) {
    throw new ManifestRefusedError(
      `The ${body.kind as string} manifest has no pod template (an object with spec.containers), so Liftoff has nowhere to put the job's image and command.`,
    );
  }
  for (const t of templates) preparePodTemplate(t, labels, input);
  return {
    kind: 'custom',
    namespace: input.namespace,
    name,
    body,
    group,
    version,
    plural: settings.plural ?? `${body.kind.toLowerCase()}s`,
  };
}

/** Pod templates anywhere in a custom resource: objects whose `spec.containers` is a list. */
function findPodTemplates(root: unknown): Obj[] {
  const out: Obj[] = [];
  const walk = (v: unknown): void => {
    if (Array.isArray(v)) return v.forEach(walk);
    if (!isObj(v)) return;
    if (isObj(v.spec) && Array.isArray(v.spec.containers)) {
      out.push(v);
      return;
    }
    Object.values(v).forEach(walk);
  };
  walk(root);
  return out;
}

/** The first container is the job's: it runs the job's image, command and arguments. Every container gets the env. */
function preparePodTemplate(template: Obj, labels: Record<string, string>, input: ManifestInput): void {
  const meta = isObj(template.metadata) ? template.metadata : {};
  template.metadata = meta;
  meta.labels = { ...(isObj(meta.labels) ? meta.labels : {}), ...labels };
  const podSpec = template.spec as Obj;
  const containers = (podSpec.containers as unknown[]).map((c) => (isObj(c) ? c : {}));
  podSpec.containers = containers;
  const main = containers[0] as Obj;
  main.name ??= 'main';
  containers.forEach((c, i) => {
    c.name ??= `container-${i}`;
  });
  main.image = input.image;
  const { entry_point: entry, args } = input.spec;
  if (entry.length) {
    main.command = [...entry];
    main.args = [...args];
  } else if (args.length) {
    main.args = [...args];
  }
  for (const c of containers) c.env = mergeEnv(c.env, input.env);
  for (const c of [...containers, ...asObjs(podSpec.initContainers), ...asObjs(podSpec.ephemeralContainers)])
    hardenContainer(c);
  // Jobs have no business talking to the API server unless the queue lets them.
  defaultServiceAccountToken(podSpec, input.tokenAllowed === true);
  if (input.pullSecret) {
    const secrets: unknown[] = Array.isArray(podSpec.imagePullSecrets) ? podSpec.imagePullSecrets : [];
    podSpec.imagePullSecrets = [...secrets, { name: input.pullSecret }];
  }
}

const asObjs = (v: unknown): Obj[] => (Array.isArray(v) ? v.filter(isObj) : []);

/** The run's variables win over the fragment's entries of the same name; the fragment's others stay, in order. */
function mergeEnv(existing: unknown, env: Record<string, string>): Obj[] {
  const kept = asObjs(existing).filter((e) => typeof e.name !== 'string' || !(e.name in env));
  return [...kept, ...Object.entries(env).map(([name, value]) => ({ name, value }))];
}
