import { Watch, type KubernetesListObject, type KubernetesObject, type V1Pod } from '@kubernetes/client-node';
import { ManifestRefusedError, RunnerError, describeCause } from '@liftoff/core';
import { registryHost } from '../../docker/credentials.js';
import type { AdoptContext, JobContext, RunHandle, RunOutcome, Runner, RunnerDeps } from '../types.js';
import { KubeApi, apiMessage, refOf, statusOf, type OwnerRef } from './api.js';
import { enforceGuardrails } from './guardrails.js';
import { loadKubeTarget, type KubeTarget } from './kubeconfig.js';
import { KubeRun } from './kubeRun.js';
import {
  LABEL_AGENT,
  LABEL_RUN,
  buildManifest,
  isBatchJob,
  labelValue,
  runLabels,
  splitResourceArgs,
  type KubeSettings,
} from './manifest.js';
import {
  createUploadSecret,
  ensureHelperConfigMap,
  ownSecretByJob,
  uploadSecretName,
  wireOutputs,
  type OutputsWiring,
} from './outputs.js';
import { SharedWatch } from './watchHub.js';

interface Cluster {
  target: KubeTarget;
  api: KubeApi;
  watch: Watch;
}

/**
 * Runs jobs as Kubernetes Jobs (or any custom resource given as the manifest). Status comes from one pod watch and
 * one owner watch per namespace, shared by every run there and narrowed to this agent by label; logs stream from
 * the pods; a restarted agent finds its runs' Jobs by label. See docs/kubernetes.md.
 */
export class KubernetesRunner implements Runner {
  readonly type = 'kubernetes' as const;
  readonly reportsRunning = true;
  private clusterOfConfig: Cluster | undefined;
  private readonly watches = new Map<string, SharedWatch<KubernetesObject>>();

  constructor(private readonly deps: RunnerDeps) {}

  async start(job: JobContext): Promise<RunHandle> {
    if (!job.image) throw new RunnerError('No image to run: the job was not built.');
    if (job.mountCodeAt) {
      throw new RunnerError(
        'The noop builder mounts the code from the agent machine, which a pod cannot see. Use the docker builder with a registry destination, or push an image job.',
      );
    }
    // Resource args are checked before the cluster is touched: none of them chooses how the agent reaches it.
    const { settings, fragment } = splitResourceArgs(job.spec.resource_args.kubernetes);
    const cluster = this.cluster();
    const namespace = this.namespaceFor(fragment, settings, cluster.target);
    this.assertNamespaceAllowed(namespace, cluster.target, job);
    const host = registryHost(job.image);
    // Fetched per job: a cloud registry's provider hands out a current token (ECR's expire after 12 h).
    const creds = host ? await this.deps.credentials.get(host) : undefined;
    const pullSecret = creds ? `liftoff-regcred-${job.runId}` : undefined;
    const manifest = buildManifest(fragment, settings, {
      runId: job.runId,
      itemId: job.itemId,
      queue: job.queue,
      entity: job.entity,
      agentId: this.deps.agentId,
      spec: job.spec,
      image: job.image,
      env: job.env,
      namespace,
      tokenAllowed: job.allow.includes('serviceAccountToken'),
      ...(pullSecret ? { pullSecret } : {}),
    });
    // Before anything exists in the cluster: a refused manifest leaves nothing behind.
    enforceGuardrails(fragment, manifest.body, {
      queue: job.queue,
      allow: job.allow,
      serviceAccounts: this.deps.kubernetes['service-accounts'] ?? [],
      namespace,
      secureMode: this.deps.secureMode === true,
    });
    if (creds && pullSecret) {
      await this.createPullSecret(cluster, namespace, pullSecret, job, { host: host ?? '', ...creds });
    }
    const secrets = pullSecret ? [pullSecret] : [];
    let outputs: OutputsWiring | undefined;
    let warnings: string[] = [];
    try {
      // After the guardrails: the token's secretKeyRef is Liftoff's own, not one the queue has to allow.
      if (manifest.kind === 'job') outputs = await this.prepareOutputs(cluster, namespace, job);
      if (outputs) {
        secrets.push(outputs.secret);
        wireOutputs(manifest.body, outputs);
      }
      warnings = await cluster.api.createOwner(manifest, job.runId);
    } catch (e) {
      await this.removeFailedStart(cluster, refOf(manifest, job.runId), secrets);
      throw e;
    }
    if (outputs)
      await ownSecretByJob(cluster.api, namespace, outputs.secret, manifest.name).catch((err: unknown) =>
        // The agent still deletes it when the run ends; only an agent gone for good would leave it behind.
        this.deps.logger.warn({ err, run: job.runId }, 'could not make the Job own its upload secret'),
      );
    job.onNote(`kubernetes job ${namespace}/${manifest.name} created (${cluster.target.source})`);
    // What a real API server dropped or deprecated (e.g. a typo'd field in the queue's manifest) is said only here.
    for (const w of warnings) job.onNote(`warning from the Kubernetes API server: ${w}`);
    return this.track(cluster, refOf(manifest, job.runId), job, secrets);
  }

