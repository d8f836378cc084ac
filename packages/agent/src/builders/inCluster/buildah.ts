import { InClusterBuilderConfigError } from '@liftoff/core';
import { registryHost } from '../../docker/credentials.js';
import { parseGsUri } from '../../objectStores/gcs.js';
import type { KubeApi } from '../../runners/kubernetes/api.js';
import { BuildError, type BuildRequest } from '../types.js';
import { InClusterBuilder, type ContextSource, type InClusterDeps, type PodInput } from './builder.js';
import type { BuildPod } from './job.js';

/** What buildah needs to build as root in a container: user namespaces and mounts (SYS_ADMIN), chroot, id changes. */
export const BUILDAH_CAPABILITIES = ['SYS_ADMIN', 'SETUID', 'SETGID', 'SYS_CHROOT'];
const AUTH_DIR = '/var/run/liftoff/registry';
export const CONTEXT_HEADER_DIR = '/var/run/liftoff/context';
/** Registries on the pod's own machine are spoken to over plain HTTP, as docker (and the OCI registry check) do. */
const LOOPBACK = /^(localhost|127\.\d+\.\d+\.\d+)(:\d+)?$/;

/**
 * The build script, fixed: every value it uses comes from the environment (never spliced into the script), so a
 * Dockerfile path or image name cannot become shell. The context is fetched with curl (with the header file of a
 * mounted Secret when there is one: a GCS token when no URL could be signed), unpacked, built with
 * `buildah bud --isolation chroot --storage-driver vfs` (no daemon, no overlay mounts, no nested runtime) and pushed
 * with the mounted login (REGISTRY_AUTH_FILE).
 */
export const BUILDAH_SCRIPT = [
  'set -eu',
  'mkdir -p /workspace',
  `if [ -f ${CONTEXT_HEADER_DIR}/header ]; then set -- -H @${CONTEXT_HEADER_DIR}/header; else set --; fi`,
  'echo "fetching the build context"',
  'curl -fsS --retry 3 "$@" "$LIFTOFF_CONTEXT_URL" | tar -xz -C /workspace',
  'echo "building $LIFTOFF_DESTINATION from $LIFTOFF_DOCKERFILE"',
  'buildah bud --isolation chroot --storage-driver vfs --tls-verify="$LIFTOFF_TLS_VERIFY" -f "/workspace/$LIFTOFF_DOCKERFILE" -t "$LIFTOFF_DESTINATION" /workspace',
  'buildah push --storage-driver vfs --tls-verify="$LIFTOFF_TLS_VERIFY" "$LIFTOFF_DESTINATION"',
].join('\n');

/**
 * `builder.type: buildah` (Liftoff's; W&B has no such builder): Debian-packaged buildah in the same Job skeleton as
 * kaniko, for clusters that want a maintained in-cluster builder. Its pod runs as root with the capabilities in
 * BUILDAH_CAPABILITIES, which the run's log says in a `[liftoff]` line and docs/builders.md explains. The image is
 * `builder.buildah-image` (required: one built from Debian as scripts/services/buildah.sh does, or
 * quay.io/buildah/stable); it needs sh, curl, tar and buildah.
 */
export class BuildahBuilder extends InClusterBuilder {
  readonly type = 'buildah' as const;
  private readonly image: string;

  constructor(deps: InClusterDeps) {
    super(deps);
    const image = deps.config['buildah-image'];
    if (!image) {
      throw new InClusterBuilderConfigError(
        'builder type buildah needs builder.buildah-image: an image with buildah, sh, curl and tar (e.g. one debootstrapped with buildah,netavark,ca-certificates,curl, or quay.io/buildah/stable).',
      );
    }
    if (deps.config['secret-name']) {
      throw new InClusterBuilderConfigError(
        "builder.secret-name/secret-key are kaniko keys (a stored cloud key); the buildah builder pushes with the agent's registry login and reads the context by a signed URL or a short-lived token: remove them.",
      );
    }
    this.image = image;
  }

