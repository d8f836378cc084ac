import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { KubeApi } from './api.js';
import { apiMessage, statusOf } from './api.js';

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Run outputs of Kubernetes Jobs (docs/outputs.md). A pod cannot be reached by the agent after it ended, so the job
 * uploads its own outputs: the agent gets a per-run upload token from the server, puts it in a Secret of the run
 * (referenced by secretKeyRef, so no literal token is ever in the Job spec), mounts a size-capped emptyDir as the
 * output dir and the helper script from a ConfigMap, and sets the variables the helper reads.
 */
export const POD_OUTPUT_DIR = '/mnt/liftoff/outputs';
export const POD_HELPER_DIR = '/mnt/liftoff/bin';
export const HELPER_FILE = 'liftoff_outputs.py';
export const OUTPUTS_VOLUME = 'liftoff-outputs';
export const HELPER_VOLUME = 'liftoff-outputs-helper';
const TOKEN_KEY = 'token';

/** Variables Liftoff sets in the job's container for its outputs; a fragment may not set them. */
export const OUTPUT_ENV = [
  'LIFTOFF_OUTPUT_DIR',
  'LIFTOFF_OUTPUTS_HELPER',
  'LIFTOFF_UPLOAD_TOKEN',
  'LIFTOFF_UPLOAD_URL',
];

/** The run's Secret holding its upload token (run ids are UUIDs: a valid object name). */
export const uploadSecretName = (runId: string): string => `liftoff-upload-${runId}`;

let helper: { script: string; configMap: string } | undefined;
/**
 * The helper script shipped with the agent package (helpers/liftoff_outputs.py, the same depth from src/ and dist/),
 * and its ConfigMap's name: by content, so agents of different versions sharing a namespace never rewrite each
 * other's, and a running pod's mounted helper never changes under it.
 */
export function outputsHelper(): { script: string; configMap: string } {
  if (!helper) {
    const script = readFileSync(fileURLToPath(new URL('../../../helpers/liftoff_outputs.py', import.meta.url)), 'utf8');
    const hash = createHash('sha256').update(script).digest('hex').slice(0, 12);
    helper = { script, configMap: `liftoff-outputs-helper-${hash}` };
  }
  return helper;
}

/** Creates the helper's ConfigMap in the namespace unless it is there (its name is its content's). */
export async function ensureHelperConfigMap(
  api: KubeApi,
  namespace: string,
  labels: Record<string, string>,
): Promise<string> {
  const { script, configMap } = outputsHelper();
  try {
    await api.core.createNamespacedConfigMap({
      namespace,
      body: {
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: { name: configMap, namespace, labels },
        data: { [HELPER_FILE]: script },
        immutable: true,
      },
    });
  } catch (e) {
    if (statusOf(e) !== 409) throw new Error(`could not create ConfigMap ${namespace}/${configMap}: ${apiMessage(e)}`);
  }
  return configMap;
}

/** The run's upload token as a Secret, labelled as the run's objects are (a restarted agent's sweep finds it). */
export async function createUploadSecret(
  api: KubeApi,
  namespace: string,
  runId: string,
  token: string,
  labels: Record<string, string>,
): Promise<string> {
  const name = uploadSecretName(runId);
  const body = {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name, namespace, labels },
    type: 'Opaque',
    data: { [TOKEN_KEY]: Buffer.from(token).toString('base64') },
  };
  try {
    await api.core.createNamespacedSecret({ namespace, body });
  } catch (e) {
    // A retried start: the Secret of this run from before holds a token of an earlier try; replace it.
    if (statusOf(e) !== 409) throw new Error(`could not create Secret ${namespace}/${name}: ${apiMessage(e)}`);
    await api.core.replaceNamespacedSecret({ name, namespace, body });
  }
  return name;
}

/**
 * Makes the Job the Secret's owner, so the cluster's garbage collector deletes it with the Job (its TTL, a
 * `kubectl delete`) even if the agent never gets to. Set after the Job exists (its uid is only known then); the
 * agent deletes the Secret itself when the run ends in any case.
 */
export async function ownSecretByJob(api: KubeApi, namespace: string, secret: string, jobName: string): Promise<void> {
  const job = await api.batch.readNamespacedJob({ name: jobName, namespace });
  const uid = job.metadata?.uid;
  if (!uid) throw new Error(`Job ${namespace}/${jobName} has no uid`);
  const current = await api.core.readNamespacedSecret({ name: secret, namespace });
  current.metadata = {
    ...current.metadata,
    ownerReferences: [{ apiVersion: 'batch/v1', kind: 'Job', name: jobName, uid, blockOwnerDeletion: false }],
  };
  await api.core.replaceNamespacedSecret({ name: secret, namespace, body: current });
}

export interface OutputsWiring {
  secret: string;
  configMap: string;
  serverUrl: string;
  capBytes: number;
}

/**
 * Wires the outputs into the Job's pod template: the job's container (the first) gets the emptyDir at
 * /mnt/liftoff/outputs (capped by `sizeLimit`: past it the kubelet evicts the pod), the helper read-only at
 * /mnt/liftoff/bin, and the variables, the token by secretKeyRef. Called after the guardrails have checked the
 * manifest (they would refuse a secretKeyRef, which is Liftoff's own here) and after the fragment was checked for
 * anything that would shadow these (guardrails.ts findFragmentViolations), so only Liftoff's entries carry these
 * names. Other containers get none of it: the token goes where the job runs, no further.
 */
export function wireOutputs(jobBody: Obj, w: OutputsWiring): void {
  // buildManifest made spec.template.spec with a first container for a batch/v1 Job.
  const podSpec = ((jobBody.spec as Obj).template as Obj).spec as Obj;
  const volumes: unknown[] = Array.isArray(podSpec.volumes) ? podSpec.volumes : [];
  const mib = Math.max(1, Math.ceil(w.capBytes / 1024 / 1024));
  podSpec.volumes = [
    ...volumes,
    { name: OUTPUTS_VOLUME, emptyDir: { sizeLimit: `${mib}Mi` } },
    { name: HELPER_VOLUME, configMap: { name: w.configMap, defaultMode: 0o444 } },
  ];
  const main = (podSpec.containers as Obj[])[0] as Obj;
  const mounts: unknown[] = Array.isArray(main.volumeMounts) ? main.volumeMounts : [];
  main.volumeMounts = [
    ...mounts,
    { name: OUTPUTS_VOLUME, mountPath: POD_OUTPUT_DIR },
    { name: HELPER_VOLUME, mountPath: POD_HELPER_DIR, readOnly: true },
  ];
  const env = (Array.isArray(main.env) ? (main.env as unknown[]) : []).filter(
    (e) => !isObj(e) || typeof e.name !== 'string' || !OUTPUT_ENV.includes(e.name),
  );
  main.env = [
    ...env,
    { name: 'LIFTOFF_OUTPUT_DIR', value: POD_OUTPUT_DIR },
    { name: 'LIFTOFF_OUTPUTS_HELPER', value: `${POD_HELPER_DIR}/${HELPER_FILE}` },
    { name: 'LIFTOFF_UPLOAD_URL', value: w.serverUrl },
    { name: 'LIFTOFF_UPLOAD_TOKEN', valueFrom: { secretKeyRef: { name: w.secret, key: TOKEN_KEY } } },
  ];
}