  /**
   * The run's outputs wiring (outputs.ts): an upload token from the server in a Secret of the run, and the helper's
   * ConfigMap. A server or cluster that cannot provide them costs the run its outputs, not its start: the log says so.
   */
  private async prepareOutputs(
    cluster: Cluster,
    namespace: string,
    job: JobContext,
  ): Promise<OutputsWiring | undefined> {
    const outputs = this.deps.outputs;
    if (!outputs) return undefined;
    const labels = runLabels({ ...job, agentId: this.deps.agentId });
    let token: string;
    try {
      token = await outputs.uploadToken(job.runId);
    } catch (e) {
      job.onNote(`outputs: no upload token for the job (${describeCause(e)}); LIFTOFF_OUTPUT_DIR is not set`);
      return undefined;
    }
    try {
      // Shared by every run in the namespace (named by content): no run's label, so no run's sweep deletes it.
      const configMap = await ensureHelperConfigMap(cluster.api, namespace, {
        'app.kubernetes.io/managed-by': 'liftoff',
      });
      const secret = await createUploadSecret(cluster.api, namespace, job.runId, token, labels);
      return { secret, configMap, serverUrl: outputs.podServerUrl, capBytes: outputs.capBytes };
    } catch (e) {
      // An agent whose RBAC predates outputs (no configmaps) still runs its jobs, without an output dir.
      job.onNote(
        `outputs: could not set up the upload for the job (${describeCause(e)}); LIFTOFF_OUTPUT_DIR is not set. The agent needs create on configmaps and secrets in namespace ${namespace} (docs/security/kubernetes.md)`,
      );
      await cluster.api.deleteSecret(namespace, uploadSecretName(job.runId));
      return undefined;
    }
  }

  async reconcile(run: AdoptContext): Promise<RunHandle | RunOutcome> {
    let ref: OwnerRef;
    let cluster: Cluster;
    try {
      const { settings, fragment } = splitResourceArgs(run.spec.resource_args.kubernetes);
      cluster = this.cluster();
      const namespace = this.namespaceFor(fragment, settings, cluster.target);
      const probe = buildManifest(fragment, settings, {
        runId: run.runId,
        itemId: run.itemId,
        queue: run.queue,
        entity: run.entity,
        agentId: this.deps.agentId,
        spec: run.spec,
        image: 'unused',
        env: {},
        namespace,
      });
      ref = refOf(probe, run.runId);
      const owners = await cluster.api.findOwners(ref);
      const owner = owners[0];
      if (!owner?.metadata?.name) {
        return {
          state: 'failed',
          exitCode: null,
          message: `The run's Kubernetes ${isBatchJob(fragment) ? 'Job' : 'resource'} is gone from namespace ${namespace} (deleted while the agent was down); its outcome is unknown.`,
        };
      }
      ref = { ...ref, name: owner.metadata.name };
    } catch (e) {
      return { state: 'failed', exitCode: null, message: `Could not re-adopt the run: ${describeKube(e)}` };
    }
    run.onNote(`re-adopted kubernetes job ${ref.namespace}/${ref.name}`);
    return this.track(cluster, ref, run, [`liftoff-regcred-${run.runId}`, uploadSecretName(run.runId)]);
  }

  /** Fails the agent's start when its own cluster config is broken, before it takes an item it could only fail. */
  async check(): Promise<void> {
    this.cluster();
  }

