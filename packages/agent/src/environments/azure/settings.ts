import { readFileSync } from 'node:fs';
import { rootCertificates } from 'node:tls';
import { AzureEnvironmentError, type AgentConfigFile, type Env } from '@liftoff/core';
import type { AzureClientSettings, AzureToken } from '../types.js';

type AzureEnvironment = NonNullable<AgentConfigFile['environment']> & { type: 'azure' };

/** A token is fetched again this long before it expires (MSAL itself refreshes 5 minutes early). */
const REFRESH_BEFORE_MS = 5 * 60_000;
/** The Entra authorities of Azure's public and sovereign clouds, which MSAL's instance discovery knows. */
const PUBLIC_AUTHORITIES = new Set([
  'login.microsoftonline.com',
  'login.microsoftonline.us',
  'login.chinacloudapi.cn',
  'login.partner.microsoftonline.cn',
]);
const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * The Azure settings of an agent whose config has `environment: {type: azure}`, built once by the CLI from the
 * agent's own environment (`env`, passed in: nothing here reads process.env).
 *
 * Credentials: the chain `DefaultAzureCredential` documents, but made here from `env` instead of by the library
 * from process.env, with the shell-free sources only:
 * 1. a service principal: AZURE_TENANT_ID + AZURE_CLIENT_ID + AZURE_CLIENT_SECRET, or AZURE_CLIENT_CERTIFICATE_PATH
 *    (and AZURE_CLIENT_CERTIFICATE_PASSWORD);
 * 2. workload identity (AKS): AZURE_FEDERATED_TOKEN_FILE + AZURE_CLIENT_ID + AZURE_TENANT_ID;
 * 3. managed identity (system-assigned, or the user-assigned one AZURE_CLIENT_ID names). Which endpoint it asks
 *    (App Service / Functions IDENTITY_ENDPOINT + IDENTITY_HEADER, Cloud Shell MSI_ENDPOINT, Arc, else the VM's
 *    IMDS) is decided by MSAL from the process's own variables, which is why the CLI passes its own environment.
 * AZURE_AUTHORITY_HOST replaces https://login.microsoftonline.com (sovereign clouds; a private authority such as
 * Azure Stack Hub or a local one in tests, for which MSAL's instance discovery is turned off).
 * The Azure CLI, PowerShell and Developer CLI sources of DefaultAzureCredential are left out: they run their tools
 * through a shell, which Liftoff never does; `az login` users give the agent a service principal instead.
 *
 * NODE_EXTRA_CA_CERTS (the file Node adds to its trusted CAs) is also handed to the identity and Blob clients
 * explicitly, so an authority or storage endpoint with a private CA (Azure Stack, a test server) is trusted by
 * in-process callers too (Node reads the variable only at process start).
 * LIFTOFF_AZURE_BLOB_ENDPOINT (an https origin) serves every account path-style (`<origin>/<account>/...`), as
 * Azurite and Azure Stack do; without it accounts are `https://<account>.blob.core.windows.net`.
 *
 * The library is loaded here by dynamic import: only agents whose config uses Azure pay for it.
 */
export async function azureClientSettings(_config: AzureEnvironment, env: Env): Promise<AzureClientSettings> {
  const identity = await import('@azure/identity');
  const tenantId = env.AZURE_TENANT_ID || undefined;
  const clientId = env.AZURE_CLIENT_ID || undefined;
  if (tenantId && !GUID.test(tenantId) && !/^[a-z0-9.-]+$/i.test(tenantId)) {
    throw new AzureEnvironmentError(
      `AZURE_TENANT_ID="${tenantId}" is not a tenant id (a GUID or a domain like contoso.onmicrosoft.com): fix or unset it.`,
    );
  }
  const authorityHost = authorityFrom(env);
  const { ca } = extraCa(env);
  const common = {
    ...(authorityHost ? { authorityHost } : {}),
    // MSAL checks an authority it does not know with Microsoft's instance discovery (login.microsoftonline.com);
    // a private one (Azure Stack Hub, AD FS, a test server) has no entry there, so that lookup is skipped.
    ...(authorityHost && !PUBLIC_AUTHORITIES.has(new URL(authorityHost).host)
      ? { disableInstanceDiscovery: true }
      : {}),
    // The identity library's HTTP pipeline (also MSAL's network client) trusts the same extra CAs as the storage one.
    ...(ca ? { tlsOptions: { ca } } : {}),
  };
  const credentials: Array<import('@azure/identity').TokenCredential> = [];
  const sources: string[] = [];
  if (tenantId && clientId && env.AZURE_CLIENT_SECRET) {
    credentials.push(new identity.ClientSecretCredential(tenantId, clientId, env.AZURE_CLIENT_SECRET, common));
    sources.push('service principal (AZURE_CLIENT_SECRET)');
  } else if (tenantId && clientId && env.AZURE_CLIENT_CERTIFICATE_PATH) {
    credentials.push(
      new identity.ClientCertificateCredential(
        tenantId,
        clientId,
        {
          certificatePath: env.AZURE_CLIENT_CERTIFICATE_PATH,
          ...(env.AZURE_CLIENT_CERTIFICATE_PASSWORD
            ? { certificatePassword: env.AZURE_CLIENT_CERTIFICATE_PASSWORD }
            : {}),
        } as import('@azure/identity').ClientCertificatePEMCertificatePath,
        common,
      ),
    );
    sources.push('service principal (AZURE_CLIENT_CERTIFICATE_PATH)');
  }
  if (tenantId && clientId && env.AZURE_FEDERATED_TOKEN_FILE) {
    credentials.push(
      new identity.WorkloadIdentityCredential({
        tenantId,
        clientId,
        tokenFilePath: env.AZURE_FEDERATED_TOKEN_FILE,
        ...common,
      }),
    );
    sources.push('workload identity (AZURE_FEDERATED_TOKEN_FILE)');
  }
  credentials.push(
    new identity.ManagedIdentityCredential({
      ...(clientId ? { clientId } : {}),
      ...(ca ? { tlsOptions: { ca } } : {}),
    }),
  );
  sources.push(clientId ? `managed identity (client id ${clientId})` : 'managed identity');
  const credential = new identity.ChainedTokenCredential(...credentials);
  return {
    credential,
    sources,
    ...(tenantId ? { tenantId } : {}),
    token: sharedTokens(credential),
    endpoints: endpointsFrom(env),
    ...(ca ? { ca } : {}),
  };
}

