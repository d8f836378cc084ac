import type { AuthConfig } from 'dockerode';

export interface RegistryLogin {
  username: string;
  password: string;
}

/** Fetches a current login; called at every use, so it caches and refreshes by itself (ECR tokens last 12 h). */
export type RegistryLoginProvider = () => Promise<RegistryLogin>;

/**
 * Username/password for registries, by registry host. Built by the CLI from the agent config and docker's
 * config.json. With `onlyHosts` (the agent passes its configured registries), logins for any other host are dropped
 * as they are added: a job's image from another registry is then pulled without credentials, so a job cannot use
 * the agent's logins to run images it has no access to. Cloud registries add a provider for their host instead of a
 * fixed login (`setProvider`): every push, pull and pull secret then asks it for a current one.
 */
export class RegistryCredentials {
  private readonly byHost = new Map<string, RegistryLogin>();
  private readonly providers = new Map<string, RegistryLoginProvider>();
  private readonly onlyHosts: Set<string> | undefined;

  constructor(onlyHosts?: readonly string[]) {
    this.onlyHosts = onlyHosts ? new Set(onlyHosts.map(normalizeHost)) : undefined;
  }

  set(host: string, username: string, password: string): void {
    const h = normalizeHost(host);
    if (this.onlyHosts && !this.onlyHosts.has(h)) return;
    this.byHost.set(h, { username, password });
  }

  /** Adds the `auths` of a docker config.json (the `auth` field is base64 of "user:password"). */
  addDockerConfig(config: unknown): void {
    const auths = (config as { auths?: Record<string, { auth?: string; username?: string; password?: string }> } | null)
      ?.auths;
    for (const [host, entry] of Object.entries(auths ?? {})) {
      if (entry.username && entry.password) this.set(host, entry.username, entry.password);
      else if (entry.auth) {
        const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
        const colon = decoded.indexOf(':');
        if (colon > 0) this.set(host, decoded.slice(0, colon), decoded.slice(colon + 1));
      }
    }
  }

  /**
   * The agent's own cloud registry (its host learnt at start, e.g. from ECR's token answer): kept whatever
   * `onlyHosts` says, since the agent itself configured it, and winning over a fixed login for the same host.
   */
  setProvider(host: string, provider: RegistryLoginProvider): void {
    this.providers.set(normalizeHost(host), provider);
  }

  /** A current login for `host`: its provider's (fetched or cached by it), else the fixed one. */
  async get(host: string): Promise<RegistryLogin | undefined> {
    const h = normalizeHost(host);
    const provider = this.providers.get(h);
    return provider ? provider() : this.byHost.get(h);
  }

  /** The engine's auth config for pulling or pushing `image`, if its registry has credentials. */
  async authFor(image: string): Promise<AuthConfig | undefined> {
    const host = registryHost(image);
    const c = host ? await this.get(host) : undefined;
    return c ? { username: c.username, password: c.password, serveraddress: host as string } : undefined;
  }
}

const normalizeHost = (h: string): string =>
  h
    .replace(/^https?:\/\//, '')
    .replace(/\/.*$/, '')
    .toLowerCase();

/** "127.0.0.1:5000/team/app:tag" → "127.0.0.1:5000"; undefined for Docker Hub short names. */
export function registryHost(image: string): string | undefined {
  const first = image.split('/')[0] ?? '';
  if (!image.includes('/') || !(first.includes('.') || first.includes(':') || first === 'localhost')) return undefined;
  return first;
}

/** Splits "host/repo/name:tag" into repository and tag (digest refs keep the digest as the "tag"). */
export function splitImage(image: string): { repository: string; tag: string } {
  const at = image.indexOf('@');
  if (at >= 0) return { repository: image.slice(0, at), tag: image.slice(at + 1) };
  const slash = image.lastIndexOf('/');
  const colon = image.lastIndexOf(':');
  if (colon > slash) return { repository: image.slice(0, colon), tag: image.slice(colon + 1) };
  return { repository: image, tag: 'latest' };
}
