import { spawn, spawnSync } from 'node:child_process';
import { createPrivateKey, createPublicKey, randomUUID, sign, verify, X509Certificate } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { createServer as createHttpServer, request, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { createServer as createNetServer, type AddressInfo, type Server } from 'node:net';
import { join } from 'node:path';
import { selfSignedCert } from '../kube/index.js';
import { onCleanup, Proc, sleep, tempDir } from '../procs.js';

export const ACR_USERNAME = '00000000-0000-0000-0000-000000000000';

/**
 * Whether Distribution's `docker-registry` (Debian, installed by scripts/services/docker.sh) is there. Missing: the
 * suite skips with a loud reason, unless LIFTOFF_REQUIRE_SERVICES=1, where that is a failure.
 */
export function registryAvailable(): boolean {
  if (spawnSync('docker-registry', ['--version'], { stdio: 'ignore' }).status === 0) return true;
  const reason = 'docker-registry (Distribution) is not installed: run scripts/services/docker.sh';
  if (process.env.LIFTOFF_REQUIRE_SERVICES === '1') throw new Error(`${reason} (LIFTOFF_REQUIRE_SERVICES=1)`);
  console.warn(`\n*** SKIPPING the fake ACR suites: ${reason} ***\n`);
  return false;
}
const ISSUER = 'fake-acr';

/**
 * A fake Azure Container Registry: a real Distribution registry (`docker-registry`, Debian) in token-auth mode, with
 * ACR's token service in front of it on the same host, as ACR serves both:
 * - `POST /oauth2/exchange` (grant_type=access_token, service, access_token[, tenant]): the Entra token must be one
 *   `acceptAad` accepts (the managed-identity fake's, for containerregistry.azure.net); answers `{refresh_token}`, an
 *   RS256 JWT living `refreshTtlSeconds`;
 * - `/oauth2/token`: the refresh token as `POST grant_type=refresh_token` (ACR's SDKs) or as Basic
 *   `00000000-0000-0000-0000-000000000000:<refresh token>` on `GET ?service&scope` (docker); an expired, unknown or
 *   forged refresh token is refused with 401 as ACR does; answers `{access_token}`, a JWT with an `x5c` header
 *   signed by the key whose certificate the registry trusts (its `rootcertbundle`), granting what `scope` asks.
 * Everything else is proxied to the registry, plus one ACR route: `GET /acr/v1/_catalog` (what
 * @azure/container-registry lists repositories with) is the registry's `/v2/_catalog`, whose answer has ACR's shape.
 * The same handler listens on plain HTTP (docker and the agent: a loopback registry, as docker allows) and on HTTPS
 * with a test certificate (the Azure SDK sends bearer tokens over https only).
 */
export interface FakeAcr {
  /** `127.0.0.1:<port>`: the registry host (HTTP), also its token `service`. */
  host: string;
  /** `https://127.0.0.1:<port>`: the same registry over HTTPS, for the Azure SDK. */
  httpsUrl: string;
  /** PEM of the HTTPS listener's certificate (its own CA). */
  ca: string;
  /** Lifetime of the refresh tokens minted from now on. */
  refreshTtlSeconds: number;
  /** Exchanges answered with a refresh token. */
  exchanges(): number;
  /** Requests the token service refused, with why. */
  refused: string[];
  /** The `tenant` of each answered exchange ('' when none was sent). */
  tenants: string[];
}

async function freePort(): Promise<number> {
  const srv: Server = createNetServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const { port } = srv.address() as AddressInfo;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

export async function startFakeAcr(opts: {
  acceptAad: (token: string) => boolean;
  refreshTtlSeconds?: number;
}): Promise<FakeAcr> {
  const dir = tempDir('liftoff-fake-acr-');
  const tls = await selfSignedCert(join(dir, 'tls'));
  const key = createPrivateKey(tls.key);
  const publicKey = createPublicKey(tls.cert);
  const x5c = new X509Certificate(tls.cert).raw.toString('base64');
  const [port, registryPort] = await Promise.all([freePort(), freePort()]);
  const host = `127.0.0.1:${port}`;
  let exchanges = 0;
  const fake = {
    refreshTtlSeconds: opts.refreshTtlSeconds ?? 3 * 3600,
    exchanges: () => exchanges,
    refused: [] as string[],
    tenants: [] as string[],
  };

  // Hand-written JWTs (node:crypto): the registry needs RS256 with an x5c chain, a few lines, no library needed.
  const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const jwt = (header: Record<string, unknown>, claims: Record<string, unknown>) => {
    const head = b64({ typ: 'JWT', alg: 'RS256', ...header });
    const body = b64(claims);
    return `${head}.${body}.${sign('sha256', Buffer.from(`${head}.${body}`), key).toString('base64url')}`;
  };
  const now = () => Math.floor(Date.now() / 1000);
  /** The claims of a refresh token minted here and not expired; else why not. */
  const refreshClaims = (token: string): { ok: true } | { ok: false; why: string } => {
    const [head = '', body = '', sig = ''] = token.split('.');
    if (!verify('sha256', Buffer.from(`${head}.${body}`), publicKey, Buffer.from(sig, 'base64url'))) {
      return { ok: false, why: 'not a refresh token of this registry' };
    }
    const claims = JSON.parse(Buffer.from(body, 'base64url').toString('utf8')) as {
      exp?: number;
      grant_type?: string;
      aud?: string;
    };
    if (claims.grant_type !== 'refresh_token' || claims.aud !== host) return { ok: false, why: 'not a refresh token' };
    if ((claims.exp ?? 0) <= now()) return { ok: false, why: 'refresh token expired' };
    return { ok: true };
  };
  const acrError = (res: ServerResponse, status: number, message: string) => {
    fake.refused.push(message);
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ errors: [{ code: status === 401 ? 'UNAUTHORIZED' : 'BAD_REQUEST', message }] }));
  };
  const json = (res: ServerResponse, body: unknown) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };
  const form = async (req: IncomingMessage): Promise<URLSearchParams> => {
    const parts: Buffer[] = [];
    for await (const p of req) parts.push(p as Buffer);
    return new URLSearchParams(Buffer.concat(parts).toString('utf8'));
  };
  const access = (scopes: string[]) =>
    scopes.flatMap((s) => {
      const m = /^(repository|registry):(.+):([^:]+)$/.exec(s);
      return m ? [{ type: m[1], name: m[2], actions: (m[3] as string).split(',') }] : [];
    });

  const handler = async (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', `http://${host}`);
    if (url.pathname === '/oauth2/exchange') {
      if (req.method !== 'POST') return acrError(res, 405, 'POST only');
      const f = await form(req);
      if (f.get('grant_type') !== 'access_token') return acrError(res, 400, 'grant_type must be access_token');
      if (f.get('service') !== host) return acrError(res, 400, `service must be ${host}`);
      if (!opts.acceptAad(f.get('access_token') ?? '')) return acrError(res, 401, 'the AAD access token is not valid');
      exchanges++;
      fake.tenants.push(f.get('tenant') ?? '');
      const t = now();
      return json(res, {
        refresh_token: jwt(
          {},
          {
            jti: randomUUID(),
            sub: ACR_USERNAME,
            aud: host,
            iss: ISSUER,
            iat: t,
            nbf: t,
            exp: t + fake.refreshTtlSeconds,
            grant_type: 'refresh_token',
            tenant: f.get('tenant') ?? undefined,
          },
        ),
      });
    }
    if (url.pathname === '/oauth2/token') {
      let refresh = '';
      let scopes: string[] = [];
      let service = '';
      if (req.method === 'POST') {
        const f = await form(req);
        if (f.get('grant_type') === 'refresh_token') refresh = f.get('refresh_token') ?? '';
        else if (f.get('grant_type') === 'password' && f.get('username') === ACR_USERNAME)
          refresh = f.get('password') ?? '';
        scopes = f.getAll('scope').flatMap((s) => s.split(' '));
        service = f.get('service') ?? '';
      } else {
        const basic = /^Basic (.+)$/i.exec(req.headers.authorization ?? '')?.[1];
        const [user, ...rest] = Buffer.from(basic ?? '', 'base64')
          .toString('utf8')
          .split(':');
        if (user === ACR_USERNAME) refresh = rest.join(':');
        scopes = url.searchParams.getAll('scope').flatMap((s) => s.split(' '));
        service = url.searchParams.get('service') ?? '';
      }
      if (service !== host) return acrError(res, 400, `service must be ${host}`);
      if (!refresh) return acrError(res, 401, `no refresh token (user ${ACR_USERNAME})`);
      const checked = refreshClaims(refresh);
      if (!checked.ok) return acrError(res, 401, checked.why);
      const t = now();
      return json(res, {
        access_token: jwt(
          { x5c: [x5c] },
          {
            jti: randomUUID(),
            sub: ACR_USERNAME,
            aud: host,
            iss: ISSUER,
            iat: t,
            nbf: t - 5,
            exp: t + 300,
            access: access(scopes),
          },
        ),
      });
    }
    // Everything else is the registry's; ACR's repository listing is its catalog.
    const path = url.pathname === '/acr/v1/_catalog' ? `/v2/_catalog${url.search}` : (req.url ?? '/');
    const upstream = request(
      { host: '127.0.0.1', port: registryPort, method: req.method, path, headers: req.headers },
      (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      },
    );
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  };
  const wrap = (req: IncomingMessage, res: ServerResponse) =>
    void handler(req, res).catch(() => (res.headersSent ? res.destroy() : acrError(res, 500, 'fake ACR failed')));
  const http = createHttpServer(wrap);
  const https = createHttpsServer({ key: tls.key, cert: tls.cert }, wrap);
  await new Promise<void>((resolve) => http.listen(port, '127.0.0.1', resolve));
  await new Promise<void>((resolve) => https.listen(0, '127.0.0.1', resolve));
  onCleanup(async () => {
    for (const s of [http, https]) {
      s.closeAllConnections();
      await new Promise<void>((resolve) => s.close(() => resolve()));
    }
  });

  writeFileSync(
    join(dir, 'config.yml'),
    [
      'version: 0.1',
      'log: { level: error }',
      `storage: { filesystem: { rootdirectory: ${join(dir, 'data')} }, delete: { enabled: true } }`,
      `http: { addr: 127.0.0.1:${registryPort}, relativeurls: true }`,
      `auth: { token: { realm: "http://${host}/oauth2/token", service: "${host}", issuer: ${ISSUER}, rootcertbundle: ${tls.caFile} } }`,
      '',
    ].join('\n'),
  );
  const proc = new Proc(
    spawn('docker-registry', ['serve', join(dir, 'config.yml')], { stdio: ['ignore', 'pipe', 'pipe'] }),
  );
  for (let i = 0; i < 100; i++) {
    const res = await fetch(`http://${host}/v2/`).catch(() => undefined);
    if (res?.status === 401) {
      return Object.assign(fake, {
        host,
        httpsUrl: `https://127.0.0.1:${(https.address() as AddressInfo).port}`,
        ca: tls.cert,
      });
    }
    await sleep(100);
  }
  proc.kill('SIGKILL');
  throw new Error(`registry did not start:\n${proc.output}`);
}

/**
 * A refresh token for `acr` as an administrator gets one (`az acr login --expose-token`): a managed-identity token of
 * the fake identity endpoint for ACR's audience, exchanged at /oauth2/exchange. Docker logs in with it as
 * ACR_USERNAME, as the agent does.
 */
export async function acrRefreshToken(acr: FakeAcr, identity: { url: string; env: Record<string, string> }) {
  const aad = await fetch(`${identity.url}?api-version=2019-08-01&resource=https://containerregistry.azure.net`, {
    headers: { 'x-identity-header': identity.env.IDENTITY_HEADER ?? '' },
  }).then((r) => r.json() as Promise<{ access_token: string }>);
  const login = await fetch(`http://${acr.host}/oauth2/exchange`, {
    method: 'POST',
    body: new URLSearchParams({ grant_type: 'access_token', service: acr.host, access_token: aad.access_token }),
  }).then((r) => r.json() as Promise<{ refresh_token: string }>);
  return login.refresh_token;
}
