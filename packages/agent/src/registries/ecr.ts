import type { ECRClient } from '@aws-sdk/client-ecr';
import { AwsEnvironmentError, describeCause, type AgentConfigFile } from '@liftoff/core';
import type { RegistryLogin } from '../docker/credentials.js';
import { awsClientConfig } from '../environments/aws/settings.js';
import { OciRegistry } from './oci.js';
import type { Registry } from './types.js';
import type { RegistryDeps } from './index.js';

/** `<account>.dkr.ecr[-fips].<region>.amazonaws.com[.cn]/<repository>` (the form AWS prints for a repository). */
const ECR_URI = /^(\d{12})\.dkr\.ecr(?:-fips)?\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?\/(.+)$/;
/** ECR's repository name rule (CreateRepository's `repositoryName`): 2–256 chars of lower-case path components. */
const REPOSITORY = /^(?=.{2,256}$)(?:[a-z0-9]+(?:[._-][a-z0-9]+)*\/)*[a-z0-9]+(?:[._-][a-z0-9]+)*$/;
/** A token is fetched anew this long before ECR says it expires (they live 12 h), so a push never starts stale. */
export const REFRESH_BEFORE_MS = 10 * 60_000;

export interface EcrUri {
  account: string;
  region: string;
  repository: string;
  host: string;
}

