import type Dockerode from 'dockerode';
import { LiftoffError } from '@liftoff/core';
import { registryHost, splitImage, type RegistryCredentials } from '../docker/credentials.js';
import { followProgress } from '../docker/progress.js';
import type { Registry } from './types.js';

const MANIFEST_TYPES = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.docker.distribution.manifest.v2+json',
].join(', ');

export class RegistryError extends LiftoffError {
  constructor(message: string) {
    super('RUNNER_FAILED', message);
  }
}

/**
 * Any registry speaking the OCI distribution API (`builder.destination`). Pushes go through the engine; the
 * existence check talks to the registry directly. Hand-written on purpose: it is two HTTP calls (the manifest HEAD
 * and, for token-based registries, the token fetch), and the npm registry clients for it are unmaintained.
 */
export class OciRegistry implements Registry {
  private readonly host: string;

  constructor(
    private readonly docker: Dockerode,
    readonly repository: string,
    private readonly credentials: RegistryCredentials,
    private readonly fetchImpl: typeof fetch = fetch,
    /** What to fix when the registry refuses the agent's login (cloud registries: the IAM permissions). */
    private readonly authHint = `check builder.credentials or ~/.docker/config.json for the registry`,
  ) {
    const host = registryHost(repository);
    if (!host)
      throw new RegistryError(
        `builder.destination "${repository}" must start with a registry host, e.g. registry.example.com/team/jobs.`,
      );
    this.host = host;
  }

  private baseUrl(): string {
    // Like docker, speak plain HTTP only to registries on this machine.
    const local = /^(localhost|127\.\d+\.\d+\.\d+)(:\d+)?$/.test(this.host);
    return `${local ? 'http' : 'https'}://${this.host}`;
  }

  async imageExists(image: string): Promise<boolean> {
    const { repository, tag } = splitImage(image);
    const name = repository.slice(this.host.length + 1);
    const url = `${this.baseUrl()}/v2/${name}/manifests/${tag}`;
    let res = await this.fetchImpl(url, { method: 'HEAD', headers: { accept: MANIFEST_TYPES } });
    if (res.status === 401) {
      const auth = await this.authorization(res.headers.get('www-authenticate') ?? '', name);
      res = await this.fetchImpl(url, { method: 'HEAD', headers: { accept: MANIFEST_TYPES, authorization: auth } });
    }
    if (res.status === 200) return true;
    if (res.status === 404) return false;
    if (res.status === 401 || res.status === 403) {
      throw new RegistryError(`Registry ${this.host} refused the credentials (HTTP ${res.status}); ${this.authHint}.`);
    }
    throw new RegistryError(`Registry ${this.host} answered HTTP ${res.status} when asked for ${image}.`);
  }

  private async authorization(challenge: string, name: string): Promise<string> {
    const creds = await this.credentials.get(this.host);
    const basic = creds ? `Basic ${Buffer.from(`${creds.username}:${creds.password}`).toString('base64')}` : undefined;
    if (/^basic/i.test(challenge)) {
      if (!basic)
        throw new RegistryError(
          `Registry ${this.host} needs credentials; set builder.credentials or log in with docker.`,
        );
      return basic;
    }
    const params: Record<string, string> = {};
    for (const m of challenge.matchAll(/(\w+)="([^"]*)"/g)) if (m[1] && m[2] !== undefined) params[m[1]] = m[2];
    if (!/^bearer/i.test(challenge) || !params.realm)
      throw new RegistryError(`Registry ${this.host} sent an unknown auth challenge.`);
    const tokenUrl = new URL(params.realm);
    if (params.service) tokenUrl.searchParams.set('service', params.service);
    tokenUrl.searchParams.set('scope', `repository:${name}:pull`);
    const res = await this.fetchImpl(tokenUrl, { headers: basic ? { authorization: basic } : {} });
    if (!res.ok)
      throw new RegistryError(
        `Registry ${this.host} refused the credentials (token HTTP ${res.status}); ${this.authHint}.`,
      );
    const body = (await res.json()) as { token?: string; access_token?: string };
    return `Bearer ${body.token ?? body.access_token ?? ''}`;
  }

  async publish(image: string, onLog: (text: string) => void): Promise<void> {
    try {
      const auth = await this.credentials.authFor(image);
      const stream = await this.docker.getImage(image).push(auth ? { authconfig: auth } : {});
      await followProgress(this.docker, stream, onLog);
    } catch (e) {
      throw new RegistryError(`Pushing ${image} to registry ${this.host} failed: ${(e as Error).message}`);
    }
  }
}
