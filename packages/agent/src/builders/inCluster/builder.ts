import { Watch, type KubernetesObject, type V1Pod } from '@kubernetes/client-node';
import { InClusterBuilderConfigError, GcpEnvironmentError, describeCause } from '@liftoff/core';
import { registryHost, type RegistryCredentials } from '../../docker/credentials.js';
import { objectStoreFor, type ObjectStore } from '../../objectStores/index.js';
import { LocalRegistry } from '../../registries/local.js';
import type { Registry } from '../../registries/types.js';
import { KubeApi, apiMessage, statusOf } from '../../runners/kubernetes/api.js';
import { loadKubeTarget, type KubeTarget } from '../../runners/kubernetes/kubeconfig.js';
import { KubeRun } from '../../runners/kubernetes/kubeRun.js';
import { LABEL_AGENT, labelValue } from '../../runners/kubernetes/manifest.js';
import { SharedWatch } from '../../runners/kubernetes/watchHub.js';
import type { RunnerDeps } from '../../runners/types.js';
import { BuildCancelledError, BuildError, type BuildRequest, type BuildResult, type Builder } from '../types.js';
import { asBuildError, contextUri, packContext, prepareContext } from './context.js';
import {
  DEFAULT_BUILD_JOB_NAME,
  buildJobBody,
  buildRunLabel,
  dockerConfigJson,
  fragmentContainer,
  isObj,
  type BuildPod,
  type BuilderConfigFile,
} from './job.js';

export interface InClusterDeps {
  registry: Registry;
  credentials: RegistryCredentials;
  /** The agent's runner dependencies: cluster access (agent config, environment, home), agent id, clouds, logger. */
  runner: RunnerDeps;
  config: BuilderConfigFile;
}

/** How the build pod gets the context. */
export type ContextSource =
  | { kind: 'url'; url: string }
  /** The store URI, read with a mounted credential (GCS credentials that cannot sign a URL). */
  | {
      kind: 'store';
      uri: string;
      /** A Secret holding a `header` file (an Authorization header line) for fetching `mediaUrl`. */
      tokenSecret?: string;
      /** The object's download URL on the store's API, read with that header. */
      mediaUrl?: string;
    };

export interface PodInput {
  image: string;
  dockerfile: string;
  context: ContextSource;
  /** The dockerconfigjson Secret with the push login, when the registry has one. */
  pushSecret: string | undefined;
  /** The image's repository, without tag (kaniko's --cache-repo). */
  repository: string;
}

/** A presigned context URL outlives the longest build (the deadline) with some slack; SigV4 / V4 cap it at 7 days. */
const PRESIGN_SLACK_SECONDS = 600;
/** Builds poll the run's cancel flag this often (the pipeline sets a flag, it does not signal). */
const CANCEL_POLL_MS = 500;
/** A cancelled build pod gets this long to stop before it is killed. */
const CANCEL_GRACE_MS = 10_000;
/** How long the agent waits for Foreground deletion to remove the pods and the Job before it moves on. */
const DELETE_WAIT_MS = 60_000;
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/**
 * The Job skeleton shared by the kaniko and buildah builders: the context is tarred, gzipped and uploaded to
 * `builder.build-context-store` as `<runId>.tgz`; the pod gets it as a presigned URL (so it holds no storage
 * credentials); the push login goes in a short-lived dockerconfigjson Secret; the Job is watched like a run's (the
 * runner's KubeRun: pod log streamed live into the run's log, unschedulable and image-pull problems as warnings,
 * Job conditions as the verdict); a cancel deletes the Job; afterwards the Job is deleted with Foreground
 * propagation (its pods first) and the Secrets with it. The content tag is the docker builder's, and a tag already
 * in the registry skips the build.
 */
export abstract class InClusterBuilder implements Builder {
  abstract readonly type: 'kaniko' | 'buildah';
  protected readonly store: ObjectStore;
  protected readonly storeUri: string;
  protected readonly jobName: string;
  protected readonly fragment: Record<string, unknown> | undefined;
  private kube: KubeTarget | undefined;