  /** Jobs and pull secrets this agent labelled whose runs are no longer active: deleted with their pods. */
  async sweep(active: ReadonlySet<string>): Promise<void> {
    const cluster = this.cluster();
    const labelSelector = `${LABEL_AGENT}=${labelValue(this.deps.agentId)}`;
    const namespaces = [
      ...new Set([this.namespaceFor({}, {}, cluster.target), ...(this.deps.kubernetes.namespaces ?? [])]),
    ];
    const leftovers = <T extends KubernetesObject>(items: T[]) =>
      items.flatMap((o) => {
        const { name, namespace, labels } = o.metadata ?? {};
        const runId = labels?.[LABEL_RUN];
        return runId && !active.has(runId) && name && namespace ? [{ runId, name, namespace }] : [];
      });
    const jobs = await this.acrossNamespaces(
      () => cluster.api.batch.listJobForAllNamespaces({ labelSelector }),
      (namespace) => cluster.api.batch.listNamespacedJob({ namespace, labelSelector }),
      namespaces,
    );
    for (const j of leftovers(jobs)) {
      this.deps.logger.info({ job: j.name, runId: j.runId }, 'deleting the Job of an ended run');
      await cluster.api
        .deleteOwner({ kind: 'job', ...j }, 'Foreground')
        .catch((err: unknown) => this.deps.logger.warn({ err }, 'could not delete a leftover Job'));
    }
    const secrets = await this.acrossNamespaces(
      () => cluster.api.core.listSecretForAllNamespaces({ labelSelector }),
      (namespace) => cluster.api.core.listNamespacedSecret({ namespace, labelSelector }),
      namespaces,
    );
    for (const sec of leftovers(secrets)) await cluster.api.deleteSecret(sec.namespace, sec.name);
  }

  async close(): Promise<void> {
    await Promise.all([...this.watches.values()].map((w) => w.stop()));
    this.watches.clear();
  }

  /** A cluster-wide list needs cluster-wide RBAC; an agent limited to its namespaces lists those instead. */
  private async acrossNamespaces<T extends KubernetesObject>(
    all: () => Promise<KubernetesListObject<T>>,
    one: (ns: string) => Promise<KubernetesListObject<T>>,
    namespaces: string[],
  ): Promise<T[]> {
    try {
      return (await all()).items;
    } catch (e) {
      if (statusOf(e) !== 403) {
        this.deps.logger.warn({ err: e }, 'listing leftovers failed');
        return [];
      }
    }
    const out: T[] = [];
    for (const ns of namespaces) out.push(...(await one(ns).catch(() => ({ items: [] as T[] }))).items);
    return out;
  }

  /** `secrets`: the run's own Secrets (image pull, upload token), deleted when it ends. */
  private track(cluster: Cluster, ref: OwnerRef, cb: AdoptContext, secrets: string[]): KubeRun {
    const pods = this.watchOf(cluster, ref.namespace, 'pods') as unknown as SharedWatch<V1Pod>;
    const owner = this.watchOf(cluster, ref.namespace, ref.kind === 'job' ? 'jobs' : ref);
    return new KubeRun(ref, cluster.api, cluster.target.kc, cb, this.deps.logger, { pods, owner }, secrets);
  }

  /** One shared watch per cluster, namespace and resource, narrowed to this agent's objects. */
  private watchOf(
    cluster: Cluster,
    namespace: string,
    what: 'pods' | 'jobs' | OwnerRef,
  ): SharedWatch<KubernetesObject> {
    const labelSelector = `${LABEL_AGENT}=${labelValue(this.deps.agentId)}`;
    const { api } = cluster;
    let path: string;
    let list: () => Promise<KubernetesListObject<KubernetesObject>>;
    if (what === 'pods') {
      path = `/api/v1/namespaces/${namespace}/pods`;
      list = () => api.core.listNamespacedPod({ namespace, labelSelector });
    } else if (what === 'jobs') {
      path = `/apis/batch/v1/namespaces/${namespace}/jobs`;
      list = () => api.batch.listNamespacedJob({ namespace, labelSelector });
    } else if (what.kind === 'custom') {
      const { group, version, plural } = what;
      path = `/apis/${group}/${version}/namespaces/${namespace}/${plural}`;
      list = async () =>
        (await api.custom.listNamespacedCustomObject({
          group,
          version,
          namespace,
          plural,
          labelSelector,
        })) as KubernetesListObject<KubernetesObject>;
    } else {
      throw new Error('unreachable: a Job owner is watched as "jobs"');
    }
    const key = `${cluster.target.key}|${path}`;
    let w = this.watches.get(key);
    if (!w) {
      w = new SharedWatch(cluster.watch, path, list, labelSelector, this.deps.logger);
      this.watches.set(key, w);
    }
    return w;
  }

