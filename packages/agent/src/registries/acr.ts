import { AzureEnvironmentError, describeCause, type AgentConfigFile } from '@liftoff/core';
import type { AzureClientSettings } from '../environments/types.js';
import { tokenClaims } from '../environments/azure/settings.js';
import { OciRegistry } from './oci.js';
import type { Registry } from './types.js';
import type { RegistryDeps } from './index.js';

/** ACR's registry hosts: `<name>.azurecr.io`, a name of 5-50 lower-case letters and digits. */
const ACR_HOST = /^[a-z0-9]{5,50}\.azurecr\.io$/;
/**
 * A registry on this machine (`127.x.x.x:<port>`, `localhost:<port>`): a test registry. It gets the agent's Entra
 * token like an azurecr.io host; any other host is refused, so a token never goes to a stranger.
 */
const LOOPBACK_HOST = /^(?:localhost|127\.\d+\.\d+\.\d+):\d+$/;
/** Repository names: OCI path components (lower-case alnum separated by . _ -), joined by "/" (nested allowed). */
const REPOSITORY = /^[a-z0-9]+(?:[._-][a-z0-9]+)*(?:\/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$/;
/** The scope ACR's own SDK asks Entra for (`@azure/container-registry`'s default audience). */
export const ACR_SCOPE = 'https://containerregistry.azure.net/.default';
/** The user name ACR expects with a refresh token (the `az acr login --expose-token` answer's). */
export const ACR_USERNAME = '00000000-0000-0000-0000-000000000000';
/** A refresh token is exchanged again this long before its `exp` (ACR's lifetime is about 3 hours). */
const RENEW_BEFORE_MS = 15 * 60_000;
/** Without a readable `exp`, a refresh token is used this long only. */
const UNKNOWN_LIFETIME_MS = 15 * 60_000;

/** `<name>.azurecr.io/<repository>` (or a loopback host) → host and repository. */
export function parseAcrUri(uri: string): { host: string; repository: string } | undefined {
  const bare = uri.replace(/^https?:\/\//, '').replace(/\/+$/, '');
  const slash = bare.indexOf('/');
  if (slash < 0) return undefined;
  const host = bare.slice(0, slash);
  const repository = bare.slice(slash + 1);
  if (!ACR_HOST.test(host) && !LOOPBACK_HOST.test(host)) return undefined;
  if (!REPOSITORY.test(repository)) return undefined;
  return { host, repository };
}

/**
 * The ACR login, per registry: the agent's Entra token for ACR_SCOPE, exchanged at `POST /oauth2/exchange` for an
 * ACR refresh token, which is the docker password of user ACR_USERNAME (Azure/acr docs/AAD-OAuth.md). Cached until
 * RENEW_BEFORE_MS before the refresh token's `exp`, read from its JWT (ACR's lifetime is not documented as a
 * constant); callers that arrive together share one exchange. Hand-written on purpose: it is one form POST, and
 * @azure/container-registry has no API that returns the refresh token.
 */
export class AcrLogins {
  private cached: { login: { username: string; password: string }; until: number } | undefined;
  private pending: Promise<{ username: string; password: string }> | undefined;

  constructor(
    private readonly azure: AzureClientSettings,
    private readonly host: string,
    private readonly fetchImpl: typeof fetch = fetch,
    private readonly now: () => number = () => Date.now(),
  ) {}

  /** Exchanges so far (tests). */
  exchanges = 0;

  login(): Promise<{ username: string; password: string }> {
    if (this.cached && this.cached.until > this.now()) return Promise.resolve(this.cached.login);
    this.pending ??= this.exchange().finally(() => (this.pending = undefined));
    return this.pending;
  }

  private base(): string {
    // Like docker, plain HTTP only to a registry on this machine.
    return `${LOOPBACK_HOST.test(this.host) ? 'http' : 'https'}://${this.host}`;
  }

  private async exchange(): Promise<{ username: string; password: string }> {
    this.exchanges++;
    let aad: string;
    try {
      aad = (await this.azure.token(ACR_SCOPE)).token;
    } catch (e) {
      throw new AzureEnvironmentError(
        `Could not get an Entra token for ACR ${this.host} (${oneLine(describeCause(e))}); check the agent's Azure credentials.`,
        e,
      );
    }
    const tenant = this.azure.tenantId ?? (tokenClaims(aad).tid as string | undefined);
    const form = new URLSearchParams({ grant_type: 'access_token', service: this.host, access_token: aad });
    if (typeof tenant === 'string') form.set('tenant', tenant);
    let res: Response;
    try {
      res = await this.fetchImpl(`${this.base()}/oauth2/exchange`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: form,
        redirect: 'manual',
      });
    } catch (e) {
      throw new AzureEnvironmentError(
        `Could not reach ACR ${this.host} to log in (${describeCause(e)}); check the registry name and the network.`,
        e,
      );
    }
    const text = await res.text().catch(() => '');
    if (res.status === 401 || res.status === 403) {
      throw new AzureEnvironmentError(
        `ACR ${this.host} refused the agent's Entra token (HTTP ${res.status}: ${text.slice(0, 200)}); assign the agent's principal the AcrPush role on the registry.`,
      );
    }
    let refresh: unknown;
    try {
      refresh = (JSON.parse(text) as { refresh_token?: unknown }).refresh_token;
    } catch {
      refresh = undefined;
    }
    if (!res.ok || typeof refresh !== 'string' || !refresh) {
      throw new AzureEnvironmentError(
        `ACR ${this.host} answered the token exchange with HTTP ${res.status} and no refresh token (${text.slice(0, 200)}).`,
      );
    }
    const exp = tokenClaims(refresh).exp;
    const until = typeof exp === 'number' ? exp * 1000 - RENEW_BEFORE_MS : this.now() + UNKNOWN_LIFETIME_MS;
    const login = { username: ACR_USERNAME, password: refresh };
    this.cached = until > this.now() ? { login, until } : undefined;
    return login;
  }
}

type AcrConfig = NonNullable<AgentConfigFile['registry']>;

/**
 * `registry: {type: acr}`: Azure Container Registry, the piece W&B's docker builder lacks (its ACR class cannot give
 * a username and password, so a docker build cannot push). The target is `uri` (or a `builder.destination` on an
 * azurecr.io host): `<name>.azurecr.io/<repository>`, nested repositories allowed. At start the login is made once,
 * so a missing role stops the agent rather than the first build; pushes, pulls, pull secrets and the existence check
 * (the OCI manifest HEAD, whose bearer challenge ACR's /oauth2/token answers for Basic `0000…:<refresh token>`) all
 * ask the login cache, so they always get a current refresh token.
 */
export async function createAcrRegistry(cfg: AcrConfig, deps: RegistryDeps): Promise<Registry> {
  const { azure } = deps;
  if (!azure)
    throw new AzureEnvironmentError('registry type acr needs environment: {type: azure} in the agent config.');
  const uriText = cfg.uri ?? (cfg.repository?.includes('/') ? cfg.repository : undefined) ?? deps.destination;
  const target = uriText ? parseAcrUri(uriText) : undefined;
  if (!target) {
    throw new AzureEnvironmentError(
      `${uriText ? `"${uriText}"` : 'nothing'} (registry.uri or builder.destination) is not an ACR repository: write <registry>.azurecr.io/<repository> (lower-case; nested repositories like team/app are fine).`,
    );
  }
  const logins = new AcrLogins(azure, target.host);
  await logins.login();
  deps.credentials.setProvider(target.host, () => logins.login());
  return new OciRegistry(
    deps.docker,
    `${target.host}/${target.repository}`,
    deps.credentials,
    fetch,
    `the agent's principal needs the AcrPush role on registry ${target.host}`,
  );
}

const oneLine = (s: string): string => s.replace(/\s*\n\s*/g, ' ').slice(0, 400);
