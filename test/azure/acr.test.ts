import Dockerode from 'dockerode';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { AzureEnvironmentError } from '@liftoff/core';
import { RegistryCredentials } from '../../packages/agent/src/docker/credentials.js';
import type { AzureClientSettings } from '../../packages/agent/src/environments/types.js';
import { ACR_USERNAME, AcrLogins, createAcrRegistry, parseAcrUri } from '../../packages/agent/src/registries/acr.js';
import { registryFor } from '../../packages/agent/src/registries/index.js';
import { registryAvailable, startFakeAcr, type FakeAcr } from '../helpers/azureFake/acr.js';
import { TENANT, startFakeIdentity, type FakeIdentity } from '../helpers/azureFake/identity.js';
import { BUSYBOX, docker, dockerAvailable } from '../helpers/docker.js';
import { cleanupAll, onCleanup } from '../helpers/procs.js';
import { settingsFrom } from './env.js';

const ACR_AUDIENCE = 'https://containerregistry.azure.net';
const noDocker = {} as Dockerode;

/**
 * The acr registry (issue 15): the managed identity's Entra token → ACR's /oauth2/exchange → a refresh token, the
 * docker password of 00000000-0000-0000-0000-000000000000; against a real Distribution registry in token-auth mode
 * behind a fake ACR token service, with a real docker push, the OCI existence check and @azure/container-registry
 * (an ACR client Liftoff did not write) listing what was pushed.
 */
