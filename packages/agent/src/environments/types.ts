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