  constructor(protected readonly deps: InClusterDeps) {
    const cfg = deps.config;
    const what = `builder type ${cfg.type}`;
    if (deps.registry instanceof LocalRegistry) {
      throw new InClusterBuilderConfigError(
        `${what} pushes the image from the cluster, so it needs a registry: set builder.destination (or a registry section) in the agent config.`,
      );
    }
    const store = cfg['build-context-store'];
    if (!store) {
      throw new InClusterBuilderConfigError(
        `${what} needs builder.build-context-store (s3://bucket/prefix, gs://bucket/prefix or https://<account>.blob.core.windows.net/<container>/prefix).`,
      );
    }
    this.storeUri = store;
    this.store = objectStoreFor(store, {
      ...(deps.runner.aws ? { aws: deps.runner.aws } : {}),
      ...(deps.runner.gcp ? { gcp: deps.runner.gcp } : {}),
      ...(deps.runner.azure ? { azure: deps.runner.azure } : {}),
    });
    if (!!cfg['secret-name'] !== !!cfg['secret-key']) {
      throw new InClusterBuilderConfigError(
        'builder.secret-name and builder.secret-key go together: give both or neither.',
      );
    }
    this.jobName = cfg['build-job-name'] ?? DEFAULT_BUILD_JOB_NAME;
    // "<name>-<8-character run id>" must be a DNS label: the Job controller puts it in the pods' job-name label.
    if (!DNS_LABEL.test(this.jobName) || this.jobName.length > 54) {
      throw new InClusterBuilderConfigError(
        `builder.build-job-name "${this.jobName}" must be at most 54 lower-case letters, digits and "-" (the run id is appended).`,
      );
    }
    const fragment = cfg['kaniko-config'];
    if (fragment !== undefined) {
      if (fragmentContainer(fragment).count > 1) {
        throw new InClusterBuilderConfigError(
          'builder.kaniko-config may hold at most one container (the build container).',
        );
      }
      const spec = isObj(fragment.spec) ? fragment.spec : {};
      for (const k of ['backoffLimit', 'completions', 'parallelism']) {
        if (k in spec)
          throw new InClusterBuilderConfigError(`builder.kaniko-config spec.${k} is set by Liftoff; remove it.`);
      }
    }
    this.fragment = fragment;
    // At agent start, like a kubernetes queue's check: a cluster config that cannot load stops the agent now.
    this.target();
  }

  /** The build container and its volumes for this builder. */
  protected abstract pod(input: PodInput): BuildPod;
  /** `[liftoff]` lines said before the Job is created (e.g. a capability the pod is granted). */
  protected notes(): string[] {
    return [];
  }

  async build(req: BuildRequest): Promise<BuildResult> {
    const note = req.onNote ?? ((l: string) => req.onLog(`[liftoff] ${l}\n`));
    const { dockerfile, tag, workCopyAt } = await prepareContext(req);
    const image = `${this.deps.registry.repository}:${tag}`;
    const layout = workCopyAt ? { workCopyAt } : {};
    if (await this.deps.registry.imageExists(image).catch((e: unknown) => Promise.reject(asBuildError(e)))) {
      req.onLog(`image ${image} already exists (same code, Dockerfile and base image): skipping the build\n`);
      return { image, built: false, ...layout };
    }
    const uri = contextUri(this.storeUri, req.runId);
    try {
      await this.store.upload(uri, await packContext(req, dockerfile), { contentType: 'application/gzip' });
    } catch (e) {
      throw asBuildError(e);
    }
    note(`build context uploaded to ${uri}`);
    if (req.isCancelled?.()) throw new BuildCancelledError();
    const target = this.target();
    const namespace = this.deps.runner.kubernetes.namespace ?? target.namespace ?? 'default';
    const api = new KubeApi(target.kc);
    const name = `${this.jobName}-${req.runId}`;
    const secrets: string[] = [];
    const watches: Array<SharedWatch<KubernetesObject>> = [];
    try {
      const context = await this.contextSource(uri, api, namespace, req, secrets);
      const pushSecret = await this.pushSecret(api, namespace, req, image, secrets);
      const body = buildJobBody({
        name,
        namespace,
        runId: req.runId,
        agentId: this.deps.runner.agentId,
        fragment: this.fragment,
        pod: this.pod({
          image,
          dockerfile: dockerfile.path,
          context,
          pushSecret,
          repository: this.deps.registry.repository,
        }),
      });
      for (const line of this.notes()) note(line);
      try {
        await api.batch.createNamespacedJob({ namespace, body });
      } catch (e) {
        throw new BuildError(`Kubernetes refused the build Job ${namespace}/${name}: ${apiMessage(e)}`, e);
      }
      note(`build job ${namespace}/${name} created (${target.source}); building ${image}`);
      const outcome = await this.follow(target, api, namespace, name, req, watches);
      if (outcome.state !== 'finished') {
        throw new BuildError(
          `The in-cluster ${this.type} build of ${image} failed: ${outcome.message ?? outcome.state}. The build pod's log is in the run's log above.`,
        );
      }
      return { image, built: true, ...layout };
    } finally {
      await this.cleanUp(api, namespace, name, secrets, req);
      await Promise.all(watches.map((w) => w.stop()));
    }
  }

