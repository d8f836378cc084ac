import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { LiftoffClient, readCredentials } from '@liftoff/core';
import { BACKENDS, pgAvailable } from '../../../test/helpers/postgres.js';
import { until } from '../../../test/helpers/procs.js';
import { refusal, startBackendServer, type BackendServer } from './factory.js';

/**
 * Issue 20: keys, memberships, entities and queues are read through caches (caches.ts). A write must take effect
 * at once everywhere: on PostgreSQL on a second replica of the same database (its own process state, its own bus
 * connection), which only learns of the write through the NOTIFY the write sent. Caches keep entries for a minute
 * (CACHE_TTL_MS) even if nothing drops them, so each check below waits far less than that: without invalidation it
 * fails. On SQLite the "other replica" is the one server (no second process can share its database).
 */
const WITHIN_MS = 5_000;

for (const backend of BACKENDS) {
  describe.skipIf(backend === 'postgres' && !pgAvailable)(`read cache invalidation on ${backend}`, () => {
    let b: BackendServer;
    let clock = Date.now();
    let urlB: string;
    const onA = (key: string) => new LiftoffClient({ baseUrl: b.server.url, apiKey: key });
    const onB = (key: string) => new LiftoffClient({ baseUrl: urlB, apiKey: key });
    let adminKey: string;

    beforeAll(async () => {
      b = await startBackendServer(backend, {}, { now: () => clock });
      urlB = backend === 'postgres' ? (await b.restart()).url : b.server.url;
      adminKey = readCredentials(join(b.home, '.config', 'liftoff', 'credentials'))?.api_key ?? '';
      await b.client.createUser('ann');
      await b.client.createUser('ben');
      await b.client.createTeam('red');
      await b.client.addMember('red', 'ann', 'admin');
      await b.client.addMember('red', 'ben', 'admin');
    });
    afterAll(async () => {
      await b?.close();
    });

    /** Resolves with the error code once `attempt` is refused with `code` (polling for at most WITHIN_MS). */
    const refusedWith = (code: string, attempt: () => Promise<unknown>) =>
      until(async () => {
        try {
          await attempt();
          return undefined;
        } catch (e) {
          return (e as { code?: string }).code === code ? code : undefined;
        }
      }, WITHIN_MS);

    it('refuses a revoked key on the other replica', async () => {
      const { key, id = '' } = await b.client.createKey({ name: 'short-lived', role: 'member', user: 'ann' });
      await expect(onB(key).whoami()).resolves.toMatchObject({ key_name: 'short-lived' });
      await b.client.revokeKey(id);
      expect(await refusedWith('UNAUTHENTICATED', () => onB(key).whoami())).toBe('UNAUTHENTICATED');
    });

    it('applies a changed and a removed membership on the other replica', async () => {
      const { key } = await b.client.createKey({ name: 'ann-admin', role: 'admin', user: 'ann' });
      const ann = onB(key);
      await expect(ann.updateEntity('red', { max_concurrency: null })).resolves.toMatchObject({ name: 'red' });
      await onA(adminKey).addMember('red', 'ann', 'member');
      expect(await refusedWith('FORBIDDEN', () => ann.updateEntity('red', { max_concurrency: null }))).toBe(
        'FORBIDDEN',
      );
      await expect(ann.listQueues('red')).resolves.toBeDefined();
      await b.client.removeMember('red', 'ann');
      expect(await refusedWith('NOT_FOUND', () => ann.listQueues('red'))).toBe('NOT_FOUND');
    });

    it('forgets a deleted queue and shows a changed limit on the other replica', async () => {
      const b2 = onB(adminKey);
      await b.client.createQueue('default', { name: 'lim', resource: 'local-process', max_concurrency: 1 });
      expect((await b2.getQueue('default', 'lim')).max_concurrency).toBe(1);
      await b.client.updateQueue('default', 'lim', { max_concurrency: 3 });
      await until(
        async () => ((await b2.getQueue('default', 'lim')).max_concurrency === 3 ? true : undefined),
        WITHIN_MS,
      );
      await b.client.deleteQueue('default', 'lim');
      expect(await refusedWith('NOT_FOUND', () => b2.getQueue('default', 'lim'))).toBe('NOT_FOUND');
      expect((await refusal(b2.push('default', 'lim', { spec: SPEC }))).code).toBe('NOT_FOUND');
    });

    it('checks expiry on every cached read against the server clock', async () => {
      const { key } = await b.client.createKey({
        name: 'expiring',
        role: 'member',
        user: 'ben',
        expires_at: clock + 60_000,
      });
      await expect(onB(key).whoami()).resolves.toMatchObject({ key_name: 'expiring' });
      await expect(onB(key).whoami()).resolves.toMatchObject({ key_name: 'expiring' });
      clock += 60_001;
      // No write happened: only the expiry check on the cached entry can refuse it.
      expect((await refusal(onB(key).whoami())).code).toBe('UNAUTHENTICATED');
      clock -= 60_001;
    });

    it.skipIf(backend !== 'postgres')(
      'serves from cache, and drops every cache when the LISTEN connection is lost',
      async () => {
        const { key, id = '' } = await b.client.createKey({ name: 'behind-the-back', role: 'member', user: 'ben' });
        await expect(onB(key).whoami()).resolves.toMatchObject({ key_name: 'behind-the-back' });
        // Deleted in SQL, so no NOTIFY: the replicas keep answering from their caches (this is what caching means).
        await b.exec(`DELETE FROM api_keys WHERE id = '${id}'`);
        await expect(onB(key).whoami()).resolves.toMatchObject({ key_name: 'behind-the-back' });
        // Every bus loses its LISTEN connection: notifications may have been missed, so caches go.
        await b.exec(
          `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND query ILIKE 'LISTEN%'`,
        );
        expect(await refusedWith('UNAUTHENTICATED', () => onB(key).whoami())).toBe('UNAUTHENTICATED');
        // Once the bus is back, the replica caches again (a key deleted in SQL is still served from its cache)...
        await until(async () => {
          const k = await b.client.createKey({ name: 'probe', role: 'member', user: 'ben' });
          await onB(k.key).whoami();
          await b.exec(`DELETE FROM api_keys WHERE id = '${k.id ?? ''}'`);
          return onB(k.key)
            .whoami()
            .then(() => true)
            .catch(() => undefined);
        }, WITHIN_MS);
        // ...and hears invalidations again.
        const again = await b.client.createKey({ name: 'after-reconnect', role: 'member', user: 'ben' });
        await expect(onB(again.key).whoami()).resolves.toMatchObject({ key_name: 'after-reconnect' });
        await b.client.revokeKey(again.id ?? '');
        expect(await refusedWith('UNAUTHENTICATED', () => onB(again.key).whoami())).toBe('UNAUTHENTICATED');
      },
    );
  });
}

const SPEC = { source: { type: 'git' as const, url: 'https://git.example.com/x.git' }, entry_point: ['true'] };
