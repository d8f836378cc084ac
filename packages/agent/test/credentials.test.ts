import { describe, expect, it } from 'vitest';
import { RegistryCredentials } from '@liftoff/agent';

describe('registry credentials', () => {
  it('reads docker config.json auths (base64 user:password or explicit fields) and matches images by host', () => {
    const creds = new RegistryCredentials();
    creds.addDockerConfig({
      auths: {
        'registry.example.com': { auth: Buffer.from('alice:s3:cret').toString('base64') },
        'https://127.0.0.1:5000/v2/': { username: 'bob', password: 'pw' },
      },
    });
    expect(creds.authFor('registry.example.com/team/app:1')).toEqual({
      username: 'alice',
      password: 's3:cret',
      serveraddress: 'registry.example.com',
    });
    expect(creds.authFor('127.0.0.1:5000/jobs:abc')).toEqual({
      username: 'bob',
      password: 'pw',
      serveraddress: '127.0.0.1:5000',
    });
    expect(creds.authFor('python:3.12-slim')).toBeUndefined();
    expect(creds.authFor('other.example.com/x:1')).toBeUndefined();
  });

  it('with a scope (the agent passes its destination registry), drops logins for every other registry', () => {
    const creds = new RegistryCredentials(['127.0.0.1:5000']);
    creds.addDockerConfig({
      auths: {
        'private.example.com': { username: 'alice', password: 'a' },
        'http://127.0.0.1:5000': { username: 'bob', password: 'b' },
      },
    });
    creds.set('other.example.com', 'carol', 'c');
    expect(creds.authFor('private.example.com/secret/app:1')).toBeUndefined();
    expect(creds.authFor('other.example.com/x:1')).toBeUndefined();
    expect(creds.get('private.example.com')).toBeUndefined();
    expect(creds.authFor('127.0.0.1:5000/jobs:abc')).toMatchObject({ username: 'bob' });
  });
});
