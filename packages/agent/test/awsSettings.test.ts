import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { AwsEnvironmentError, parseAgentConfigYaml } from '@liftoff/core';
import { awsClientConfig, awsClientSettings, endpointsFrom } from '../src/environments/aws/settings.js';
import { jobEnvironment } from '../src/jobEnv.js';

/**
 * How the CLI turns the agent's environment into the AWS settings every client is built from (issue 13). Nothing
 * here may reach AWS: the instance metadata service is disabled and the shared files are temp files.
 */
let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'liftoff-aws-settings-'));
  // The SDK's chain reads these from the process itself (see settings.ts); the test process must not reach IMDS.
  vi.stubEnv('AWS_EC2_METADATA_DISABLED', 'true');
  for (const v of ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'AWS_PROFILE', 'AWS_REGION'])
    vi.stubEnv(v, undefined);
  for (const v of ['AWS_CONTAINER_CREDENTIALS_FULL_URI', 'AWS_CONTAINER_CREDENTIALS_RELATIVE_URI'])
    vi.stubEnv(v, undefined);
  for (const v of ['AWS_WEB_IDENTITY_TOKEN_FILE', 'AWS_CONFIG_FILE', 'AWS_SHARED_CREDENTIALS_FILE'])
    vi.stubEnv(v, undefined);
  writeFileSync(
    join(dir, 'config'),
    '[default]\nregion = ap-south-2\n\n[profile team]\nregion = eu-west-3\n\n[profile bare]\noutput = json\n',
  );
  writeFileSync(
    join(dir, 'credentials'),
    '[team]\naws_access_key_id = AKIDTEAMPROFILE\naws_secret_access_key = team-secret\n',
  );
});
afterAll(() => {
  vi.unstubAllEnvs();
  rmSync(dir, { recursive: true, force: true });
});

const files = () => ({
  HOME: dir,
  AWS_CONFIG_FILE: join(dir, 'config'),
  AWS_SHARED_CREDENTIALS_FILE: join(dir, 'credentials'),
});
const aws = (region?: string) => ({ type: 'aws' as const, ...(region ? { region } : {}) });

describe('the region', () => {
  it('is the config one first, then AWS_REGION, AWS_DEFAULT_REGION, then the profile region', async () => {
    const all = { ...files(), AWS_REGION: 'us-west-2', AWS_DEFAULT_REGION: 'eu-north-1', AWS_PROFILE: 'team' };
    expect((await awsClientSettings(aws('us-east-1'), all)).region).toBe('us-east-1');
    expect((await awsClientSettings(aws(), all)).region).toBe('us-west-2');
    const { AWS_REGION: _r, ...noRegion } = all;
    expect((await awsClientSettings(aws(), noRegion)).region).toBe('eu-north-1');
    const { AWS_DEFAULT_REGION: _d, ...profileOnly } = noRegion;
    expect((await awsClientSettings(aws(), profileOnly)).region).toBe('eu-west-3');
    const { AWS_PROFILE: _p, ...defaultProfile } = profileOnly;
    expect((await awsClientSettings(aws(), defaultProfile)).region).toBe('ap-south-2');
  });

  it('missing everywhere is an error naming environment.region and the profile looked at', async () => {
    const env = { ...files(), AWS_PROFILE: 'bare' };
    const err = await awsClientSettings(aws(), env).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AwsEnvironmentError);
    expect((err as Error).message).toContain('set environment.region in the agent config');
    expect((err as Error).message).toContain(`profile "bare" of ${join(dir, 'config')}`);
  });

  it('is refused when it is not a region name', async () => {
    await expect(awsClientSettings(aws('us-east-1/../x'), files())).rejects.toThrow('is not an AWS region name');
  });

  it('may be left out of the agent config (the specification example without region is valid)', () => {
    expect(parseAgentConfigYaml('environment:\n  type: aws\n', 'x.yaml').environment).toEqual({ type: 'aws' });
    expect(() => parseAgentConfigYaml('environment:\n  type: gcp\n  project: p\n', 'x.yaml')).toThrow(
      'is required for a gcp environment',
    );
  });
});

