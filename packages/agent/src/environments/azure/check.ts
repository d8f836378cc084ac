import { AzureCredentialsMissingError, AzureEnvironmentError, describeCause } from '@liftoff/core';
import { objectStoreFor } from '../../objectStores/index.js';
import type { AzureClientSettings } from '../types.js';
import { tokenClaims } from './settings.js';

/** Storage's scope: what Blob calls (and the start check, when the build-context store is a Blob container) need. */
export const STORAGE_SCOPE = 'https://storage.azure.com/.default';
/** Azure Resource Manager: any Entra principal can get a token for it, so it proves the credentials alone. */
export const MANAGEMENT_SCOPE = 'https://management.azure.com/.default';
const BLOB_URI = /^https:\/\/[^/]+\.blob\.core\.windows\.net\//;

/** Who the agent is on Azure (read from its token: only to say so, never to decide anything). */
export interface AzureIdentity {
  tenantId?: string;
  principal?: string;
}

/**
 * At agent start, before any queue is served: the credential chain gives a token, and the build-context store, when
 * it is a Blob container, exists and is reachable. A mistake in either stops the agent at once with one line naming
 * the fix, instead of failing the first job (W&B's check only constructs a client, so it never fails).
 */
export async function checkAzureEnvironment(
  azure: AzureClientSettings,
  opts: { buildContextStore?: string | undefined },
  say: (line: string) => void,
): Promise<AzureIdentity> {
  const store = opts.buildContextStore && BLOB_URI.test(opts.buildContextStore) ? opts.buildContextStore : undefined;
  let token: string;
  try {
    token = (await azure.token(store ? STORAGE_SCOPE : MANAGEMENT_SCOPE)).token;
  } catch (e) {
    throw tokenProblem(azure, e);
  }
  const claims = tokenClaims(token);
  const str = (k: string) => (typeof claims[k] === 'string' ? (claims[k] as string) : undefined);
  const tenantId = str('tid') ?? azure.tenantId;
  // appid (v1 tokens) / azp (v2) is the application; oid the principal's object id.
  const principal = str('appid') ?? str('azp') ?? str('oid');
  say(`azure: tenant ${tenantId ?? '(unknown)'}, principal ${principal ?? '(unknown)'}`);
  if (store) {
    await objectStoreFor(store, { azure }).verify(store);
    say(`azure: build-context store ${store} is reachable`);
  }
  return { ...(tenantId ? { tenantId } : {}), ...(principal ? { principal } : {}) };
}

function tokenProblem(azure: AzureClientSettings, e: unknown): Error {
  if (e instanceof AzureEnvironmentError) return e;
  const err = e as { name?: string; message?: string; errors?: Array<{ name?: string; message?: string }> };
  const each = err.name === 'AggregateAuthenticationError' ? (err.errors ?? []) : [err];
  // The identity library reports every managed-identity failure as "unavailable" (so a chain goes on to the next
  // source), also when an endpoint answered and refused: that one ("Authentication failed") is a refusal to name.
  const refused = each.find(
    (x) => x.name !== 'CredentialUnavailableError' || /Authentication failed/.test(x.message ?? ''),
  );
  // A service principal or workload identity the environment configured, that could not be used (its authority
  // unreachable, its certificate or token file unreadable), is that source's problem, not "no credentials".
  const configured = azure.sources.findIndex((s) => !s.startsWith('managed identity'));
  if (!refused && configured >= 0 && each[configured]) {
    return new AzureEnvironmentError(
      `Could not get an Azure token with the ${azure.sources[configured]} the agent's environment configures (${oneLine(describeCause(each[configured]))}); check AZURE_AUTHORITY_HOST, the network, and the secret, certificate or token file.`,
      e,
    );
  }
  if (!refused) return new AzureCredentialsMissingError(`tried: ${azure.sources.join(', ')}`, e);
  return new AzureEnvironmentError(
    `Azure refused the agent's credentials when asked for an access token (${oneLine(describeCause(refused))}); check AZURE_TENANT_ID, AZURE_CLIENT_ID and the secret, certificate or federated token file, or the managed identity attached to the machine.`,
    e,
  );
}

/** The identity library's messages span lines (and link to troubleshooting pages); the start error is one line. */
const oneLine = (s: string): string => s.replace(/\s*\n\s*/g, ' ').slice(0, 500);
