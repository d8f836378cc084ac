import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LiftoffClient } from '@liftoff/core';
import { BACKENDS, pgAvailable } from '../../../test/helpers/postgres.js';
import { refusal, startBackendServer, type BackendServer } from './factory.js';

/**
 * Issue 12, point 5: keys are listed (never their secret or hash) to those who may see them, revoked, expire, and
 * their last-used time is written at most once a minute. The server's clock is the test's, so time moves on demand.
 */
for (const backend of BACKENDS) {
  describe.skipIf(backend === 'postgres' && !pgAvailable)(`API keys on ${backend}`, () => {
    let b: BackendServer;
    let admin: LiftoffClient;
    let t = Date.now();
    const secrets: string[] = [];
    const c: Record<string, LiftoffClient> = {};
    const client = (key: string) => new LiftoffClient({ baseUrl: b.server.url, apiKey: key });
    const mint = async (as: LiftoffClient, body: Parameters<LiftoffClient['createKey']>[0]) => {
      const { key } = await as.createKey(body);
      secrets.push(key);
      return client(key);
    };

    beforeAll(async () => {
      b = await startBackendServer(backend, {}, { now: () => t });
      admin = b.client;
      for (const u of ['ann', 'ben', 'bob']) await admin.createUser(u);
      await admin.createTeam('red');
      await admin.createTeam('blue');
      await admin.addMember('red', 'ann', 'admin');
      await admin.addMember('red', 'ben', 'member');
      await admin.addMember('blue', 'bob', 'admin');
      c.annAdmin = await mint(admin, { name: 'ann-admin', role: 'admin', user: 'ann' });
      c.annMember = await mint(admin, { name: 'ann-member', role: 'member', user: 'ann' });
      c.ben = await mint(admin, { name: 'ben-admin', role: 'admin', user: 'ben' });
      c.bob = await mint(admin, { name: 'bob-admin', role: 'admin', user: 'bob' });
      c.redAgent = await mint(c.annAdmin, { name: 'red-agent', role: 'agent', entity: 'red' });
      c.blueAgent = await mint(c.bob, { name: 'blue-agent', role: 'agent', entity: 'blue' });
    });
    afterAll(async () => {
      await b?.close();
    });

    it('lists to each caller the keys it may see, never a secret or a hash', async () => {
      const cases: Array<[string, LiftoffClient, string[]]> = [
        [
          'server admin: all',
          admin,
          ['admin', 'ann-admin', 'ann-member', 'ben-admin', 'bob-admin', 'red-agent', 'blue-agent'],
        ],
        ["red's admin: own user's keys and red's agent keys", c.annAdmin!, ['ann-admin', 'ann-member', 'red-agent']],
        ["the same user's member key: own user's keys only", c.annMember!, ['ann-admin', 'ann-member']],
        ['a member of red (admin key): own keys only', c.ben!, ['ben-admin']],
        ["blue's admin: own keys and blue's agent keys", c.bob!, ['bob-admin', 'blue-agent']],
        ['an agent key: itself', c.redAgent!, ['red-agent']],
      ];
      for (const [who, cl, names] of cases) {
        const { keys } = await cl.listKeys();
        expect({ who, names: keys.map((k) => k.name).sort() }).toEqual({ who, names: [...names].sort() });
        const raw = await (
          await fetch(`${b.server.url}/api/keys`, {
            headers: { authorization: `Bearer ${(cl as unknown as { apiKey: string }).apiKey}` },
          })
        ).text();
        expect(raw).not.toMatch(/hash/i);
        for (const s of secrets) expect(raw).not.toContain(s);
      }
      const red = (await c.annAdmin!.listKeys()).keys.find((k) => k.name === 'red-agent');
      expect(red).toMatchObject({ role: 'agent', entity: 'red', user: null, expires_at: null });
    });

    it('revokes a key by name or id for those who see it, after which the key is refused', async () => {
      const victim = await mint(c.annAdmin!, { name: 'red-agent-2', role: 'agent', entity: 'red' });
      await victim.whoami();
      // Not visible: answered as an unknown key, to a member of the same entity and to another entity's admin.
      for (const cl of [c.ben!, c.bob!, c.annMember!]) {
        const e = await refusal(cl.revokeKey('red-agent-2'));
        expect(e.code).toBe('NOT_FOUND');
        expect(e.message).toBe('Key "red-agent-2" not found; list the keys you can see with "liftoff keys list".');
      }
      await victim.whoami();
      await c.annAdmin!.revokeKey('red-agent-2');
      expect((await refusal(victim.whoami())).code).toBe('UNAUTHENTICATED');
      // By id, and a user revokes their own key.
      const own = await mint(admin, { name: 'ben-laptop', role: 'member', user: 'ben' });
      const id = (await c.ben!.listKeys()).keys.find((k) => k.name === 'ben-laptop')?.id as string;
      await c.ben!.revokeKey(id);
      expect((await refusal(own.whoami())).code).toBe('UNAUTHENTICATED');
      // Two keys of one name: the name is ambiguous, ids are not.
      await mint(admin, { name: 'twin', role: 'member', user: 'ben' });
      await mint(admin, { name: 'twin', role: 'member', user: 'ben' });
      expect((await refusal(admin.revokeKey('twin'))).code).toBe('CONFLICT');
      // The last server admin key is kept.
      expect((await refusal(admin.revokeKey('admin'))).code).toBe('CONFLICT');
      await admin.whoami();
    });

    it('refuses an expired key with a message saying so, and a key born expired', async () => {
      const soon = await mint(admin, { name: 'soon', role: 'member', user: 'ben', expires_at: t + 60_000 });
      await soon.whoami();
      expect((await admin.listKeys()).keys.find((k) => k.name === 'soon')?.expires_at).toBe(t + 60_000);
      t += 60_000;
      const e = await refusal(soon.whoami());
      expect(e.code).toBe('UNAUTHENTICATED');
      expect(e.message).toContain('API key "soon" expired at');
      const past = await refusal(admin.createKey({ name: 'old', role: 'member', user: 'ben', expires_at: t - 1 }));
      expect(past.code).toBe('BAD_REQUEST');
    });

    it('writes the last-used time at most once a minute per key', async () => {
      const k = await mint(admin, { name: 'busy', role: 'member', user: 'ben' });
      const lastUsed = async () => (await admin.listKeys()).keys.find((x) => x.name === 'busy')?.last_used_at;
      expect(await lastUsed()).toBeNull();
      const first = t;
      await k.whoami();
      expect(await lastUsed()).toBe(first);
      t += 59_000;
      await k.whoami();
      expect(await lastUsed()).toBe(first);
      t += 1_000;
      await k.whoami();
      expect(await lastUsed()).toBe(first + 60_000);
    });
  });
}
