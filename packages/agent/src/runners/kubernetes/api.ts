import {
  ApiException,
  BatchV1Api,
  CoreV1Api,
  CustomObjectsApi,
  type KubeConfig,
  type KubernetesObject,
} from '@kubernetes/client-node';
import { RunnerError } from '@liftoff/core';
import type { BuiltManifest } from './manifest.js';

/** Where a run's owner object lives: a batch/v1 Job or a custom resource. */
export type OwnerRef = {
  runId: string;
  namespace: string;
  name: string;
} & ({ kind: 'job' } | { kind: 'custom'; group: string; version: string; plural: string; resourceKind: string });

export type Propagation = 'Foreground' | 'Background';

/** The few API calls the runner makes, with "already gone" treated as success where that is what was wanted. */
export class KubeApi {
  readonly core: CoreV1Api;
  readonly batch: BatchV1Api;
  readonly custom: CustomObjectsApi;

  constructor(kc: KubeConfig) {
    this.core = kc.makeApiClient(CoreV1Api);
    this.batch = kc.makeApiClient(BatchV1Api);
    this.custom = kc.makeApiClient(CustomObjectsApi);
  }

  /**
   * Creates the owner; a 409 for an object of the same run is a retried create and counts as success. Returns the
   * API server's warnings (its `Warning` headers): a real server drops fields it does not know, e.g. a typo in the
   * queue's manifest, and says so only there.
   */
  async createOwner(m: BuiltManifest, runId: string): Promise<string[]> {
    try {
      // A Job goes through the generic objects endpoint too (same URL, /apis/batch/v1/.../jobs): BatchV1Api
      // serializes its body through the V1Job model, which silently drops every field the model lacks, so a typo in
      // the queue's manifest would vanish before the API server could warn about it. Sent as built, the server's own
      // decoding (its Warning, or its 400 for a wrong type) reaches the run's log.
      const info = await this.custom.createNamespacedCustomObjectWithHttpInfo(
        m.kind === 'job'
          ? { group: 'batch', version: 'v1', namespace: m.namespace, plural: 'jobs', body: m.body }
          : { group: m.group, version: m.version, namespace: m.namespace, plural: m.plural, body: m.body },
      );
      return parseWarnings(info.headers.warning);
    } catch (e) {
      if (statusOf(e) === 409) {
        const existing = await this.findOwners(refOf(m, runId)).catch(() => []);
        if (existing.some((o) => o.metadata?.name === m.name)) return [];
        throw new RunnerError(
          `A ${m.kind === 'job' ? 'Job' : String(m.body.kind)} named ${m.name} already exists in namespace ${m.namespace} and is not this run's. Choose another metadata.name or leave it out.`,
          e,
        );
      }
      if (m.kind === 'custom' && statusOf(e) === 404 && !isStatusBody(e)) {
        // The mux's plain 404: no CustomResourceDefinition serves this group, version and plural.
        throw new RunnerError(
          `Kubernetes does not serve ${m.plural}.${m.group}/${m.version} (HTTP 404: no CustomResourceDefinition declares it in this cluster): install the operator (its CRD) for ${String(m.body.kind)}, or fix the manifest's apiVersion and kind.`,
          e,
        );
      }
      throw new RunnerError(
        `Kubernetes refused the ${m.kind === 'job' ? 'Job' : String(m.body.kind)}: ${apiMessage(e)}`,
        e,
      );
    }
  }

  /** The run's owner objects, found by its run label. */
  async findOwners(ref: OwnerRef): Promise<KubernetesObject[]> {
    const labelSelector = `liftoff.dev/run-id=${ref.runId}`;
    if (ref.kind === 'job')
      return (await this.batch.listNamespacedJob({ namespace: ref.namespace, labelSelector })).items;
    const list = (await this.custom.listNamespacedCustomObject({
      group: ref.group,
      version: ref.version,
      namespace: ref.namespace,
      plural: ref.plural,
      labelSelector,
    })) as { items?: KubernetesObject[] };
    return list.items ?? [];
  }

  async ownerExists(ref: OwnerRef): Promise<boolean> {
    try {
      if (ref.kind === 'job') await this.batch.readNamespacedJob({ name: ref.name, namespace: ref.namespace });
      else
        await this.custom.getNamespacedCustomObject({
          group: ref.group,
          version: ref.version,
          namespace: ref.namespace,
          plural: ref.plural,
          name: ref.name,
        });
      return true;
    } catch (e) {
      if (statusOf(e) === 404) return false;
      throw e;
    }
  }

  async deleteOwner(ref: OwnerRef, propagationPolicy: Propagation): Promise<void> {
    await ignoreNotFound(() =>
      ref.kind === 'job'
        ? this.batch.deleteNamespacedJob({ name: ref.name, namespace: ref.namespace, propagationPolicy })
        : this.custom.deleteNamespacedCustomObject({
            group: ref.group,
            version: ref.version,
            namespace: ref.namespace,
            plural: ref.plural,
            name: ref.name,
            propagationPolicy,
          }),
    );
  }

  async deletePod(namespace: string, name: string, gracePeriodSeconds: number): Promise<void> {
    await ignoreNotFound(() => this.core.deleteNamespacedPod({ name, namespace, gracePeriodSeconds }));
  }

  async deleteSecret(namespace: string, name: string): Promise<void> {
    await ignoreNotFound(() => this.core.deleteNamespacedSecret({ name, namespace })).catch(() => undefined);
  }
}

export function refOf(m: BuiltManifest, runId: string): OwnerRef {
  return m.kind === 'job'
    ? { kind: 'job', runId, namespace: m.namespace, name: m.name }
    : {
        kind: 'custom',
        runId,
        namespace: m.namespace,
        name: m.name,
        group: m.group,
        version: m.version,
        plural: m.plural,
        resourceKind: String(m.body.kind),
      };
}

export const statusOf = (e: unknown): number | undefined => (e instanceof ApiException ? e.code : undefined);

/** The API server's own explanation (a Status body's message) rather than client-node's generic text. */
export function apiMessage(e: unknown): string {
  if (e instanceof ApiException) {
    const body: unknown = typeof e.body === 'string' ? safeJson(e.body) : e.body;
    const msg = (body as { message?: unknown } | undefined)?.message;
    return `${typeof msg === 'string' ? msg : e.message} (HTTP ${e.code})`;
  }
  return e instanceof Error ? e.message : String(e);
}

/** Whether a failed call's body is a Status object (an API answer) rather than the mux's plain text. */
function isStatusBody(e: unknown): boolean {
  if (!(e instanceof ApiException)) return false;
  const body: unknown = typeof e.body === 'string' ? safeJson(e.body) : e.body;
  return (body as { kind?: unknown } | undefined)?.kind === 'Status';
}

/**
 * The texts of RFC 7234 `Warning` header values (`299 - "unknown field \"spec.x\""`). Several headers reach us
 * joined by ", " (fetch's Headers), so values are found by their shape rather than split on commas.
 */
export function parseWarnings(header: string | undefined): string[] {
  if (!header) return [];
  const out: string[] = [];
  const re = /(\d{3}) (\S+) "((?:[^"\\]|\\.)*)"(?: "[^"]*")?/g;
  for (let m = re.exec(header); m; m = re.exec(header)) out.push((m[3] ?? '').replace(/\\(.)/g, '$1'));
  return out;
}

function safeJson(s: string): unknown {
  try {
    return JSON.parse(s);
  } catch {
    return { message: s };
  }
}

async function ignoreNotFound(fn: () => Promise<unknown>): Promise<void> {
  try {
    await fn();
  } catch (e) {
    if (statusOf(e) !== 404) throw e;
  }
}