  /** Watches the Job like a run; polls the cancel flag and deletes the Job when it is set. */
  private async follow(
    target: KubeTarget,
    api: KubeApi,
    namespace: string,
    name: string,
    req: BuildRequest,
    watches: Array<SharedWatch<KubernetesObject>>,
  ): Promise<{ state: string; message?: string }> {
    const watch = new Watch(target.kc);
    const labelSelector = `${LABEL_AGENT}=${labelValue(this.deps.runner.agentId)}`;
    const { logger } = this.deps.runner;
    const pods = new SharedWatch<KubernetesObject>(
      watch,
      `/api/v1/namespaces/${namespace}/pods`,
      () => api.core.listNamespacedPod({ namespace, labelSelector }),
      labelSelector,
      logger,
    );
    const jobs = new SharedWatch<KubernetesObject>(
      watch,
      `/apis/batch/v1/namespaces/${namespace}/jobs`,
      () => api.batch.listNamespacedJob({ namespace, labelSelector }),
      labelSelector,
      logger,
    );
    watches.push(pods, jobs);
    const note = req.onNote ?? ((l: string) => req.onLog(`[liftoff] ${l}\n`));
    let warned = false;
    const run = new KubeRun(
      { kind: 'job', runId: buildRunLabel(req.runId), namespace, name },
      api,
      target.kc,
      {
        onOutput: req.onLog,
        onNote: (l) => note(`build: ${l}`),
        onRunning: () => undefined,
        onWarning: (w) => {
          warned = w !== null;
          req.onWarning?.(w === null ? null : `image build: ${w}`);
        },
      },
      logger,
      { pods: pods as unknown as SharedWatch<V1Pod>, owner: jobs },
      [],
    );
    let cancelled = false;
    const timer = setInterval(() => {
      if (cancelled || !req.isCancelled?.()) return;
      cancelled = true;
      note(`cancelled: deleting build job ${namespace}/${name}`);
      void run.cancel(CANCEL_GRACE_MS);
    }, CANCEL_POLL_MS);
    try {
      const outcome = await run.wait();
      if (cancelled) throw new BuildCancelledError();
      return { state: outcome.state, ...('message' in outcome && outcome.message ? { message: outcome.message } : {}) };
    } finally {
      clearInterval(timer);
      // A build's warning (a pull back-off) is over with the build, whatever ended it; the run's own come next.
      if (warned) req.onWarning?.(null);
    }
  }

  /** A presigned URL; GCS credentials that cannot sign fall back to the store URI (see `storeContext`). */
  private async contextSource(
    uri: string,
    api: KubeApi,
    namespace: string,
    req: BuildRequest,
    secrets: string[],
  ): Promise<ContextSource> {
    const deadline = Number((isObj(this.fragment?.spec) && this.fragment.spec.activeDeadlineSeconds) || 1800);
    const ttl = Math.min(Math.max(1, Math.floor(deadline)) + PRESIGN_SLACK_SECONDS, 7 * 24 * 3600);
    const own = this.unsignedContext(uri);
    if (own) return own;
    try {
      return { kind: 'url', url: await this.store.presign(uri, ttl) };
    } catch (e) {
      if (!(e instanceof GcpEnvironmentError) || this.store.scheme !== 'gs') throw asBuildError(e);
      return this.storeContext(uri, api, namespace, req, secrets, e);
    }
  }