describe.skipIf(!registryAvailable())('the acr registry', () => {
  let id: FakeIdentity;
  let acr: FakeAcr;
  let azure: AzureClientSettings;
  beforeAll(async () => {
    id = await startFakeIdentity();
    acr = await startFakeAcr({ acceptAad: (t) => id.issued(t, ACR_AUDIENCE) });
    azure = await settingsFrom(id.env);
  }, 60_000);
  afterEach(() => {
    vi.useRealTimers();
    acr.refreshTtlSeconds = 3 * 3600;
  });
  afterAll(async () => {
    vi.unstubAllEnvs();
    await cleanupAll();
  });

  it('logs in with a refresh token from /oauth2/exchange, shared by concurrent callers, renewed before its expiry', async () => {
    const logins = new AcrLogins(azure, acr.host);
    const before = acr.exchanges();
    const first = await Promise.all(Array.from({ length: 5 }, () => logins.login()));
    expect(acr.exchanges()).toBe(before + 1);
    expect(new Set(first.map((l) => l.password)).size).toBe(1);
    expect(first[0]?.username).toBe(ACR_USERNAME);
    // The tenant, read from the Entra token (no AZURE_TENANT_ID here), goes with the exchange.
    expect(acr.tenants.at(-1)).toBe(TENANT);
    expect(await logins.login()).toEqual(first[0]); // cached
    expect(acr.exchanges()).toBe(before + 1);
    // 2 h 50 min on, 10 minutes before the 3-hour refresh token expires: exchanged again once.
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(Date.now() + 170 * 60_000);
    const second = await Promise.all(Array.from({ length: 3 }, () => logins.login()));
    expect(acr.exchanges()).toBe(before + 2);
    expect(second[0]?.password).not.toBe(first[0]?.password);
  });

  it('the fake refuses what ACR refuses: an Entra token for another audience, and an expired refresh token', async () => {
    // Every token the chain gives is for Storage, not ACR.
    const wrong: AzureClientSettings = { ...azure, token: () => azure.token('https://storage.azure.com/.default') };
    const err = await new AcrLogins(wrong, acr.host).login().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AzureEnvironmentError);
    expect((err as Error).message).toMatch(
      new RegExp(
        `^ACR ${acr.host} refused the agent's Entra token \\(HTTP 401: .*the AAD access token is not valid.*\\); assign the agent's principal the AcrPush role on the registry\\.$`,
      ),
    );
    // A refresh token that is already expired is not cached: every login exchanges again, and ACR refuses it.
    acr.refreshTtlSeconds = -60;
    const logins = new AcrLogins(azure, acr.host);
    const before = acr.exchanges();
    const stale = await logins.login();
    await logins.login();
    expect(acr.exchanges()).toBe(before + 2);
    const basic = Buffer.from(`${ACR_USERNAME}:${stale.password}`).toString('base64');
    const res = await fetch(`http://${acr.host}/oauth2/token?service=${acr.host}&scope=repository:team/app:pull`, {
      headers: { authorization: `Basic ${basic}` },
    });
    expect(res.status).toBe(401);
    expect(acr.refused.at(-1)).toBe('refresh token expired');
  });

  it('takes <name>.azurecr.io/<repository> (nested repositories too) or a loopback test registry, nothing else', async () => {
    expect(parseAcrUri('liftoffjobs.azurecr.io/team/app')).toEqual({
      host: 'liftoffjobs.azurecr.io',
      repository: 'team/app',
    });
    expect(parseAcrUri('https://liftoffjobs.azurecr.io/app/')).toEqual({
      host: 'liftoffjobs.azurecr.io',
      repository: 'app',
    });
    expect(parseAcrUri('127.0.0.1:5000/app')?.host).toBe('127.0.0.1:5000');
    for (const bad of [
      'liftoffjobs.azurecr.io',
      'azurecr.io.evil.com/app',
      'evil.example.com/app',
      'liftoffjobs.azurecr.io/App',
    ]) {
      expect(parseAcrUri(bad), bad).toBeUndefined();
    }
    await expect(
      createAcrRegistry(
        { type: 'acr', uri: 'evil.example.com/app' },
        { docker: noDocker, credentials: new RegistryCredentials([]), azure },
      ),
    ).rejects.toThrow('is not an ACR repository: write <registry>.azurecr.io/<repository>');
    await expect(
      createAcrRegistry(
        { type: 'acr', uri: `${acr.host}/app` },
        { docker: noDocker, credentials: new RegistryCredentials([]) },
      ),
    ).rejects.toThrow('registry type acr needs environment: {type: azure}');
    // In an azure environment a builder.destination on azurecr.io makes the acr registry, which logs in at once
    // (here with a chain that has no token, so nothing is contacted).
    const noToken: AzureClientSettings = { ...azure, token: () => Promise.reject(new Error('no token here')) };
    await expect(
      registryFor(null, {
        docker: noDocker,
        credentials: new RegistryCredentials([]),
        destination: 'liftoffjobs.azurecr.io/team/app',
        azure: noToken,
      }),
    ).rejects.toThrow('Could not get an Entra token for ACR liftoffjobs.azurecr.io (no token here)');
  });

  describe.skipIf(!dockerAvailable())('with the engine', () => {
    it('pushes with the refresh-token login, finds the tag by the OCI manifest HEAD, and the ACR SDK lists the repository', async () => {
      const credentials = new RegistryCredentials([]);
      const registry = await createAcrRegistry(
        { type: 'acr', uri: `${acr.host}/team/app` },
        { docker: new Dockerode(), credentials, azure },
      );
      expect(registry.repository).toBe(`${acr.host}/team/app`);
      const login = await credentials.get(acr.host);
      expect(login?.username).toBe(ACR_USERNAME);
      const image = `${acr.host}/team/app:t1`;
      docker('tag', BUSYBOX, image);
      onCleanup(() => void docker('rmi', image));
      await registry.publish(image, () => undefined);
      expect(await registry.imageExists(image)).toBe(true);
      expect(await registry.imageExists(`${acr.host}/team/app:t2`)).toBe(false);
      // Cross-check with Microsoft's ACR client, over HTTPS, with the same credential chain.
      const { ContainerRegistryClient } = await import('@azure/container-registry');
      const client = new ContainerRegistryClient(acr.httpsUrl, azure.credential, {
        audience: ACR_AUDIENCE,
        tlsOptions: { ca: acr.ca },
      });
      const names: string[] = [];
      for await (const name of client.listRepositoryNames()) names.push(name);
      expect(names).toEqual(['team/app']);
      // Without a token the registry refuses, pointing at the fake's token service (token-auth mode, not htpasswd).
      const anonymous = await fetch(`http://${acr.host}/v2/team/app/tags/list`);
      expect(anonymous.status).toBe(401);
      expect(anonymous.headers.get('www-authenticate')).toBe(
        `Bearer realm="http://${acr.host}/oauth2/token",service="${acr.host}",scope="repository:team/app:pull"`,
      );
    }, 180_000);
  });
});
