import { fromHttp } from '@aws-sdk/credential-providers';
import type { AwsCredentialIdentityProvider } from '@smithy/types';
import type { FakeAws } from './index.js';
import { FAKE_REGION } from './index.js';

/**
 * The credentials an agent on ECS/EKS would use, pointed at the fake's loopback container-credentials endpoint
 * (the SDK allows plain http only to loopback and the EKS address). One provider, memoized by the SDK's own
 * refresh logic when shared by clients.
 */
export function fakeCredentials(fake: FakeAws): AwsCredentialIdentityProvider {
  return fromHttp({
    awsContainerCredentialsFullUri: fake.server.credentialsUri,
    awsContainerAuthorizationToken: fake.server.credentialsToken,
  });
}

/** AwsClientSettings for the runner: every service at the fake. */
export function fakeAwsSettings(fake: FakeAws, credentials = fakeCredentials(fake)) {
  const endpoint = fake.server.endpoint;
  return {
    region: FAKE_REGION,
    credentials,
    endpoints: { sts: endpoint, sagemaker: endpoint, logs: endpoint, ecr: endpoint, s3: endpoint },
  };
}

/** An environment for the AWS CLI or moto that reaches nothing but loopback: temp config files, no IMDS. */
export function isolatedAwsEnv(dir: string, key: { accessKeyId: string; secretAccessKey: string }) {
  return {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: dir,
    AWS_CONFIG_FILE: `${dir}/config`,
    AWS_SHARED_CREDENTIALS_FILE: `${dir}/credentials`,
    AWS_ACCESS_KEY_ID: key.accessKeyId,
    AWS_SECRET_ACCESS_KEY: key.secretAccessKey,
    AWS_DEFAULT_REGION: FAKE_REGION,
    AWS_EC2_METADATA_DISABLED: 'true',
    AWS_PAGER: '',
  };
}
