import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LiftoffClient, type MemberRole } from '@liftoff/core';
import { BACKENDS, pgAvailable } from '../../../test/helpers/postgres.js';
import { refusal, startBackendServer, type BackendServer } from './factory.js';

/**
 * Issue 12, point 5: per-membership roles. A user key's role in an entity is the lower of the key's role and the
 * user's membership role there; members are added with a role, removed, and a team always keeps an admin.
 */
for (const backend of BACKENDS) {
  describe.skipIf(backend === 'postgres' && !pgAvailable)(`membership roles on ${backend}`, () => {
    let b: BackendServer;
    let admin: LiftoffClient;
    const keys: Record<string, LiftoffClient> = {};
    const client = (key: string) => new LiftoffClient({ baseUrl: b.server.url, apiKey: key });

    beforeAll(async () => {
      b = await startBackendServer(backend);
      admin = b.client;
      for (const u of ['ann', 'ben', 'cat']) await admin.createUser(u);
      for (const t of ['red', 'green']) await admin.createTeam(t);
      await admin.addMember('red', 'ann', 'admin');
      await admin.addMember('green', 'ann', 'member');
      await admin.addMember('green', 'ben', 'admin');
      keys.annAdmin = client((await admin.createKey({ name: 'ann-admin', role: 'admin', user: 'ann' })).key);
      keys.annMember = client((await admin.createKey({ name: 'ann-member', role: 'member', user: 'ann' })).key);
      keys.ben = client((await admin.createKey({ name: 'ben', role: 'admin', user: 'ben' })).key);
      keys.cat = client((await admin.createKey({ name: 'cat', role: 'admin', user: 'cat' })).key);
    });
    afterAll(async () => {
      await b?.close();
    });

    it('gives a user key the lower of its own role and the membership role, entity by entity', async () => {
      // [key, entity, key role, membership role, may administer]
      const cases: Array<[string, string, string, MemberRole, boolean]> = [
        ['annAdmin', 'red', 'admin', 'admin', true],
        ['annAdmin', 'green', 'admin', 'member', false],
        ['annMember', 'red', 'member', 'admin', false],
        ['annMember', 'green', 'member', 'member', false],
        ['annAdmin', 'ann', 'admin', 'admin', true], // the personal entity
      ];
      for (const [key, entity, keyRole, memberRole, may] of cases) {
        const c = keys[key] as LiftoffClient;
        const what = `${keyRole} key, ${memberRole} membership in ${entity}`;
        const attempt = c.createQueue(entity, { name: `q-${key}`, resource: 'local-process' });
        if (may) await expect(attempt, what).resolves.toMatchObject({ name: `q-${key}` });
        else expect({ what, code: (await refusal(attempt)).code }).toEqual({ what, code: 'FORBIDDEN' });
        // Either way the member reads the entity: a 403 only inside an entity the caller belongs to.
        await expect(c.listQueues(entity), what).resolves.toBeDefined();
      }
    });

    it('adds members with a role, defaulting to admin for a team without one and member after', async () => {
      await admin.createTeam('blue');
      expect((await admin.addMember('blue', 'cat')).roles).toEqual({ cat: 'admin' });
      expect((await keys.cat?.addMember('blue', 'ben'))?.roles).toEqual({ ben: 'member', cat: 'admin' });
      expect((await refusal((keys.ben as LiftoffClient).addMember('blue', 'ann'))).code).toBe('FORBIDDEN');
      expect((await keys.cat?.addMember('blue', 'ben', 'admin'))?.roles).toEqual({ ben: 'admin', cat: 'admin' });
      expect((await keys.ben?.listMembers('blue'))?.roles).toEqual({ ben: 'admin', cat: 'admin' });
    });

    it('removes members (admins only), never the last admin, and the removed user loses the entity at once', async () => {
      await admin.createTeam('gold');
      await admin.addMember('gold', 'cat', 'admin');
      await admin.addMember('gold', 'ben', 'member');
      const ben = keys.ben as LiftoffClient;
      const cat = keys.cat as LiftoffClient;
      expect((await refusal(ben.removeMember('gold', 'cat'))).code).toBe('FORBIDDEN');
      const last = await refusal(cat.removeMember('gold', 'cat'));
      expect(last.code).toBe('LAST_ADMIN');
      expect(last.message).toContain('"cat" is the last admin of "gold"');
      expect((await refusal(cat.addMember('gold', 'cat', 'member'))).code).toBe('LAST_ADMIN');
      expect((await refusal(cat.removeMember('gold', 'ann'))).code).toBe('NOT_FOUND');
      expect((await refusal(cat.removeMember('gold', 'nobody'))).code).toBe('NOT_FOUND');
      expect((await refusal(admin.removeMember('cat', 'cat'))).code).toBe('CONFLICT'); // a personal entity
      await ben.listQueues('gold');
      expect((await cat.removeMember('gold', 'ben')).roles).toEqual({ cat: 'admin' });
      expect((await refusal(ben.listQueues('gold'))).code).toBe('NOT_FOUND');
      // With a second admin, the first may step down or leave.
      await cat.addMember('gold', 'ann', 'admin');
      expect((await cat.addMember('gold', 'cat', 'member')).roles).toEqual({ ann: 'admin', cat: 'member' });
      expect((await refusal(cat.removeMember('gold', 'ann'))).code).toBe('FORBIDDEN');
    });

    it('counts memberships stored without a role (before migration 0007) as admin: the key decides, as before', async () => {
      await admin.createUser('dan');
      await admin.createTeam('legacy');
      await b.exec(
        "INSERT INTO memberships (entity_id, user_id, created_at) SELECT e.id, u.id, 0 FROM entities e, users u WHERE e.name = 'legacy' AND u.name = 'dan'",
      );
      const danAdmin = client((await admin.createKey({ name: 'dan-admin', role: 'admin', user: 'dan' })).key);
      const danMember = client((await admin.createKey({ name: 'dan-member', role: 'member', user: 'dan' })).key);
      expect((await admin.listMembers('legacy')).roles).toEqual({ dan: 'admin' });
      await danAdmin.createQueue('legacy', { name: 'lq', resource: 'local-process' });
      expect((await refusal(danMember.createQueue('legacy', { name: 'lq2', resource: 'local-process' }))).code).toBe(
        'FORBIDDEN',
      );
    });
  });
}
