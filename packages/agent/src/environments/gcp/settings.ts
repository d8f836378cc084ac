import { existsSync } from 'node:fs';
import { GcpEnvironmentError, type AgentConfigFile, type Env } from '@liftoff/core';
import type { GcpClientSettings, GcpService } from '../types.js';

export const CLOUD_PLATFORM_SCOPE = 'https://www.googleapis.com/auth/cloud-platform';
/** Project ids (6-30 of a-z 0-9 -, starting with a letter), optionally domain-scoped (`example.com:my-project`). */
const PROJECT = /^(?:[a-z0-9.-]{1,63}:)?[a-z][a-z0-9-]{4,28}[a-z0-9]$/;
/** Region names like us-central1, europe-west4 (and multi-regions like us, europe for Artifact Registry). */
const REGION = /^[a-z][a-z0-9-]{1,62}$/;

type GcpEnvironment = NonNullable<AgentConfigFile['environment']> & { type: 'gcp' };

/**
 * The Google Cloud settings of an agent whose config has `environment: {type: gcp}`, built once by the CLI from the
 * agent's own environment (`env`, passed in: nothing here reads process.env).
 *
 * - project and region: the config's (the agent config schema requires both; W&B takes the project from ADC only).
 * - credentials: ONE `GoogleAuth` with the cloud-platform scope, i.e. Application Default Credentials: the file named
 *   by GOOGLE_APPLICATION_CREDENTIALS (a service-account key, a workload identity federation config, an
 *   impersonation config; passed in from `env`), else gcloud's ADC file (`gcloud auth application-default login`,
 *   under CLOUDSDK_CONFIG or ~/.config/gcloud), else the GCE/GKE metadata server. The last two are looked up by the
 *   library in the process's own variables (HOME, CLOUDSDK_CONFIG, GCE_METADATA_HOST, METADATA_SERVER_DETECTION),
 *   which is why the CLI passes its own environment. `projectId` is given so the library never runs
 *   `gcloud config config-helper` (through a shell) to find one.
 * - LIFTOFF_GAR_DOCKER_HOST: a registry serving Artifact Registry's docker hosts instead (see GcpClientSettings).
 * - endpoints: STORAGE_EMULATOR_HOST (the variable Google's storage clients honour: an origin, the JSON API under
 *   it); CLOUDSDK_API_ENDPOINT_OVERRIDES_IAMCREDENTIALS (gcloud's name) for IAM signBlob.
 *
 * The library is loaded here by dynamic import: only agents whose config uses Google Cloud pay for it.
 */
export async function gcpClientSettings(config: GcpEnvironment, env: Env): Promise<GcpClientSettings> {
  const project = config.project ?? '';
  const region = config.region ?? '';
  if (!PROJECT.test(project)) {
    throw new GcpEnvironmentError(
      `The gcp environment's project "${project}" is not a Google Cloud project id (like my-project-123): fix environment.project.`,
    );
  }
  if (!REGION.test(region)) {
    throw new GcpEnvironmentError(
      `The gcp environment's region "${region}" is not a Google Cloud region name (like us-central1): fix environment.region.`,
    );
  }
  const { GoogleAuth } = await import('google-auth-library');
  const keyFilename = env.GOOGLE_APPLICATION_CREDENTIALS || undefined;
  // The library would fail at the first token with a bare ENOENT; name the variable instead.
  if (keyFilename && !existsSync(keyFilename)) {
    throw new GcpEnvironmentError(
      `GOOGLE_APPLICATION_CREDENTIALS="${keyFilename}" names no file: point it at the service-account key or credential config file, or unset it to use gcloud's ADC or the metadata server.`,
    );
  }
  const auth = new GoogleAuth({
    scopes: [CLOUD_PLATFORM_SCOPE],
    projectId: project,
    ...(keyFilename ? { keyFilename } : {}),
  });
  const dockerHost = dockerHostFrom(env);
  return {
    project,
    region,
    auth,
    accessToken: sharedTokens(auth),
    endpoints: endpointsFrom(env),
    ...(dockerHost ? { dockerHost } : {}),
  };
}

/** `LIFTOFF_GAR_DOCKER_HOST`: a registry host (`name[:port]`), nothing else (no scheme, path or credentials). */
export function dockerHostFrom(env: Env): string | undefined {
  const raw = env.LIFTOFF_GAR_DOCKER_HOST;
  if (!raw) return undefined;
  if (!/^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:\d{1,5})?$/i.test(raw)) {
    throw new GcpEnvironmentError(
      `LIFTOFF_GAR_DOCKER_HOST="${raw}" is not a registry host: set it to host[:port] (no scheme or path), or unset it.`,
    );
  }
  return raw;
}

/**
 * Every caller's token, from the one client. The library caches it, fetches it again 5 minutes before it expires,
 * and shares one refresh among callers that arrive together (its Compute, JWT and user clients all de-duplicate
 * refreshes), so this only turns "no token" into a named error.
 */
export function sharedTokens(auth: { getAccessToken(): Promise<string | null | undefined> }): () => Promise<string> {
  return async () => {
    const token = await auth.getAccessToken();
    if (!token) throw new GcpEnvironmentError('Google auth returned no access token for the agent credentials.');
    return token;
  };
}

const ENDPOINT_VARIABLES: Readonly<Record<GcpService, readonly string[]>> = {
  storage: ['STORAGE_EMULATOR_HOST'],
  iamcredentials: ['CLOUDSDK_API_ENDPOINT_OVERRIDES_IAMCREDENTIALS'],
  // The vertex runner's two APIs, under gcloud's names for the same overrides.
  aiplatform: ['CLOUDSDK_API_ENDPOINT_OVERRIDES_AIPLATFORM'],
  logging: ['CLOUDSDK_API_ENDPOINT_OVERRIDES_LOGGING'],
};

/** Each override as an origin (path kept, no trailing "/"); a bare host:port is https, as Google's clients read it. */
export function endpointsFrom(env: Env): GcpClientSettings['endpoints'] {
  const endpoints: GcpClientSettings['endpoints'] = {};
  for (const [service, names] of Object.entries(ENDPOINT_VARIABLES) as Array<[GcpService, readonly string[]]>) {
    const name = names.find((n) => env[n]);
    if (!name) continue;
    const raw = env[name] as string;
    const text = /^[a-z]+:\/\//i.test(raw) ? raw : `https://${raw}`;
    let url: URL;
    try {
      url = new URL(text);
    } catch {
      throw new GcpEnvironmentError(`${name}="${raw}" is not a URL: set it to http(s)://host[:port] or unset it.`);
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') {
      throw new GcpEnvironmentError(`${name}="${raw}" must be an http:// or https:// URL.`);
    }
    endpoints[service] = `${url.origin}${url.pathname.replace(/\/+$/, '')}`;
  }
  return endpoints;
}
