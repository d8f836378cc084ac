import { existsSync, readFileSync } from 'node:fs';
import { isIPv6 } from 'node:net';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { KubeConfigError, type Env } from '@liftoff/core';

export const DEFAULT_SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/** One cluster the runner talks to: a loaded config and the namespace its context (or service account) names. */
export interface KubeTarget {
  /** Identifies the target for caching watches: same file and context → same target. */
  key: string;
  kc: KubeConfig;
  /** The context's namespace, or the in-cluster one. */
  namespace?: string;
  /** Where the config came from, for messages. */
  source: string;
}

export interface KubeTargetOptions {
  /** The agent config's `kubernetes.config-file` (never a job's: resource args cannot name one). */
  configFile?: string;
  context?: string;
  env: Env;
  homeDir: string;
  serviceAccountDir?: string;
}

/**
 * Finds the cluster as kubectl does, minus the merging of several KUBECONFIG files: an explicit file, else the
 * first file of $KUBECONFIG, else ~/.kube/config, else the in-cluster service account.
 */
export function loadKubeTarget(opts: KubeTargetOptions): KubeTarget {
  const file =
    opts.configFile ??
    opts.env.KUBECONFIG?.split(':').find((f) => f.length > 0) ??
    (existsSync(join(opts.homeDir, '.kube', 'config')) ? join(opts.homeDir, '.kube', 'config') : undefined);
  if (file) return fromFile(file, opts.context);
  if (opts.env.KUBERNETES_SERVICE_HOST) {
    if (opts.context)
      throw new KubeConfigError(
        `Kubernetes context "${opts.context}" was asked for, but no kubeconfig was found (only the in-cluster service account). Set kubernetes.config-file in the agent config.`,
      );
    return inCluster(opts.env, opts.serviceAccountDir ?? DEFAULT_SERVICE_ACCOUNT_DIR);
  }
  throw new KubeConfigError(
    `No Kubernetes config found: no kubernetes.config-file in the agent config, no $KUBECONFIG, no ${join(opts.homeDir, '.kube', 'config')} and not running in a cluster. Point the agent at a kubeconfig.`,
  );
}

function fromFile(file: string, context: string | undefined): KubeTarget {
  if (!existsSync(file)) {
    throw new KubeConfigError(`Kubeconfig ${file} does not exist. Fix kubernetes.config-file in the agent config.`);
  }
  const kc = new KubeConfig();
  try {
    kc.loadFromFile(file);
  } catch (e) {
    throw new KubeConfigError(`Kubeconfig ${file} could not be read: ${(e as Error).message}`, e);
  }
  // W&B Launch raises "context not found" even for contexts that exist (the raise sits after the loop); here a
  // context is looked up once and a missing one names the ones that exist.
  if (context) {
    if (!kc.getContextObject(context)) {
      const known = kc.contexts.map((c) => c.name).join(', ') || 'none';
      throw new KubeConfigError(`Kubernetes context "${context}" is not in ${file} (it has: ${known}).`);
    }
    kc.setCurrentContext(context);
  }
  const current = kc.getContextObject(kc.getCurrentContext());
  if (!current) throw new KubeConfigError(`Kubeconfig ${file} has no current-context; pass a context.`);
  return {
    key: `${file}#${current.name}`,
    kc,
    ...(current.namespace ? { namespace: current.namespace } : {}),
    source: `${file} (context ${current.name})`,
  };
}

/** client-node's loadFromCluster reads process.env and fixed paths; the agent injects both, so it is done here. */
function inCluster(env: Env, dir: string): KubeTarget {
  const host = env.KUBERNETES_SERVICE_HOST ?? '';
  const port = env.KUBERNETES_SERVICE_PORT ?? '443';
  const tokenFile = join(dir, 'token');
  if (!existsSync(tokenFile)) {
    throw new KubeConfigError(
      `KUBERNETES_SERVICE_HOST is set but ${tokenFile} does not exist: the pod has no service account token mounted.`,
    );
  }
  const scheme = ['80', '8080', '8001'].includes(port) ? 'http' : 'https';
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [
      {
        name: 'in-cluster',
        server: `${scheme}://${isIPv6(host) ? `[${host}]` : host}:${port}`,
        caFile: join(dir, 'ca.crt'),
        skipTLSVerify: false,
      },
    ],
    // The token file is re-read when it rotates (bound service-account tokens expire).
    users: [{ name: 'in-cluster', authProvider: { name: 'tokenFile', config: { tokenFile } } }],
    contexts: [{ name: 'in-cluster', cluster: 'in-cluster', user: 'in-cluster' }],
    currentContext: 'in-cluster',
  });
  const nsFile = join(dir, 'namespace');
  const namespace = existsSync(nsFile) ? readFileSync(nsFile, 'utf8').trim() : '';
  return {
    key: `in-cluster#${host}:${port}`,
    kc,
    ...(namespace ? { namespace } : {}),
    source: 'the in-cluster service account',
  };
}
