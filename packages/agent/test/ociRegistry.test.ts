import type Dockerode from 'dockerode';
import { describe, expect, it } from 'vitest';
import { RegistryCredentials } from '../src/docker/credentials.js';
import { OciRegistry } from '../src/registries/oci.js';

/** The token flow of registries such as Docker Hub or Artifact Registry, against a scripted registry. */
describe('OCI registry existence check', () => {
  const creds = new RegistryCredentials();
  creds.set('registry.example.com', 'alice', 'pw');
  const basic = `Basic ${Buffer.from('alice:pw').toString('base64')}`;

  function registry(manifestStatus: number) {
    const calls: string[] = [];
    const fetchImpl = (async (input: string | URL, init?: RequestInit) => {
      const url = String(input);
      const auth = new Headers(init?.headers).get('authorization') ?? '';
      calls.push(`${init?.method ?? 'GET'} ${url} ${auth.split(' ')[0] ?? ''}`);
      if (url.startsWith('https://auth.example.com/token')) {
        const ok = auth === basic && new URL(url).searchParams.get('scope') === 'repository:team/jobs:pull';
        return new Response(JSON.stringify({ token: 'tok' }), { status: ok ? 200 : 401 });
      }
      if (auth !== 'Bearer tok') {
        return new Response(null, {
          status: 401,
          headers: {
            'www-authenticate': 'Bearer realm="https://auth.example.com/token",service="registry.example.com"',
          },
        });
      }
      return new Response(null, { status: manifestStatus });
    }) as typeof fetch;
    return { reg: new OciRegistry({} as Dockerode, 'registry.example.com/team/jobs', creds, fetchImpl), calls };
  }

  it('fetches a bearer token with the credentials and finds an existing tag', async () => {
    const { reg, calls } = registry(200);
    expect(await reg.imageExists('registry.example.com/team/jobs:abc')).toBe(true);
    expect(calls).toEqual([
      'HEAD https://registry.example.com/v2/team/jobs/manifests/abc ',
      'GET https://auth.example.com/token?service=registry.example.com&scope=repository%3Ateam%2Fjobs%3Apull Basic',
      'HEAD https://registry.example.com/v2/team/jobs/manifests/abc Bearer',
    ]);
  });

  it('reports a missing tag, and wrong credentials naming the registry', async () => {
    expect(await registry(404).reg.imageExists('registry.example.com/team/jobs:nope')).toBe(false);
    const wrong = new RegistryCredentials();
    wrong.set('registry.example.com', 'alice', 'wrong');
    const { calls } = registry(200);
    const fetchImpl = (async (input: string | URL) =>
      String(input).startsWith('https://auth')
        ? new Response('{}', { status: 401 })
        : new Response(null, {
            status: 401,
            headers: { 'www-authenticate': 'Bearer realm="https://auth.example.com/token"' },
          })) as typeof fetch;
    const reg = new OciRegistry({} as Dockerode, 'registry.example.com/team/jobs', wrong, fetchImpl);
    await expect(reg.imageExists('registry.example.com/team/jobs:abc')).rejects.toThrow(
      'Registry registry.example.com refused the credentials (token HTTP 401).',
    );
    expect(calls).toEqual([]);
  });
});
