import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { LiftoffClient, readCredentials, type ClaimedItem } from '@liftoff/core';
import { BACKENDS, freshPgDatabase, pgAvailable } from '../../../test/helpers/postgres.js';
import { openPostgres, openSqlite } from '../src/store/database.js';
import { Sweeps } from '../src/store/sweeps.js';
import { startBackendServer } from './factory.js';
import { FakeAgent, GIT_TRIAL, until } from './sweepAgent.js';

/** The sweep controller itself: its lease among replicas, and the bus's wakes that drive it between ticks. */

for (const backend of BACKENDS) {
  describe.skipIf(backend === 'postgres' && !pgAvailable)(`the sweep controller lease on ${backend}`, () => {
    it('one holder at a time: renewed by its holder, taken by another only once expired or released', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'liftoff-lease-'));
      const pgDb = backend === 'postgres' ? await freshPgDatabase() : undefined;
      const { db } = pgDb ? await openPostgres(pgDb.url) : await openSqlite(join(dir, 'liftoff.db'));
      try {
        const sweeps = new Sweeps(db);
        expect(await sweeps.acquireLease('sweeps', 'a', 1_000, 100)).toBe(true);
        // Two replicas asking at once: exactly one wins (the other sees the row held).
        const [b, c] = await Promise.all([
          sweeps.acquireLease('sweeps', 'b', 1_050, 100),
          sweeps.acquireLease('sweeps', 'c', 1_050, 100),
        ]);
        expect([b, c]).toEqual([false, false]);
        expect(await sweeps.acquireLease('sweeps', 'a', 1_090, 100)).toBe(true);
        expect(await sweeps.acquireLease('sweeps', 'b', 1_150, 100)).toBe(false);
        const after = await Promise.all([
          sweeps.acquireLease('sweeps', 'b', 1_200, 100),
          sweeps.acquireLease('sweeps', 'c', 1_200, 100),
        ]);
        expect(after.filter(Boolean).length).toBe(1);
        const winner = after[0] ? 'b' : 'c';
        await sweeps.releaseLease('sweeps', winner === 'b' ? 'c' : 'b');
        expect(await sweeps.acquireLease('sweeps', 'a', 1_210, 100)).toBe(false);
        await sweeps.releaseLease('sweeps', winner);
        expect(await sweeps.acquireLease('sweeps', 'a', 1_220, 100)).toBe(true);
      } finally {
        await db.destroy();
        await pgDb?.drop();
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });
}

/** The controller's fallback tick far beyond the test: trials that come at all came through the bus's wakes. */
const WAKE_ONLY = { sweepTickMs: 600_000, sweepLeaseMs: 600_000 };

for (const backend of BACKENDS) {
  const across = backend === 'postgres' ? ' on another replica' : '';
  describe.skipIf(backend === 'postgres' && !pgAvailable)(`the sweep controller's wakes on ${backend}`, () => {
    it(`a sweep's creation and a trial's end${across} push the next trial without waiting for the tick`, async () => {
      const b = await startBackendServer(backend, WAKE_ONLY);
      try {
        // PostgreSQL: the first server holds the lease before a second replica, which serves every request, joins.
        await until(
          'the first server to lead',
          async () => (await b.query('SELECT holder FROM controller_leases')).length,
        );
        const replica = backend === 'postgres' ? await b.restart(WAKE_ONLY) : undefined;
        const apiKey = readCredentials(join(b.home, '.config', 'liftoff', 'credentials'))?.api_key ?? '';
        const client = replica ? new LiftoffClient({ baseUrl: replica.url, apiKey }) : b.client;
        await client.createQueue('default', { name: 'wakes', resource: 'local-process', resource_args: {} });
        const agent = new FakeAgent(client, 'wake-agent', 'wakes');
        await agent.register(4);
        const sweep = await client.createSweep('default', {
          queue: 'wakes',
          parallel: 1,
          config: { method: 'grid', parameters: { a: { values: [1, 2, 3] } } },
          trial: GIT_TRIAL,
        });
        const claimed: ClaimedItem[] = [];
        for (let i = 0; i < 3; i++) {
          // Trial 0 comes from the creation's wake, 1 and 2 each from the previous trial's end.
          const [item] = await until(
            `trial ${i}`,
            async () => {
              const got = await agent.take(1, 500);
              return got.length > 0 && got;
            },
            15_000,
          );
          claimed.push(item as ClaimedItem);
          await agent.end(item?.item_id ?? '', i === 1 ? 'failed' : 'finished');
        }
        expect(claimed.map((i) => i.spec.run_config)).toEqual([{ a: 1 }, { a: 2 }, { a: 3 }]);
        const done = await until(
          'the grid to finish',
          async () => {
            const s = await client.getSweep('default', sweep.id);
            return s.state === 'finished' && s;
          },
          15_000,
        );
        expect(done.trials?.map((t) => t.state)).toEqual(['finished', 'failed', 'finished']);
      } finally {
        await b.close();
      }
    });
  });
}
