import { InClusterBuilderConfigError } from '@liftoff/core';
import { registryHost } from '../../docker/credentials.js';
import type { KubeApi } from '../../runners/kubernetes/api.js';
import { BuildError, type BuildRequest } from '../types.js';
import { InClusterBuilder, type ContextSource, type InClusterDeps, type PodInput } from './builder.js';
import { fragmentContainer, type BuildPod } from './job.js';

/**
 * W&B's default executor (`kaniko_builder.py`, the runtime default rather than its pydantic `latest`). Kaniko was
 * archived upstream in June 2025 and gcr.io gets no new releases: point `builder.kaniko-image` at a maintained fork
 * (e.g. `martizih/kaniko`, `ghcr.io/osscontainertools/kaniko`); docs/builders.md.
 */
export const DEFAULT_KANIKO_IMAGE = 'gcr.io/kaniko-project/executor:v1.11.0';

/** Flags Liftoff owns: the context, Dockerfile and destination decide the content tag the build is checked under. */
const OWNED_FLAGS = new Set(['--context', '--dockerfile', '--destination']);
const ECR_HOST = /\.dkr\.ecr(-fips)?\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$/;
const GAR_HOST = /-docker\.pkg\.dev$/;

/**
 * `builder.type: kaniko`: the Kaniko executor as a Kubernetes Job (the shared skeleton), with W&B's flags and key
 * meanings. Push login: the agent's registry login in the skeleton's dockerconfigjson Secret, mounted at
 * /kaniko/.docker/config.json. `secret-name`/`secret-key` keep W&B's meaning, for clusters that use a stored cloud
 * key: an AWS credentials file at /root/.aws/credentials (ECR or an s3:// store), or a Google key at
 * /kaniko/.config/gcloud/config.json with GOOGLE_APPLICATION_CREDENTIALS (Artifact Registry or a gs:// store), or
 * the storage account key as AZURE_STORAGE_ACCESS_KEY (an Azure Blob store: kaniko then reads the blob URI itself).
 */
export class KanikoBuilder extends InClusterBuilder {
  readonly type = 'kaniko' as const;
  private readonly image: string;
  private readonly userArgs: string[];

  constructor(deps: InClusterDeps) {
    super(deps);
    const own = fragmentContainer(this.fragment).container ?? {};
    const given = typeof own.image === 'string' ? own.image : undefined;
    // W&B silently lets the fragment's image beat kaniko-image; two images for one container is refused instead.
    if (given && deps.config['kaniko-image'] && given !== deps.config['kaniko-image']) {
      throw new InClusterBuilderConfigError(
        `builder.kaniko-image (${deps.config['kaniko-image']}) and builder.kaniko-config's container image (${given}) disagree: keep one.`,
      );
    }
    this.image = deps.config['kaniko-image'] ?? given ?? DEFAULT_KANIKO_IMAGE;
    const args = own.args ?? [];
    if (!Array.isArray(args) || args.some((a) => typeof a !== 'string')) {
      throw new InClusterBuilderConfigError(
        'builder.kaniko-config container args must be a list of strings ("--flag=value").',
      );
    }
    for (const a of args as string[]) {
      const flag = a.split('=')[0] ?? '';
      if (OWNED_FLAGS.has(flag)) {
        throw new InClusterBuilderConfigError(
          `builder.kaniko-config container args may not set ${flag}: Liftoff sets it (the build context it uploaded, the content-tagged destination).`,
        );
      }
    }
    this.userArgs = args as string[];
    if (this.azureStore() && !(deps.config['secret-name'] && deps.config['secret-key'])) {
      throw new InClusterBuilderConfigError(
        `builder type kaniko with an Azure Blob build-context-store needs builder.secret-name and builder.secret-key: kaniko reads https://<account>.blob.core.windows.net contexts only with the storage account key in AZURE_STORAGE_ACCESS_KEY (even when the URL carries a SAS). Put the key in a Secret in the build namespace (W&B used azure-storage-access-key / password in namespace wandb) and name it there, or use the buildah builder, which reads a user-delegation SAS and needs no key.`,
      );
    }
  }

  /** Kaniko's Azure Blob reader (pkg/buildcontext/azureblob.go) takes every blob-host URL, and only with the key. */
  private azureStore(): boolean {
    return this.storeUri.startsWith('https://');
  }

  protected override unsignedContext(uri: string): ContextSource | undefined {
    return this.azureStore() ? { kind: 'store', uri } : undefined;
  }