describe('endpoints', () => {
  it('take AWS_ENDPOINT_URL_<SERVICE> over AWS_ENDPOINT_URL, for each service', () => {
    expect(
      endpointsFrom({
        AWS_ENDPOINT_URL: 'http://127.0.0.1:1000',
        AWS_ENDPOINT_URL_S3: 'http://127.0.0.1:2000',
        AWS_ENDPOINT_URL_CLOUDWATCH_LOGS: 'http://127.0.0.1:3000',
      }),
    ).toEqual({
      sts: 'http://127.0.0.1:1000',
      ecr: 'http://127.0.0.1:1000',
      s3: 'http://127.0.0.1:2000',
      sagemaker: 'http://127.0.0.1:1000',
      logs: 'http://127.0.0.1:3000',
    });
    expect(endpointsFrom({ AWS_ENDPOINT_URL_SAGEMAKER: 'https://sm.example' })).toEqual({
      sagemaker: 'https://sm.example',
    });
  });

  it('are none with AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true', () => {
    expect(
      endpointsFrom({ AWS_ENDPOINT_URL: 'http://127.0.0.1:1', AWS_IGNORE_CONFIGURED_ENDPOINT_URLS: 'true' }),
    ).toEqual({});
  });

  it('refuse a value that is not an http(s) URL, naming the variable', () => {
    expect(() => endpointsFrom({ AWS_ENDPOINT_URL_STS: 'file:///etc/passwd' })).toThrow(
      'AWS_ENDPOINT_URL_STS="file:///etc/passwd" must be an http:// or https:// URL',
    );
    expect(() => endpointsFrom({ AWS_ENDPOINT_URL: 'not a url' })).toThrow('AWS_ENDPOINT_URL="not a url" is not a URL');
  });

  it('go into the client config of their service only', async () => {
    const settings = await awsClientSettings(aws('us-east-1'), {
      ...files(),
      AWS_ENDPOINT_URL_ECR: 'http://127.0.0.1:9',
    });
    expect(awsClientConfig(settings, 'ecr')).toEqual({
      region: 'us-east-1',
      credentials: settings.credentials,
      endpoint: 'http://127.0.0.1:9',
    });
    expect(awsClientConfig(settings, 'sts')).toEqual({ region: 'us-east-1', credentials: settings.credentials });
  });
});

describe('credentials', () => {
  it("come from the profile and shared files the given environment names (not the test process's)", async () => {
    const settings = await awsClientSettings(aws('us-east-1'), { ...files(), AWS_PROFILE: 'team' });
    const creds = await settings.credentials();
    expect(creds.accessKeyId).toBe('AKIDTEAMPROFILE');
    expect(creds.secretAccessKey).toBe('team-secret');
  });

  it('are one memoized provider: asking twice reads the files once', async () => {
    const credsFile = join(dir, 'memo-credentials');
    writeFileSync(credsFile, '[team]\naws_access_key_id = AKIDFIRST\naws_secret_access_key = s\n');
    const settings = await awsClientSettings(aws('us-east-1'), {
      ...files(),
      AWS_SHARED_CREDENTIALS_FILE: credsFile,
      AWS_PROFILE: 'team',
    });
    expect((await settings.credentials()).accessKeyId).toBe('AKIDFIRST');
    writeFileSync(credsFile, '[team]\naws_access_key_id = AKIDSECOND\naws_secret_access_key = s\n');
    // Static keys have no expiry: the memoized provider keeps what it found.
    expect((await settings.credentials()).accessKeyId).toBe('AKIDFIRST');
  });
});

describe("the agent's AWS variables", () => {
  const agentEnv = {
    PATH: '/usr/bin',
    AWS_ACCESS_KEY_ID: 'AKIDAGENT',
    AWS_SECRET_ACCESS_KEY: 'agent-secret',
    AWS_SESSION_TOKEN: 'agent-token',
    AWS_PROFILE: 'team',
    AWS_REGION: 'us-east-1',
    AWS_CONTAINER_CREDENTIALS_FULL_URI: 'http://127.0.0.1:1/creds',
    AWS_CONTAINER_AUTHORIZATION_TOKEN: 'agent-container-token',
    AWS_WEB_IDENTITY_TOKEN_FILE: '/var/run/secrets/token',
    AWS_ROLE_ARN: 'arn:aws:iam::123456789012:role/agent',
    AWS_ENDPOINT_URL: 'http://127.0.0.1:2',
  };

  it.each(['process', 'container'] as const)('never reach a %s job (jobEnv.ts is an allow-list)', (place) => {
    const env = jobEnvironment({ agentEnv, allowed: [], specEnv: {}, runVars: { LIFTOFF_RUN_ID: 'r' }, place });
    expect(Object.keys(env).filter((k) => k.startsWith('AWS_'))).toEqual([]);
    expect(Object.values(env).join('\n')).not.toMatch(/agent-secret|agent-token|AKIDAGENT|agent-container-token/);
  });
});
