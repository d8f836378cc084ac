import { GcpCredentialsMissingError, GcpEnvironmentError, describeCause } from '@liftoff/core';
import { objectStoreFor } from '../../objectStores/index.js';
import type { GcpClientSettings } from '../types.js';

/** Who the agent is on Google Cloud. */
export interface GcpIdentity {
  project: string;
  /** The service account's email when the credentials name one (a key, impersonation, the metadata server). */
  principal?: string;
}

/**
 * At agent start, before any queue is served: the credentials give a token, and the build-context store, when it is
 * a gs:// URI, exists and is reachable (bucket GET). A mistake in either stops the agent at once with one line naming
 * the fix, instead of failing the first job.
 */
export async function checkGcpEnvironment(
  gcp: GcpClientSettings,
  opts: { buildContextStore?: string | undefined },
  say: (line: string) => void,
): Promise<GcpIdentity> {
  try {
    await gcp.accessToken();
  } catch (e) {
    throw tokenProblem(e);
  }
  const project = gcp.project;
  // User credentials (gcloud ADC) name no account; that is no error.
  const principal = await gcp.auth
    .getCredentials()
    .then((c) => c.client_email || undefined)
    .catch(() => undefined);
  say(
    `gcp: project ${project}, principal ${principal ?? '(user credentials, no service account)'}, region ${gcp.region}`,
  );
  if (gcp.dockerHost)
    say(`gcp: Artifact Registry images (*-docker.pkg.dev) go to ${gcp.dockerHost} (LIFTOFF_GAR_DOCKER_HOST)`);
  if (opts.buildContextStore?.startsWith('gs://')) {
    await objectStoreFor(opts.buildContextStore, { gcp }).verify(opts.buildContextStore);
    say(`gcp: build-context store ${opts.buildContextStore} is reachable`);
  }
  return { project, ...(principal ? { principal } : {}) };
}

function tokenProblem(e: unknown): Error {
  if (e instanceof GcpEnvironmentError) return e;
  const message = (e as Error | undefined)?.message ?? String(e);
  // google-auth-library's GoogleAuthExceptionMessages.NO_ADC_FOUND: no key file, no gcloud ADC, no metadata server.
  if (/Could not load the default credentials/.test(message)) {
    return new GcpCredentialsMissingError(
      'no GOOGLE_APPLICATION_CREDENTIALS, no gcloud ADC file, no metadata server',
      e,
    );
  }
  const status = (e as { status?: number; response?: { status?: number } }).response?.status;
  if (status !== undefined) {
    return new GcpEnvironmentError(
      `Google refused the agent's credentials when asked for an access token (HTTP ${status}: ${describeCause(e)}); check GOOGLE_APPLICATION_CREDENTIALS or the service account attached to the machine, and that it is enabled.`,
      e,
    );
  }
  return new GcpEnvironmentError(
    `Could not get a Google Cloud access token (${describeCause(e)}); check the agent's credentials (GOOGLE_APPLICATION_CREDENTIALS, gcloud ADC, the metadata server) and its network.`,
    e,
  );
}