  protected override notes(): string[] {
    return this.image === DEFAULT_KANIKO_IMAGE
      ? [
          `kaniko image ${DEFAULT_KANIKO_IMAGE} is W&B's default; Kaniko was archived upstream in 2025 and gets no fixes there: set builder.kaniko-image to a maintained fork (docs/builders.md)`,
        ]
      : [];
  }

  /** W&B's executor flags; a `--k=v` of kaniko-config replaces the default of the same flag, others are added. */
  args(input: PodInput, context: string): string[] {
    const flags = new Map<string, string | undefined>([
      ['--context', context],
      ['--dockerfile', input.dockerfile],
      ['--destination', input.image],
      ['--cache', 'true'],
      ['--cache-repo', input.repository],
      ['--snapshot-mode', 'redo'],
      ['--compressed-caching', 'false'],
    ]);
    for (const a of this.userArgs) {
      const eq = a.indexOf('=');
      flags.set(eq < 0 ? a : a.slice(0, eq), eq < 0 ? undefined : a.slice(eq + 1));
    }
    return [...flags].map(([k, v]) => (v === undefined ? k : `${k}=${v}`));
  }

  protected pod(input: PodInput): BuildPod {
    const context = input.context.kind === 'url' ? input.context.url : input.context.uri;
    const env: Array<Record<string, unknown>> = [];
    const volumeMounts: Array<Record<string, unknown>> = [];
    const volumes: Array<Record<string, unknown>> = [];
    if (input.pushSecret) {
      volumes.push({
        name: 'liftoff-docker-config',
        secret: { secretName: input.pushSecret, items: [{ key: '.dockerconfigjson', path: 'config.json' }] },
      });
      volumeMounts.push({ name: 'liftoff-docker-config', mountPath: '/kaniko/.docker', readOnly: true });
    }
    const cloud = this.cloud(input.image);
    const { runner, config } = this.deps;
    if (cloud === 'aws' && runner.aws) env.push({ name: 'AWS_REGION', value: runner.aws.region });
    const secretName = config['secret-name'];
    const secretKey = config['secret-key'];
    if (secretName && secretKey && this.azureStore()) {
      // The account key as kaniko wants it, from the Secret by reference: it never passes through the agent.
      env.push({ name: 'AZURE_STORAGE_ACCESS_KEY', valueFrom: { secretKeyRef: { name: secretName, key: secretKey } } });
    } else if (secretName && secretKey) {
      if (!cloud) {
        throw new BuildError(
          "builder.secret-name/secret-key hold a cloud key for ECR, Artifact Registry or the s3:// / gs:// / Azure Blob store (W&B's meaning); this build uses none of them: remove them.",
        );
      }
      const [dir, file] = cloud === 'aws' ? ['/root/.aws', 'credentials'] : ['/kaniko/.config/gcloud', 'config.json'];
      volumes.push({ name: 'liftoff-cloud-key', secret: { secretName, items: [{ key: secretKey, path: file }] } });
      volumeMounts.push({ name: 'liftoff-cloud-key', mountPath: dir, readOnly: true });
      if (cloud === 'gcp') env.push({ name: 'GOOGLE_APPLICATION_CREDENTIALS', value: `${dir}/${file}` });
    }
    return {
      container: { name: 'kaniko', image: this.image, args: this.args(input, context), env, volumeMounts },
      volumes,
    };
  }

  /**
   * Kaniko reads gs:// contexts with Google's default credentials: without a signed URL that is the key of
   * secret-name/secret-key (W&B's way). Without one the pod would fail late with an opaque error, so the build
   * fails now naming both fixes.
   */
  protected override storeContext(
    uri: string,
    _api: KubeApi,
    _namespace: string,
    _req: BuildRequest,
    _secrets: string[],
    why: Error,
  ): Promise<ContextSource> {
    if (this.deps.config['secret-name']) return Promise.resolve({ kind: 'store', uri });
    return Promise.reject(
      new BuildError(
        `The kaniko build pod cannot read ${uri}: ${why.message} Or set builder.secret-name and builder.secret-key to a Secret holding a service-account key with read access to the bucket (mounted as W&B does), or use the buildah builder, which reads the context with a short-lived token instead.`,
        why,
      ),
    );
  }

  /** Which cloud a stored key (secret-name) is for: the registry's, else the build-context store's. */
  private cloud(image: string): 'aws' | 'gcp' | undefined {
    const host = registryHost(image) ?? '';
    if (ECR_HOST.test(host)) return 'aws';
    if (GAR_HOST.test(host)) return 'gcp';
    if (this.storeUri.startsWith('s3://')) return 'aws';
    if (this.storeUri.startsWith('gs://')) return 'gcp';
    return undefined;
  }
}
