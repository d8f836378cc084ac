import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { GcpCredentialsMissingError, GcpEnvironmentError } from '@liftoff/core';
import { checkGcpEnvironment } from '../../packages/agent/src/environments/gcp/check.js';
import {
  dockerHostFrom,
  endpointsFrom,
  gcpClientSettings,
} from '../../packages/agent/src/environments/gcp/settings.js';
import { startFakeMetadata } from '../helpers/gcpFake/metadata.js';
import { cleanupAll } from '../helpers/procs.js';
import { PROJECT, REGION, settingsFrom } from './env.js';

/** The gcp environment (issue 14): ADC through google-auth-library against a fake metadata server on loopback. */
describe('the gcp environment', () => {
  afterEach(() => {
    vi.useRealTimers();
    vi.unstubAllEnvs();
  });
  afterAll(cleanupAll);

  it('the fake metadata server refuses requests without Metadata-Flavor: Google, as GCE does', async () => {
    const md = await startFakeMetadata();
    const url = `http://${md.host}/computeMetadata/v1/project/project-id`;
    expect((await fetch(url)).status).toBe(403);
    expect(md.refused()).toBe(1);
    const ok = await fetch(url, { headers: { 'metadata-flavor': 'Google' } });
    expect(ok.headers.get('metadata-flavor')).toBe('Google');
    expect(await ok.text()).toBe(PROJECT);
  });

  it('one auth client: concurrent callers share one token fetch, and it is fetched again once near its expiry', async () => {
    const md = await startFakeMetadata({ expiresIn: 3600 });
    const gcp = await settingsFrom(md.env);
    const first = await Promise.all(Array.from({ length: 5 }, () => gcp.accessToken()));
    expect(md.tokenFetches()).toBe(1);
    expect(new Set(first)).toEqual(new Set([md.tokens[0]]));
    expect(await gcp.accessToken()).toBe(md.tokens[0]); // cached
    expect(md.tokenFetches()).toBe(1);
    // 56 minutes on: inside the library's 5-minute early-refresh window. Five callers at once, one fetch.
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(Date.now() + 56 * 60_000);
    const second = await Promise.all(Array.from({ length: 5 }, () => gcp.accessToken()));
    expect(md.tokenFetches()).toBe(2);
    expect(new Set(second)).toEqual(new Set([md.tokens[1]]));
    expect(md.unknown).toEqual([]);
  });

  it('the start check gets a token and logs project, service account and region', async () => {
    const md = await startFakeMetadata({ email: 'runner@liftoff-test-project.iam.gserviceaccount.com' });
    const gcp = await settingsFrom(md.env);
    const lines: string[] = [];
    const identity = await checkGcpEnvironment(gcp, {}, (l) => lines.push(l));
    expect(lines).toEqual([
      `gcp: project ${PROJECT}, principal runner@liftoff-test-project.iam.gserviceaccount.com, region ${REGION}`,
    ]);
    expect(identity).toEqual({ project: PROJECT, principal: 'runner@liftoff-test-project.iam.gserviceaccount.com' });
    expect(md.tokenFetches()).toBe(1);
  });

  it('without any credentials the check fails with the named error saying how to provide them', async () => {
    const gcp = await settingsFrom({});
    const err = await checkGcpEnvironment(gcp, {}, () => undefined).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GcpCredentialsMissingError);
    expect((err as Error).message).toMatch(
      /^The agent config has a gcp environment, but no Google Cloud credentials were found \(.*\)\. Provide them to the agent process: GOOGLE_APPLICATION_CREDENTIALS/,
    );
  });

  it('a metadata server that refuses the token, or none answering, stops the check with one line', async () => {
    const md = await startFakeMetadata();
    md.tokenStatus = 404; // a VM without a service account attached
    let gcp = await settingsFrom(md.env);
    let err = await checkGcpEnvironment(gcp, {}, () => undefined).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GcpEnvironmentError);
    expect((err as Error).message).toMatch(
      /^Google refused the agent's credentials when asked for an access token \(HTTP 404: .*\); check GOOGLE_APPLICATION_CREDENTIALS/,
    );
    expect((err as Error).message).not.toContain('\n');
    gcp = await settingsFrom({ ...md.env, GCE_METADATA_HOST: '127.0.0.1:9', GCE_METADATA_IP: '127.0.0.1:9' });
    err = await checkGcpEnvironment(gcp, {}, () => undefined).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GcpEnvironmentError);
    expect((err as Error).message).toMatch(
      /^Could not get a Google Cloud access token \(.*\); check the agent's credentials/,
    );
  });

  it('refuses a malformed project, region or endpoint variable, naming the key', async () => {
    await expect(gcpClientSettings({ type: 'gcp', project: 'Bad_Project', region: REGION }, {})).rejects.toThrow(
      'is not a Google Cloud project id',
    );
    await expect(gcpClientSettings({ type: 'gcp', project: PROJECT, region: 'US CENTRAL' }, {})).rejects.toThrow(
      'is not a Google Cloud region name',
    );
    expect(endpointsFrom({ STORAGE_EMULATOR_HOST: '127.0.0.1:4443' })).toEqual({ storage: 'https://127.0.0.1:4443' });
    expect(endpointsFrom({ STORAGE_EMULATOR_HOST: 'http://127.0.0.1:4443/' })).toEqual({
      storage: 'http://127.0.0.1:4443',
    });
    expect(() => endpointsFrom({ STORAGE_EMULATOR_HOST: 'ftp://x' })).toThrow('must be an http:// or https:// URL');
    expect(dockerHostFrom({ LIFTOFF_GAR_DOCKER_HOST: '127.0.0.1:5000' })).toBe('127.0.0.1:5000');
    expect(dockerHostFrom({})).toBeUndefined();
    for (const bad of ['http://127.0.0.1:5000', '127.0.0.1:5000/path', 'user@host', 'host:port']) {
      expect(() => dockerHostFrom({ LIFTOFF_GAR_DOCKER_HOST: bad }), bad).toThrow('is not a registry host');
    }
    await expect(
      gcpClientSettings(
        { type: 'gcp', project: PROJECT, region: REGION },
        { GOOGLE_APPLICATION_CREDENTIALS: '/nonexistent/key.json' },
      ),
    ).rejects.toThrow('GOOGLE_APPLICATION_CREDENTIALS="/nonexistent/key.json" names no file');
  });
});
