import { createHmac, randomUUID } from 'node:crypto';
import { listen } from '../gcpFake/http.js';

export const TENANT = '72f988bf-86f1-41af-91ab-2d7cd011db47';
export const CLIENT = '8c3f5b0a-1d2e-4f60-9a7b-0c1d2e3f4a5b';
export const OBJECT = 'b1d2c3e4-f5a6-4b7c-8d9e-0f1a2b3c4d5e';

/**
 * A fake Azure managed-identity endpoint on loopback, the App Service / Functions / Container Apps kind: what MSAL's
 * `AppService` source asks (`GET $IDENTITY_ENDPOINT?api-version=2019-08-01&resource=<r>` with the secret of
 * `IDENTITY_HEADER` in `X-IDENTITY-HEADER`), with the check the real one makes (a wrong or missing header is
 * refused). Each fetch mints a JWT for the asked resource with Entra's claims (iss sts.windows.net/<tenant>, aud,
 * tid, oid, appid, exp), so Azurite's OAuth check and the fake ACR can read it; the signature is an HMAC only this
 * process knows, and `issued` tells whether a token came from here.
 *
 * MSAL picks its managed-identity endpoint once per process (a static of its ManagedIdentityClient), so a test file
 * starts one fake and changes its behaviour, and a test of "no identity at all" runs in a file of its own.
 */
export interface FakeIdentity {
  url: string;
  /** IDENTITY_ENDPOINT + IDENTITY_HEADER, and no other identity source. */
  env: Record<string, string>;
  /** Token fetches so far, for a resource and (a user-assigned identity's) client id when given. */
  fetches(resource?: string, client?: string): number;
  /** Whether `token` was minted here for `resource` and has not expired. */
  issued(token: string, resource: string): boolean;
  /** Lifetime of the tokens minted from now on, in seconds. */
  expiresIn: number;
  /** When set, token requests answer this status (as an identity not assigned to the app: 400). */
  tokenStatus?: number;
  /** Requests refused for a missing or wrong X-IDENTITY-HEADER. */
  refused(): number;
}

export function mintEntraToken(resource: string, expiresIn: number, key: string, appid = CLIENT): string {
  const now = Math.floor(Date.now() / 1000);
  const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const head = b64({ typ: 'JWT', alg: 'HS256' });
  const body = b64({
    aud: resource,
    iss: `https://sts.windows.net/${TENANT}/`,
    iat: now,
    nbf: now,
    exp: now + expiresIn,
    tid: TENANT,
    oid: OBJECT,
    appid,
    sub: OBJECT,
    ver: '1.0',
  });
  const sig = createHmac('sha256', key).update(`${head}.${body}`).digest('base64url');
  return `${head}.${body}.${sig}`;
}

export function verifyEntraToken(token: string, resource: string, key: string): boolean {
  const [head = '', body = '', sig = ''] = token.split('.');
  if (createHmac('sha256', key).update(`${head}.${body}`).digest('base64url') !== sig) return false;
  const claims = JSON.parse(Buffer.from(body, 'base64url').toString('utf8')) as { aud?: string; exp?: number };
  return claims.aud === resource && (claims.exp ?? 0) * 1000 > Date.now();
}

export async function startFakeIdentity(opts: { expiresIn?: number } = {}): Promise<FakeIdentity> {
  const header = randomUUID();
  const key = randomUUID();
  const asked: Array<{ resource: string; client: string }> = [];
  let refused = 0;
  const fake = {
    expiresIn: opts.expiresIn ?? 3600,
    fetches: (resource?: string, client?: string) =>
      asked.filter((a) => (!resource || a.resource === resource) && (!client || a.client === client)).length,
    issued: (token: string, resource: string) => verifyEntraToken(token, resource, key),
    refused: () => refused,
  } as Omit<FakeIdentity, 'url' | 'env'>;
  const { url } = await listen((req, res) => {
    const u = new URL(req.url ?? '/', 'http://identity');
    const reply = (code: number, body: unknown) => {
      res.writeHead(code, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (u.pathname !== '/msi/token' || req.method !== 'GET') return reply(404, { error: 'not_found' });
    if (req.headers['x-identity-header'] !== header) {
      refused++;
      return reply(401, { error: 'unauthorized', error_description: 'X-IDENTITY-HEADER is missing or wrong' });
    }
    const resource = u.searchParams.get('resource') ?? '';
    if (u.searchParams.get('api-version') !== '2019-08-01' || !resource) {
      return reply(400, { error: 'invalid_request', error_description: 'api-version and resource are required' });
    }
    if (fake.tokenStatus) {
      return reply(fake.tokenStatus, {
        statusCode: fake.tokenStatus,
        message: 'No managed identity found for the specified ClientId/ResourceId/PrincipalId.',
      });
    }
    // A user-assigned identity is asked for by its client id; it is then who the token names.
    const client = u.searchParams.get('client_id') ?? CLIENT;
    asked.push({ resource, client });
    const token = mintEntraToken(resource, fake.expiresIn, key, client);
    reply(200, {
      access_token: token,
      expires_on: String(Math.floor(Date.now() / 1000) + fake.expiresIn),
      resource,
      token_type: 'Bearer',
      client_id: client,
    });
  });
  return Object.assign(fake, {
    url: `${url}/msi/token`,
    env: { IDENTITY_ENDPOINT: `${url}/msi/token`, IDENTITY_HEADER: header },
  }) as FakeIdentity;
}

/** The variables of the Azure identity stack a test must control (unset unless a test sets them). */
export const AZURE_VARIABLES = [
  'AZURE_TENANT_ID',
  'AZURE_CLIENT_ID',
  'AZURE_CLIENT_SECRET',
  'AZURE_CLIENT_CERTIFICATE_PATH',
  'AZURE_CLIENT_CERTIFICATE_PASSWORD',
  'AZURE_FEDERATED_TOKEN_FILE',
  'AZURE_AUTHORITY_HOST',
  'AZURE_POD_IDENTITY_AUTHORITY_HOST',
  'IDENTITY_ENDPOINT',
  'IDENTITY_HEADER',
  'IDENTITY_SERVER_THUMBPRINT',
  'IMDS_ENDPOINT',
  'MSI_ENDPOINT',
  'MSI_SECRET',
  'LIFTOFF_AZURE_BLOB_ENDPOINT',
];

/** Where the VM identity endpoint (IMDS) is looked for by agents under test: a closed loopback port. */
export const AGENT_NO_IMDS = { AZURE_POD_IDENTITY_AUTHORITY_HOST: 'http://127.0.0.1:9' };

/**
 * An agent's Azure environment in end-to-end suites: the fake managed identity, no IMDS, the tenant, and Azurite as
 * every storage account (its test CA trusted). None of it may reach a job.
 */
export function azureAgentEnv(id: FakeIdentity, azurite: { origin: string; caFile: string }): Record<string, string> {
  return {
    ...id.env,
    ...AGENT_NO_IMDS,
    AZURE_TENANT_ID: TENANT,
    LIFTOFF_AZURE_BLOB_ENDPOINT: azurite.origin,
    NODE_EXTRA_CA_CERTS: azurite.caFile,
  };
}