  /** The one cluster of the agent config (kubernetes.config-file / context, else $KUBECONFIG, ...), loaded once. */
  private cluster(): Cluster {
    if (this.clusterOfConfig) return this.clusterOfConfig;
    const agentCfg = this.deps.kubernetes;
    const target = loadKubeTarget({
      ...(agentCfg['config-file'] ? { configFile: agentCfg['config-file'] } : {}),
      ...(agentCfg.context ? { context: agentCfg.context } : {}),
      env: this.deps.processEnv,
      homeDir: this.deps.homeDir,
      ...(agentCfg['service-account-dir'] ? { serviceAccountDir: agentCfg['service-account-dir'] } : {}),
    });
    this.clusterOfConfig = { target, api: new KubeApi(target.kc), watch: new Watch(target.kc) };
    return this.clusterOfConfig;
  }

  /** metadata.namespace, else the legacy `namespace` key, else the agent's own namespace. */
  private namespaceFor(fragment: Record<string, unknown>, settings: KubeSettings, target: KubeTarget): string {
    const meta = fragment.metadata as { namespace?: unknown } | undefined;
    if (typeof meta?.namespace === 'string' && meta.namespace) return meta.namespace;
    return settings.namespace ?? this.ownNamespace(target);
  }

  /** kubernetes.namespace of the agent config, else the context's or the in-cluster one, else default. */
  private ownNamespace(target: KubeTarget): string {
    return this.deps.kubernetes.namespace ?? target.namespace ?? 'default';
  }

  /**
   * A job lands in the agent's own namespace unless it names one the agent config (kubernetes.namespaces) or its
   * queue (allow namespace:<name>) lists: the agent's credentials may reach namespaces (kube-system, other teams')
   * that no job should choose.
   */
  private assertNamespaceAllowed(namespace: string, target: KubeTarget, job: JobContext): void {
    const own = this.ownNamespace(target);
    const listed = this.deps.kubernetes.namespaces ?? [];
    if (namespace === own || listed.includes(namespace) || job.allow.includes(`namespace:${namespace}`)) return;
    const queueListed = job.allow.flatMap((a) => (a.startsWith('namespace:') ? [a.slice('namespace:'.length)] : []));
    const allowed = [...new Set([own, ...listed, ...queueListed])].map((n) => `"${n}"`).join(', ');
    throw new ManifestRefusedError(
      `Namespace "${namespace}" is not one jobs of queue "${job.queue}" may choose (allowed: ${allowed}). Leave metadata.namespace and namespace out to run in "${own}", or have it allowed: list it in the agent config's kubernetes.namespaces, or liftoff queue update ${job.queue} --allow ${[...job.allow, `namespace:${namespace}`].join(',')}`,
    );
  }

  /** A start that failed after something was created: the run's Secrets, and the owner if the API did create it. */
  private async removeFailedStart(cluster: Cluster, ref: OwnerRef, secrets: string[]): Promise<void> {
    for (const s of secrets) await cluster.api.deleteSecret(ref.namespace, s);
    // A create whose answer was lost may still have happened; only an object carrying this run's label is ours.
    const owners = await cluster.api.findOwners(ref).catch(() => []);
    for (const o of owners) {
      if (o.metadata?.name !== ref.name) continue;
      await cluster.api
        .deleteOwner(ref, 'Foreground')
        .catch((err: unknown) => this.deps.logger.warn({ err, run: ref.runId }, 'could not delete a failed start'));
    }
  }

  private async createPullSecret(
    cluster: Cluster,
    namespace: string,
    name: string,
    job: JobContext,
    c: { host: string; username: string; password: string },
  ): Promise<void> {
    const auth = Buffer.from(`${c.username}:${c.password}`).toString('base64');
    const config = { auths: { [c.host]: { username: c.username, password: c.password, auth } } };
    try {
      await cluster.api.core.createNamespacedSecret({
        namespace,
        body: {
          apiVersion: 'v1',
          kind: 'Secret',
          metadata: { name, namespace, labels: runLabels({ ...job, agentId: this.deps.agentId }) },
          type: 'kubernetes.io/dockerconfigjson',
          data: { '.dockerconfigjson': Buffer.from(JSON.stringify(config)).toString('base64') },
        },
      });
    } catch (e) {
      if (statusOf(e) === 409) return;
      throw new RunnerError(`Could not create the image pull secret ${namespace}/${name}: ${apiMessage(e)}`, e);
    }
  }
}

function describeKube(e: unknown): string {
  return statusOf(e) !== undefined ? apiMessage(e) : describeCause(e);
}