function authorityFrom(env: Env): string | undefined {
  const raw = env.AZURE_AUTHORITY_HOST;
  if (!raw) return undefined;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new AzureEnvironmentError(
      `AZURE_AUTHORITY_HOST="${raw}" is not a URL: set it to https://<host> or unset it.`,
    );
  }
  // MSAL refuses plain-HTTP authorities anyway; say so before the first token instead of deep inside it.
  if (url.protocol !== 'https:') {
    throw new AzureEnvironmentError(`AZURE_AUTHORITY_HOST="${raw}" must be an https:// URL.`);
  }
  return url.origin;
}

/** The LIFTOFF_AZURE_BLOB_ENDPOINT override, as an origin. */
export function endpointsFrom(env: Env): AzureClientSettings['endpoints'] {
  const raw = env.LIFTOFF_AZURE_BLOB_ENDPOINT;
  if (!raw) return {};
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new AzureEnvironmentError(
      `LIFTOFF_AZURE_BLOB_ENDPOINT="${raw}" is not a URL: set it to https://host[:port] or unset it.`,
    );
  }
  // Blob requests carry bearer tokens, which the storage client sends over https only.
  if (url.protocol !== 'https:') {
    throw new AzureEnvironmentError(`LIFTOFF_AZURE_BLOB_ENDPOINT="${raw}" must be an https:// URL.`);
  }
  return { blob: url.origin };
}

function extraCa(env: Env): { ca?: string[] } {
  const file = env.NODE_EXTRA_CA_CERTS;
  if (!file) return {};
  try {
    return { ca: [...rootCertificates, readFileSync(file, 'utf8')] };
  } catch (e) {
    throw new AzureEnvironmentError(
      `NODE_EXTRA_CA_CERTS="${file}" cannot be read (${(e as Error).message}): point it at a PEM file or unset it.`,
    );
  }
}

/**
 * Every caller's token for a scope, from the one chain: cached until shortly before it expires, and callers that
 * arrive together share one fetch (the chain itself neither caches nor de-duplicates across its sources).
 */
export function sharedTokens(
  credential: import('@azure/identity').TokenCredential,
  now: () => number = () => Date.now(),
): (scope: string) => Promise<AzureToken> {
  const cache = new Map<string, { token: AzureToken } | { pending: Promise<AzureToken> }>();
  return (scope) => {
    const hit = cache.get(scope);
    if (hit && 'pending' in hit) return hit.pending;
    if (hit && hit.token.expiresOnTimestamp - REFRESH_BEFORE_MS > now()) return Promise.resolve(hit.token);
    const pending = credential.getToken(scope).then(
      (t) => {
        if (!t?.token) throw new AzureEnvironmentError(`Azure returned no access token for ${scope}.`);
        const token = { token: t.token, expiresOnTimestamp: t.expiresOnTimestamp };
        cache.set(scope, { token });
        return token;
      },
      (e: unknown) => {
        cache.delete(scope);
        throw e;
      },
    );
    cache.set(scope, { pending });
    return pending;
  };
}

/** The claims of an Entra access token (a JWT), read without verifying it: only to say who the agent is. */
export function tokenClaims(token: string): Record<string, unknown> {
  try {
    const payload = token.split('.')[1] ?? '';
    const claims: unknown = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
    return claims && typeof claims === 'object' ? (claims as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}
