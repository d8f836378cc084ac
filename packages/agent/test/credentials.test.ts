import { describe, expect, it } from 'vitest';
import { RegistryCredentials } from '@liftoff/agent';

describe('registry credentials', () => {
  it('reads docker config.json auths (base64 user:password or explicit fields) and matches images by host', async () => {
    const creds = new RegistryCredentials();
    creds.addDockerConfig({
      auths: {
        'registry.example.com': { auth: Buffer.from('alice:s3:cret').toString('base64') },
        'https://127.0.0.1:5000/v2/': { username: 'bob', password: 'pw' },
      },
    });
    expect(await creds.authFor('registry.example.com/team/app:1')).toEqual({
      username: 'alice',
      password: 's3:cret',
      serveraddress: 'registry.example.com',
    });
    expect(await creds.authFor('127.0.0.1:5000/jobs:abc')).toEqual({
      username: 'bob',
      password: 'pw',
      serveraddress: '127.0.0.1:5000',
    });
    expect(await creds.authFor('python:3.12-slim')).toBeUndefined();
    expect(await creds.authFor('other.example.com/x:1')).toBeUndefined();
  });

  it('with a scope (the agent passes its destination registry), drops logins for every other registry', async () => {
    const creds = new RegistryCredentials(['127.0.0.1:5000']);
    creds.addDockerConfig({
      auths: {
        'private.example.com': { username: 'alice', password: 'a' },
        'http://127.0.0.1:5000': { username: 'bob', password: 'b' },
      },
    });
    creds.set('other.example.com', 'carol', 'c');
    expect(await creds.authFor('private.example.com/secret/app:1')).toBeUndefined();
    expect(await creds.authFor('other.example.com/x:1')).toBeUndefined();
    expect(await creds.get('private.example.com')).toBeUndefined();
    expect(await creds.authFor('127.0.0.1:5000/jobs:abc')).toMatchObject({ username: 'bob' });
  });

  it("asks a host's provider at every use (a refreshing cloud token), over a fixed login and outside the scope", async () => {
    const creds = new RegistryCredentials(['127.0.0.1:5000']);
    creds.set('127.0.0.1:5000', 'fixed', 'f');
    let n = 0;
    creds.setProvider('https://123456789012.dkr.ecr.us-east-1.amazonaws.com', async () => ({
      username: 'AWS',
      password: `token-${++n}`,
    }));
    const image = '123456789012.dkr.ecr.us-east-1.amazonaws.com/jobs:1';
    expect(await creds.authFor(image)).toEqual({
      username: 'AWS',
      password: 'token-1',
      serveraddress: '123456789012.dkr.ecr.us-east-1.amazonaws.com',
    });
    expect((await creds.get('123456789012.dkr.ecr.us-east-1.amazonaws.com'))?.password).toBe('token-2');
    creds.setProvider('127.0.0.1:5000', async () => ({ username: 'AWS', password: 'fresh' }));
    expect(await creds.authFor('127.0.0.1:5000/jobs:abc')).toMatchObject({ username: 'AWS', password: 'fresh' });
  });
});
