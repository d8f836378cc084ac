import { constants, createPublicKey, randomUUID, verify } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { selfSignedCert } from '../kube/index.js';
import { onCleanup, tempDir } from '../procs.js';
import { CLIENT, TENANT, mintEntraToken, verifyEntraToken } from './identity.js';

/**
 * A fake Microsoft Entra authority on loopback, over HTTPS (MSAL refuses plain-HTTP authorities), for the client
 * credentials flow of a service principal or a workload identity: the tenant's OpenID configuration and its v2.0
 * token endpoint, which checks the client id and its secret or federated assertion (a wrong secret answers
 * AADSTS7000215, as Entra does) and mints tokens with Entra's
 * claims for the scope's resource. MSAL's instance discovery is not served: with a private authority the agent
 * turns it off, and a request for it would show up in `unknown`.
 */
export interface FakeEntra {
  /** `https://127.0.0.1:<port>`, the value of AZURE_AUTHORITY_HOST. */
  origin: string;
  /** The test CA (the server's own certificate), for NODE_EXTRA_CA_CERTS. */
  caFile: string;
  secret: string;
  /** The federated token (a Kubernetes service-account token, for workload identity) the authority accepts. */
  assertion: string;
  /** A PEM file with the application's certificate and private key, whose signed assertions the authority accepts. */
  certificateFile: string;
  tokenFetches(): number;
  issued(token: string, resource: string): boolean;
  unknown: string[];
}

export async function startFakeEntra(): Promise<FakeEntra> {
  const dir = tempDir('liftoff-fake-entra-');
  const tls = await selfSignedCert(join(dir, 'tls'));
  // The application's own certificate (what `az ad sp create-for-rbac --create-cert` makes), key and cert in one PEM.
  const app = await selfSignedCert(join(dir, 'app'));
  const certificateFile = join(dir, 'app.pem');
  writeFileSync(certificateFile, `${app.key}${app.cert}`);
  const appKey = createPublicKey(app.cert);
  const secret = `secret-${randomUUID()}`;
  const assertion = `eyJ.federated-${randomUUID()}`;
  const key = randomUUID();
  let fetches = 0;
  const unknown: string[] = [];
  let origin = '';
  /** A client assertion signed with the app certificate's key (RS256 or PS256, as MSAL versions differ), for us. */
  const signedByApp = (jwt: string, audience: string): boolean => {
    const [head = '', body = '', sig = ''] = jwt.split('.');
    try {
      const header = JSON.parse(Buffer.from(head, 'base64url').toString('utf8')) as { alg?: string };
      const claims = JSON.parse(Buffer.from(body, 'base64url').toString('utf8')) as {
        aud?: string;
        iss?: string;
        sub?: string;
        exp?: number;
      };
      const key =
        header.alg === 'PS256'
          ? { key: appKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }
          : header.alg === 'RS256'
            ? appKey
            : undefined;
      if (!key) return false;
      const valid = verify('sha256', Buffer.from(`${head}.${body}`), key, Buffer.from(sig, 'base64url'));
      return (
        valid &&
        claims.aud === audience &&
        claims.iss === CLIENT &&
        claims.sub === CLIENT &&
        (claims.exp ?? 0) * 1000 > Date.now()
      );
    } catch {
      return false;
    }
  };
  const server = createServer({ key: tls.key, cert: tls.cert }, (req, res) => {
    const url = new URL(req.url ?? '/', 'https://entra');
    const reply = (code: number, body: unknown) => {
      res.writeHead(code, { 'content-type': 'application/json; charset=utf-8' });
      res.end(JSON.stringify(body));
    };
    const base = `${origin}/${TENANT}`;
    if (req.method === 'GET' && url.pathname === `/${TENANT}/v2.0/.well-known/openid-configuration`) {
      return reply(200, {
        token_endpoint: `${base}/oauth2/v2.0/token`,
        authorization_endpoint: `${base}/oauth2/v2.0/authorize`,
        device_authorization_endpoint: `${base}/oauth2/v2.0/devicecode`,
        end_session_endpoint: `${base}/oauth2/v2.0/logout`,
        issuer: `${base}/v2.0`,
        jwks_uri: `${base}/discovery/v2.0/keys`,
        response_types_supported: ['code', 'id_token', 'code id_token', 'id_token token'],
        token_endpoint_auth_methods_supported: ['client_secret_post', 'private_key_jwt', 'client_secret_basic'],
        tenant_region_scope: 'EU',
      });
    }
    if (req.method === 'POST' && url.pathname === `/${TENANT}/oauth2/v2.0/token`) {
      const parts: Buffer[] = [];
      req.on('data', (b: Buffer) => parts.push(b));
      req.on('end', () => {
        const form = new URLSearchParams(Buffer.concat(parts).toString('utf8'));
        if (form.get('grant_type') !== 'client_credentials') {
          return reply(400, { error: 'unsupported_grant_type', error_codes: [70003] });
        }
        const jwtBearer =
          form.get('client_assertion_type') === 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
        const federated = jwtBearer && form.get('client_assertion') === assertion;
        const signed = jwtBearer && signedByApp(form.get('client_assertion') ?? '', `${base}/oauth2/v2.0/token`);
        if (form.get('client_id') !== CLIENT || (form.get('client_secret') !== secret && !federated && !signed)) {
          return reply(401, {
            error: 'invalid_client',
            error_description: `AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '${form.get('client_id')}'.`,
            error_codes: [7000215],
          });
        }
        const scope = (form.get('scope') ?? '').split(' ').find((s) => s.endsWith('/.default')) ?? '';
        fetches++;
        reply(200, {
          token_type: 'Bearer',
          expires_in: 3599,
          ext_expires_in: 3599,
          access_token: mintEntraToken(scope.replace(/\/\.default$/, ''), 3599, key),
        });
      });
      return;
    }
    unknown.push(`${req.method} ${url.pathname}`);
    reply(404, { error: 'not_found' });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  origin = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  onCleanup(() => {
    server.closeAllConnections();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return {
    origin,
    caFile: tls.caFile,
    secret,
    assertion,
    certificateFile,
    tokenFetches: () => fetches,
    issued: (token, resource) => verifyEntraToken(token, resource, key),
    unknown,
  };
}
