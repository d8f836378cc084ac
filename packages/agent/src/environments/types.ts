import type { AwsCredentialIdentityProvider } from '@smithy/types';

/** The AWS services an agent talks to; keys of `AwsClientSettings.endpoints`. */
export type AwsService = 'sts' | 'ecr' | 's3' | 'sagemaker' | 'logs';

/**
 * How every AWS client of one agent is built (the agent config's `environment: {type: aws}`). The CLI makes it from
 * the agent's own environment once; plugins receive it and never read `process.env`. One memoized credential
 * provider is shared by all clients, so a refresh before expiry happens once, not per client.
 */
export interface AwsClientSettings {
  region: string;
  credentials: AwsCredentialIdentityProvider;
  /**
   * Per-service endpoint overrides (AWS's standard `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_<SERVICE>` variables, as
   * for VPC endpoints or local test servers); absent services use the SDK's regional default.
   */
  endpoints: Partial<Record<AwsService, string>>;
}

/** The Google Cloud endpoints an agent talks to outside the auth library; keys of `GcpClientSettings.endpoints`. */
export type GcpService = 'storage' | 'iamcredentials' | 'aiplatform' | 'logging';

/**
 * How every Google Cloud call of one agent is made (the agent config's `environment: {type: gcp}`). The CLI makes it
 * from the agent's own environment once; plugins receive it and never read `process.env`. One auth client (ADC)
 * serves every caller, so a token is fetched once per expiry for the whole agent, not once per caller.
 */
export interface GcpClientSettings {
  project: string;
  region: string;
  /** The one `GoogleAuth` (cloud-platform scope): signing (`sign`) and who the credentials are (`getCredentials`). */
  auth: import('google-auth-library').GoogleAuth;
  /** A current access token of `auth` (fetched again shortly before expiry; concurrent callers share one fetch). */
  accessToken(): Promise<string>;
  /** Endpoint overrides (`STORAGE_EMULATOR_HOST`, gcloud's `CLOUDSDK_API_ENDPOINT_OVERRIDES_<API>`); else Google's. */
  endpoints: Partial<Record<GcpService, string>>;
  /**
   * `LIFTOFF_GAR_DOCKER_HOST` (host[:port]): the registry that serves every `<location>-docker.pkg.dev` image name
   * instead (a local mirror, or a test registry). Google's token goes there, so only the agent's operator sets it.
   */
  dockerHost?: string;
}

/** The Azure endpoints an agent talks to outside the identity library; keys of `AzureClientSettings.endpoints`. */
export type AzureService = 'blob';

/** An Entra access token and when it expires (ms since the epoch). */
export interface AzureToken {
  token: string;
  expiresOnTimestamp: number;
}

/**
 * How every Azure call of one agent is made (the agent config's `environment: {type: azure}`). The CLI makes it from
 * the agent's own environment once; plugins receive it and never read `process.env`. One credential chain serves
 * every caller, and `token` caches per scope, so a token is fetched once per expiry for the whole agent.
 */
export interface AzureClientSettings {
  /** The one credential chain (service principal, workload identity, managed identity), for Azure SDK clients. */
  credential: import('@azure/identity').TokenCredential;
  /** The chain's sources in order, as the start-up line and the "no credentials" message name them. */
  sources: string[];
  /** AZURE_TENANT_ID, when given. */
  tenantId?: string;
  /** A current token for `scope` (fetched again shortly before expiry; concurrent callers share one fetch). */
  token(scope: string): Promise<AzureToken>;
  /** LIFTOFF_AZURE_BLOB_ENDPOINT: an origin serving every storage account path-style; else Azure's. */
  endpoints: Partial<Record<AzureService, string>>;
  /** Trusted CAs for storage calls (Node's roots plus NODE_EXTRA_CA_CERTS), when that variable is set. */
  ca?: string[];
}