  protected override notes(): string[] {
    return [
      `the buildah build pod runs as root with capabilities ${BUILDAH_CAPABILITIES.join(', ')} (user namespaces and mounts for the build); docs/builders.md`,
    ];
  }

  /**
   * GCS credentials that cannot sign a URL (user credentials, or a service account without signBlob): the pod
   * downloads the object through the JSON API with a current access token of the agent, put in a Secret of its own
   * that lives only as long as the build Job (about an hour at most, as the token does). W&B mounts a long-lived key
   * instead. The token is the agent's (cloud-platform scope): the `[liftoff]` note says so, and docs/builders.md
   * says how to avoid it (grant signBlob).
   */
  protected override async storeContext(
    uri: string,
    api: KubeApi,
    namespace: string,
    req: BuildRequest,
    secrets: string[],
    why: Error,
  ): Promise<ContextSource> {
    const gcp = this.deps.runner.gcp;
    if (!gcp) throw new BuildError(`The build pod cannot be given ${uri}: ${why.message}`, why);
    const { bucket, key } = parseGsUri(uri);
    const endpoint = gcp.endpoints.storage ?? 'https://storage.googleapis.com';
    const mediaUrl = `${endpoint}/storage/v1/b/${encodeURIComponent(bucket)}/o/${encodeURIComponent(key)}?alt=media`;
    let token: string;
    try {
      token = await gcp.accessToken();
    } catch (e) {
      throw new BuildError(
        `Could not get a Google access token for the build pod to read ${uri}: ${(e as Error).message}`,
        e,
      );
    }
    const name = `liftoff-build-ctx-${req.runId}`;
    await this.createSecret(api, namespace, name, req, 'Opaque', { header: `Authorization: Bearer ${token}` });
    secrets.push(name);
    (req.onNote ?? ((l: string) => req.onLog(`[liftoff] ${l}\n`)))(
      `no signed URL for ${uri} (${why.message.split(';')[0] ?? ''}): the build pod reads it with a short-lived access token of the agent in Secret ${namespace}/${name}, deleted with the build Job`,
    );
    return { kind: 'store', uri, tokenSecret: name, mediaUrl };
  }

  protected pod(input: PodInput): BuildPod {
    const url = input.context.kind === 'url' ? input.context.url : (input.context.mediaUrl ?? input.context.uri);
    const host = registryHost(input.image) ?? '';
    const env = [
      { name: 'LIFTOFF_CONTEXT_URL', value: url },
      { name: 'LIFTOFF_DOCKERFILE', value: input.dockerfile },
      { name: 'LIFTOFF_DESTINATION', value: input.image },
      { name: 'LIFTOFF_TLS_VERIFY', value: LOOPBACK.test(host) ? 'false' : 'true' },
    ];
    const volumeMounts: Array<Record<string, unknown>> = [];
    const volumes: Array<Record<string, unknown>> = [];
    if (input.pushSecret) {
      env.push({ name: 'REGISTRY_AUTH_FILE', value: `${AUTH_DIR}/auth.json` });
      volumes.push({
        name: 'liftoff-registry-auth',
        secret: { secretName: input.pushSecret, items: [{ key: '.dockerconfigjson', path: 'auth.json' }] },
      });
      volumeMounts.push({ name: 'liftoff-registry-auth', mountPath: AUTH_DIR, readOnly: true });
    }
    if (input.context.kind === 'store' && input.context.tokenSecret) {
      volumes.push({ name: 'liftoff-context-token', secret: { secretName: input.context.tokenSecret } });
      volumeMounts.push({ name: 'liftoff-context-token', mountPath: CONTEXT_HEADER_DIR, readOnly: true });
    }
    return {
      container: {
        name: 'buildah',
        image: this.image,
        command: ['sh', '-c', BUILDAH_SCRIPT],
        env,
        volumeMounts,
        securityContext: { runAsUser: 0, capabilities: { add: BUILDAH_CAPABILITIES } },
      },
      volumes,
    };
  }
}