export function parseEcrUri(uri: string): EcrUri | undefined {
  const bare = uri.replace(/^https?:\/\//, '').replace(/\/+$/, '');
  const m = ECR_URI.exec(bare);
  if (!m || !REPOSITORY.test(m[3] ?? '')) return undefined;
  return {
    account: m[1] as string,
    region: m[2] as string,
    repository: m[3] as string,
    host: bare.split('/')[0] ?? '',
  };
}

/**
 * ECR push and pull logins from GetAuthorizationToken: `AWS:<password>`, cached until shortly before the token's
 * `expiresAt`, one fetch at a time. A token whose `expiresAt` has already passed when it arrives (a skewed clock) is
 * used for the call that fetched it and not kept.
 */
export class EcrLogins {
  private cached: { login: RegistryLogin & { proxyEndpoint: string }; until: number } | undefined;
  private inflight: Promise<RegistryLogin & { proxyEndpoint: string }> | undefined;

  constructor(
    private readonly client: ECRClient,
    /** The account whose registry is used: another account's needs its id (cross-account pushes). */
    private readonly registryId: string | undefined,
    private readonly now: () => number = Date.now,
  ) {}

  async login(): Promise<RegistryLogin & { proxyEndpoint: string }> {
    if (this.cached && this.now() < this.cached.until) return this.cached.login;
    this.inflight ??= this.fetch().finally(() => {
      this.inflight = undefined;
    });
    return this.inflight;
  }

  private async fetch(): Promise<RegistryLogin & { proxyEndpoint: string }> {
    const { GetAuthorizationTokenCommand } = await import('@aws-sdk/client-ecr');
    let data;
    try {
      const out = await this.client.send(
        new GetAuthorizationTokenCommand(this.registryId ? { registryIds: [this.registryId] } : {}),
      );
      data = out.authorizationData?.[0];
    } catch (e) {
      throw new AwsEnvironmentError(
        `ECR GetAuthorizationToken failed (${describeCause(e)}); the agent's AWS principal needs ecr:GetAuthorizationToken.`,
        e,
      );
    }
    const decoded = Buffer.from(data?.authorizationToken ?? '', 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon <= 0 || !data?.proxyEndpoint) {
      throw new AwsEnvironmentError('ECR GetAuthorizationToken answered without a usable token or proxyEndpoint.');
    }
    const login = {
      username: decoded.slice(0, colon),
      password: decoded.slice(colon + 1),
      proxyEndpoint: data.proxyEndpoint,
    };
    const expires = data.expiresAt?.getTime() ?? 0;
    this.cached = expires - REFRESH_BEFORE_MS > this.now() ? { login, until: expires - REFRESH_BEFORE_MS } : undefined;
    return login;
  }
}

type EcrConfig = NonNullable<AgentConfigFile['registry']>;

/**
 * `registry: {type: ecr}`. The target is, in this order: `uri` (or `builder.destination`) as
 * `<account>.dkr.ecr.<region>.amazonaws.com/<repo>`, which may be another account's (its id goes to
 * GetAuthorizationToken and DescribeRepositories); or `repository`, in the agent's own account (from STS) and region.
 * With `repository` the registry host is the token's `proxyEndpoint` (what `docker login` is given; for AWS it is
 * `<account>.dkr.ecr.<region>.amazonaws.com`), so a registry fronted elsewhere, such as a test registry, is used as
 * ECR names it. At start the token is fetched once and the repository is looked up, so a missing permission or
 * repository stops the agent rather than the first build. Pushes, pulls, pull secrets and the existence check (the
 * OCI manifest HEAD of OciRegistry) all ask the token cache, so they always get a current token.
 */
export async function createEcrRegistry(cfg: EcrConfig, deps: RegistryDeps): Promise<Registry> {
  const { aws, awsIdentity } = deps;
  if (!aws || !awsIdentity) {
    throw new AwsEnvironmentError('registry type ecr needs environment: {type: aws} in the agent config.');
  }
  const uriText = cfg.uri ?? (cfg.repository && ECR_URI.test(cfg.repository) ? cfg.repository : deps.destination);
  const fromUri = uriText ? parseEcrUri(uriText) : undefined;
  if (uriText && !fromUri) {
    throw new AwsEnvironmentError(
      `"${uriText}" (${cfg.uri ? 'registry.uri' : 'builder.destination'}) is not an ECR repository URI: write <account>.dkr.ecr.<region>.amazonaws.com/<repository>, or give registry.repository alone.`,
    );
  }
  const repository = fromUri?.repository ?? cfg.repository ?? '';
  if (!REPOSITORY.test(repository)) {
    throw new AwsEnvironmentError(
      `registry.repository "${repository}" is not an ECR repository name (2-256 lower-case letters, digits, "._-" and "/").`,
    );
  }
  const region = fromUri?.region ?? aws.region;
  const { ECRClient, DescribeRepositoriesCommand } = await import('@aws-sdk/client-ecr');
  const client = new ECRClient({ ...awsClientConfig(aws, 'ecr'), region });
  const registryId = fromUri && fromUri.account !== awsIdentity.account ? fromUri.account : undefined;
  const logins = new EcrLogins(client, registryId);
  const first = await logins.login();
  const host = fromUri?.host ?? first.proxyEndpoint.replace(/^https?:\/\//, '').replace(/\/.*$/, '');
  try {
    await client.send(
      new DescribeRepositoriesCommand({ repositoryNames: [repository], ...(registryId ? { registryId } : {}) }),
    );
  } catch (e) {
    const account = fromUri?.account ?? awsIdentity.account;
    if ((e as { name?: string }).name === 'RepositoryNotFoundException') {
      throw new AwsEnvironmentError(
        `ECR repository "${repository}" does not exist in account ${account}, region ${region}: create it (aws ecr create-repository --repository-name ${repository} --region ${region}) or fix the registry config.`,
        e,
      );
    }
    throw new AwsEnvironmentError(
      `Could not look up ECR repository "${repository}" (${describeCause(e)}); the agent's AWS principal needs ecr:DescribeRepositories on it.`,
      e,
    );
  }
  deps.credentials.setProvider(host, () => logins.login());
  return new OciRegistry(
    deps.docker,
    `${host}/${repository}`,
    deps.credentials,
    fetch,
    'the agent principal needs ecr:BatchGetImage, ecr:BatchCheckLayerAvailability, ecr:InitiateLayerUpload, ecr:UploadLayerPart, ecr:CompleteLayerUpload and ecr:PutImage on the repository',
  );
}
