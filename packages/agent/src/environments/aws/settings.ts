import { homedir } from 'node:os';
import { join } from 'node:path';
import { AwsEnvironmentError, type AgentConfigFile, type Env } from '@liftoff/core';
import type { AwsClientSettings, AwsService } from '../types.js';

/** The suffix of `AWS_ENDPOINT_URL_<SERVICE>` per service: AWS's service ids, upper-cased, spaces as `_`. */
export const ENDPOINT_VARIABLES: Readonly<Record<AwsService, string>> = {
  sts: 'AWS_ENDPOINT_URL_STS',
  ecr: 'AWS_ENDPOINT_URL_ECR',
  s3: 'AWS_ENDPOINT_URL_S3',
  sagemaker: 'AWS_ENDPOINT_URL_SAGEMAKER',
  logs: 'AWS_ENDPOINT_URL_CLOUDWATCH_LOGS',
};

type AwsEnvironment = NonNullable<AgentConfigFile['environment']> & { type: 'aws' };

/**
 * The AWS settings of an agent whose config has `environment: {type: aws}`, built once by the CLI from the agent's
 * own environment (`env`, passed in: nothing here reads process.env).
 *
 * - region: the config's, else AWS_REGION, else AWS_DEFAULT_REGION (which boto3 reads and the JS SDK does not), else
 *   the `region` of the profile (AWS_PROFILE, else `default`) in the shared config file.
 * - credentials: ONE `fromNodeProviderChain()` (env, SSO, ini profile, credential_process, web identity / IRSA,
 *   ECS/EKS container endpoint, IMDS). It memoizes what it found and fetches again shortly before the expiry, and
 *   every client gets this same provider, so a refresh happens once for the agent, not once per client (W&B freezes
 *   the credentials it found at start, and temporary ones then expire under a long-running agent). The profile and
 *   the shared files' paths come from `env`; the chain's other links (static keys, the container endpoint, IMDS,
 *   web identity) read the variables of the process itself, which is why the CLI passes its own environment here.
 * - endpoints: AWS's standard `AWS_ENDPOINT_URL_<SERVICE>`, else `AWS_ENDPOINT_URL`, unless
 *   AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true (VPC endpoints, local test servers).
 *
 * The SDK is loaded here by dynamic import: only agents whose config uses AWS pay for it.
 */
export async function awsClientSettings(config: AwsEnvironment, env: Env): Promise<AwsClientSettings> {
  const home = env.HOME ?? homedir();
  const profile = env.AWS_PROFILE ?? 'default';
  const configFilepath = env.AWS_CONFIG_FILE ?? join(home, '.aws', 'config');
  const filepath = env.AWS_SHARED_CREDENTIALS_FILE ?? join(home, '.aws', 'credentials');
  const region =
    nonEmpty(config.region) ??
    nonEmpty(env.AWS_REGION) ??
    nonEmpty(env.AWS_DEFAULT_REGION) ??
    (await profileRegion(profile, configFilepath, filepath));
  if (!region) {
    throw new AwsEnvironmentError(
      `The aws environment has no region: set environment.region in the agent config (or AWS_REGION for the agent, or region in profile "${profile}" of ${configFilepath}).`,
    );
  }
  if (!/^[a-z0-9-]{1,64}$/.test(region)) {
    throw new AwsEnvironmentError(
      `The aws environment's region "${region}" is not an AWS region name (like us-east-1): fix environment.region or AWS_REGION.`,
    );
  }
  const { fromNodeProviderChain } = await import('@aws-sdk/credential-providers');
  const credentials = fromNodeProviderChain({
    ...(env.AWS_PROFILE ? { profile: env.AWS_PROFILE } : {}),
    filepath,
    configFilepath,
  });
  return { region, credentials, endpoints: endpointsFrom(env) };
}

/** `AWS_ENDPOINT_URL_<SERVICE>` over `AWS_ENDPOINT_URL`; each must be an http(s) URL. */
export function endpointsFrom(env: Env): AwsClientSettings['endpoints'] {
  if (env.AWS_IGNORE_CONFIGURED_ENDPOINT_URLS?.toLowerCase() === 'true') return {};
  const endpoints: AwsClientSettings['endpoints'] = {};
  for (const [service, name] of Object.entries(ENDPOINT_VARIABLES) as Array<[AwsService, string]>) {
    const [variable, value] = nonEmpty(env[name]) ? [name, env[name]] : ['AWS_ENDPOINT_URL', env.AWS_ENDPOINT_URL];
    if (!nonEmpty(value)) continue;
    endpoints[service] = checkedUrl(variable, value as string);
  }
  return endpoints;
}

function checkedUrl(variable: string, value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new AwsEnvironmentError(`${variable}="${value}" is not a URL: set it to http(s)://host[:port] or unset it.`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new AwsEnvironmentError(`${variable}="${value}" must be an http:// or https:// URL.`);
  }
  return value;
}

/** The client options of one service: the shared region and provider, and the service's endpoint override. */
export function awsClientConfig(
  settings: AwsClientSettings,
  service: AwsService,
): { region: string; credentials: AwsClientSettings['credentials']; endpoint?: string } {
  const endpoint = settings.endpoints[service];
  return { region: settings.region, credentials: settings.credentials, ...(endpoint ? { endpoint } : {}) };
}

async function profileRegion(profile: string, configFilepath: string, filepath: string): Promise<string | undefined> {
  const { loadSharedConfigFiles } = await import('@smithy/core/config');
  // Missing files are no error (the loader returns no profiles); the config file's region wins, as in the CLI.
  const files = await loadSharedConfigFiles({ configFilepath, filepath, ignoreCache: true });
  return nonEmpty(files.configFile[profile]?.region) ?? nonEmpty(files.credentialsFile[profile]?.region);
}

const nonEmpty = (v: string | null | undefined): string | undefined => (v ? v : undefined);
