import { GcpEnvironmentError, type AgentConfigFile } from '@liftoff/core';
import { OciRegistry } from './oci.js';
import type { Registry } from './types.js';
import type { RegistryDeps } from './index.js';

/** Artifact Registry's docker hosts: `<location>-docker.pkg.dev` (a region like us-central1, or us / europe / asia). */
const GAR_HOST = /^[a-z][a-z0-9-]*-docker\.pkg\.dev$/;
/**
 * A registry on this machine (`127.x.x.x:<port>`, `localhost:<port>`): a local mirror or a test registry. It gets
 * the agent's Google token like a pkg.dev host; any other host is refused, so a token never goes to a stranger.
 */
const LOOPBACK_HOST = /^(?:localhost|127\.\d+\.\d+\.\d+):\d+$/;
/** Repository ids: a lower-case letter, then up to 62 lower-case letters, digits or "-". */
const REPOSITORY = /^[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
/** Image names: OCI path components (lower-case alnum separated by . _ -), joined by "/". */
const IMAGE = /^[a-z0-9]+(?:[._-][a-z0-9]+)*(?:\/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$/;
/** Project ids. Domain-scoped ones (`example.com:p`, written `example.com/p` in image paths) are not supported. */
const PROJECT = /^[a-z][a-z0-9-]{4,28}[a-z0-9]$/;

export interface GarTarget {
  host: string;
  project: string;
  repository: string;
  image: string;
}

/** `<host>/<project>/<repository>/<image>` (an image name may have several components). */
export function parseGarUri(uri: string, imageName?: string): GarTarget | undefined {
  const bare = uri.replace(/^https?:\/\//, '').replace(/\/+$/, '');
  const [host = '', project = '', repository = '', ...rest] = bare.split('/');
  const image = rest.length ? rest.join('/') : (imageName ?? '');
  if (!GAR_HOST.test(host) && !LOOPBACK_HOST.test(host)) return undefined;
  if (!PROJECT.test(project) || !REPOSITORY.test(repository) || !IMAGE.test(image)) return undefined;
  return { host, project, repository, image };
}

type GarConfig = NonNullable<AgentConfigFile['registry']>;

/**
 * `registry: {type: gcr}`: Google Artifact Registry's docker repositories. The target is `uri` (or a
 * `builder.destination` on a `-docker.pkg.dev` host, or `repository` written as a URI):
 * `<location>-docker.pkg.dev/<project>/<repository>/<image-name>`; else `repository` + `image-name` in the
 * environment's region and project. LIFTOFF_GAR_DOCKER_HOST (GcpClientSettings.dockerHost) replaces a pkg.dev host.
 * The login is `oauth2accesstoken` + a current access token of the agent's one auth
 * client, asked for at every push, pull, existence check and Kubernetes pull secret (tokens live about an hour; the
 * client refreshes them). "Does this image exist" is the OCI manifest HEAD (one request), not W&B's listing of every
 * image of the repository.
 */
export async function createGarRegistry(cfg: GarConfig, deps: RegistryDeps): Promise<Registry> {
  const { gcp } = deps;
  if (!gcp) throw new GcpEnvironmentError('registry type gcr needs environment: {type: gcp} in the agent config.');
  const imageName = cfg['image-name'];
  const uriText = cfg.uri ?? (cfg.repository?.includes('/') ? cfg.repository : undefined) ?? deps.destination;
  let target: GarTarget | undefined;
  if (uriText) {
    target = parseGarUri(uriText, imageName);
    if (!target) {
      throw new GcpEnvironmentError(
        `"${uriText}" (${cfg.uri ? 'registry.uri' : cfg.repository?.includes('/') ? 'registry.repository' : 'builder.destination'}) is not an Artifact Registry image: write <location>-docker.pkg.dev/<project>/<repository>/<image-name> (lower-case), or give registry.repository and registry.image-name.`,
      );
    }
  } else {
    const repository = cfg.repository ?? '';
    if (!REPOSITORY.test(repository)) {
      throw new GcpEnvironmentError(
        `registry.repository "${repository}" is not an Artifact Registry repository id (a lower-case letter, then lower-case letters, digits or "-", at most 63).`,
      );
    }
    if (!imageName || !IMAGE.test(imageName)) {
      throw new GcpEnvironmentError(
        `registry.image-name "${imageName ?? ''}" is not an image name: give lower-case letters and digits separated by ".", "_", "-" or "/".`,
      );
    }
    if (!PROJECT.test(gcp.project)) {
      throw new GcpEnvironmentError(
        `environment.project "${gcp.project}" cannot name an Artifact Registry image (domain-scoped projects are not supported): give registry.uri.`,
      );
    }
    target = { host: `${gcp.region}-docker.pkg.dev`, project: gcp.project, repository, image: imageName };
  }
  if (gcp.dockerHost && GAR_HOST.test(target.host)) target = { ...target, host: gcp.dockerHost };
  deps.credentials.setProvider(target.host, async () => ({
    username: 'oauth2accesstoken',
    password: await gcp.accessToken(),
  }));
  return new OciRegistry(
    deps.docker,
    `${target.host}/${target.project}/${target.repository}/${target.image}`,
    deps.credentials,
    fetch,
    `the agent's service account needs roles/artifactregistry.writer on repository ${target.repository} of project ${target.project}`,
  );
}
