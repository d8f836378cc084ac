import { AwsCredentialsMissingError, AwsEnvironmentError, describeCause } from '@liftoff/core';
import { objectStoreFor } from '../../objectStores/index.js';
import type { AwsClientSettings } from '../types.js';
import { awsClientConfig } from './settings.js';

/** Who the agent is on AWS, from STS GetCallerIdentity. */
export interface AwsIdentity {
  account: string;
  /** `aws`, `aws-cn`, `aws-us-gov`, ...: the ARN's second field (role ARNs are built in it). */
  partition: string;
  /** The caller's ARN (a user, or an assumed-role session). */
  principal: string;
}

/**
 * At agent start, before any queue is served: the credentials work (STS GetCallerIdentity, which needs no IAM
 * permission), and the build-context store, when it is an s3:// URI, exists and is reachable (HeadBucket). A
 * mistake in either then stops the agent at once with one line naming the fix, instead of failing the first job.
 */
export async function checkAwsEnvironment(
  aws: AwsClientSettings,
  opts: { buildContextStore?: string | undefined },
  say: (line: string) => void,
): Promise<AwsIdentity> {
  const identity = await callerIdentity(aws);
  say(
    `aws: account ${identity.account}, partition ${identity.partition}, principal ${identity.principal}, region ${aws.region}`,
  );
  if (opts.buildContextStore?.startsWith('s3://')) {
    await objectStoreFor(opts.buildContextStore, { aws }).verify(opts.buildContextStore);
    say(`aws: build-context store ${opts.buildContextStore} is reachable`);
  }
  return identity;
}

export async function callerIdentity(aws: AwsClientSettings): Promise<AwsIdentity> {
  const { STSClient, GetCallerIdentityCommand } = await import('@aws-sdk/client-sts');
  const client = new STSClient(awsClientConfig(aws, 'sts'));
  try {
    const out = await client.send(new GetCallerIdentityCommand({}));
    const principal = out.Arn ?? '';
    const partition = /^arn:([a-z-]+):/.exec(principal)?.[1];
    if (!out.Account || !partition) {
      throw new AwsEnvironmentError(`AWS STS answered GetCallerIdentity without an account or ARN (${principal}).`);
    }
    return { account: out.Account, partition, principal };
  } catch (e) {
    throw stsProblem(e, aws);
  } finally {
    client.destroy();
  }
}

function stsProblem(e: unknown, aws: AwsClientSettings): Error {
  if (e instanceof AwsEnvironmentError) return e;
  const err = e as { name?: string; message?: string; $metadata?: { httpStatusCode?: number } };
  // The default chain ends with this when no link found anything (env, profile, SSO, web identity, container, IMDS).
  if (err.name === 'CredentialsProviderError') return new AwsCredentialsMissingError(err.message ?? String(e), e);
  if (err.$metadata?.httpStatusCode !== undefined) {
    return new AwsEnvironmentError(
      `AWS STS refused the agent's credentials (${err.name ?? 'error'}: ${err.message ?? ''}); check the credentials the agent process is given (AWS_PROFILE, AWS_ACCESS_KEY_ID, its role) and that they are current.`,
      e,
    );
  }
  const where = aws.endpoints.sts ?? `the STS endpoint of region ${aws.region}`;
  return new AwsEnvironmentError(
    `Could not reach AWS STS at ${where} (${describeCause(e)}); check environment.region, AWS_ENDPOINT_URL_STS and the agent's network.`,
    e,
  );
}