  /** A context this builder reads by its store URI rather than a signed URL (kaniko on Azure Blob); none by default. */
  protected unsignedContext(_uri: string): ContextSource | undefined {
    return undefined;
  }

  /** Without a signed URL: the pod reads the gs:// URI with a mounted credential. Builders that can, override this. */
  protected storeContext(
    uri: string,
    _api: KubeApi,
    _namespace: string,
    _req: BuildRequest,
    _secrets: string[],
    why: Error,
  ): Promise<ContextSource> {
    return Promise.reject(new BuildError(`The build pod cannot be given ${uri}: ${why.message}`, why));
  }

  /** The push login of the registry's host in a short-lived dockerconfigjson Secret (never a ConfigMap). */
  private async pushSecret(
    api: KubeApi,
    namespace: string,
    req: BuildRequest,
    image: string,
    secrets: string[],
  ): Promise<string | undefined> {
    const host = registryHost(image) ?? '';
    const login = await this.deps.credentials.get(host).catch((e: unknown) => Promise.reject(asBuildError(e)));
    if (!login) return undefined;
    const name = `liftoff-build-${req.runId}`;
    await this.createSecret(api, namespace, name, req, 'kubernetes.io/dockerconfigjson', {
      '.dockerconfigjson': dockerConfigJson(host, login),
    });
    secrets.push(name);
    return name;
  }

  protected async createSecret(
    api: KubeApi,
    namespace: string,
    name: string,
    req: BuildRequest,
    type: string,
    data: Record<string, string>,
  ): Promise<void> {
    try {
      await api.core.createNamespacedSecret({
        namespace,
        body: {
          apiVersion: 'v1',
          kind: 'Secret',
          metadata: {
            name,
            namespace,
            labels: {
              'app.kubernetes.io/managed-by': 'liftoff',
              'liftoff.dev/run-id': buildRunLabel(req.runId),
              [LABEL_AGENT]: labelValue(this.deps.runner.agentId),
              'liftoff.dev/role': 'build',
            },
          },
          type,
          data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v).toString('base64')])),
        },
      });
    } catch (e) {
      throw new BuildError(`Could not create the build Secret ${namespace}/${name}: ${apiMessage(e)}`, e);
    }
  }

  /**
   * Foreground deletion (the pods go before the Job, so none is orphaned), then a wait until the Job is gone, so
   * the run's own pod watch never sees a build pod; then the Secrets.
   */
  private async cleanUp(api: KubeApi, namespace: string, name: string, secrets: string[], req: BuildRequest) {
    const { logger } = this.deps.runner;
    try {
      await api.deleteOwner({ kind: 'job', runId: req.runId, namespace, name }, 'Foreground');
      const until = Date.now() + DELETE_WAIT_MS;
      while (Date.now() < until && (await api.ownerExists({ kind: 'job', runId: req.runId, namespace, name }))) {
        await new Promise((r) => setTimeout(r, 250));
      }
    } catch (err) {
      if (statusOf(err) !== 404) {
        logger.warn({ err, runId: req.runId }, 'could not delete the build Job');
        req.onLog(`[liftoff] could not delete build job ${namespace}/${name}: ${describeCause(err)}\n`);
      }
    }
    for (const s of secrets) await api.deleteSecret(namespace, s);
  }

  /**
   * The agent config's cluster (kubernetes.config-file / context, else $KUBECONFIG, ...), loaded once, in the
   * constructor: its KubeConfigError (naming the fix) then stops the agent at start.
   */
  protected target(): KubeTarget {
    const k = this.deps.runner.kubernetes;
    this.kube ??= loadKubeTarget({
      ...(k['config-file'] ? { configFile: k['config-file'] } : {}),
      ...(k.context ? { context: k.context } : {}),
      env: this.deps.runner.processEnv,
      homeDir: this.deps.runner.homeDir,
      ...(k['service-account-dir'] ? { serviceAccountDir: k['service-account-dir'] } : {}),
    });
    return this.kube;
  }
}
