import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import BetterSqlite3 from 'better-sqlite3';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LiftoffError, type LiftoffClient } from '@liftoff/core';
import type { ArtifactStore } from '../src/artifacts/types.js';
import { openSqlite } from '../src/store/database.js';
import { sweepArtifactGarbage } from '../src/store/retention.js';
import { BACKENDS, pgAvailable } from '../../../test/helpers/postgres.js';
import { startBackendServer, startedRun, type BackendServer } from './factory.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Runs one ended run on agent `agent` whose outputs are `files` (uploaded whole and committed): its id. */
async function endedRunWithOutputs(c: LiftoffClient, agent: string, files: Record<string, Buffer>): Promise<string> {
  const run = await startedRun(c, agent);
  for (const [path, data] of Object.entries(files)) {
    const u = await c.startOutputUpload(run, { agent_id: agent, path, size: data.length, sha256: sha(data) });
    await c.putOutputBytes(run, u.upload_id, agent, u.offset, [data], data.length);
  }
  await c.commitOutputs(run, {
    agent_id: agent,
    files: Object.entries(files).map(([path, data]) => ({ path, size: data.length, sha256: sha(data) })),
  });
  await c.reportRun(run, { agent_id: agent, state: 'finished', exit_code: 0 });
  return run;
}

/** One number a query answers, read beside the server (its own connection). */
async function count(b: BackendServer, query: string): Promise<number> {
  if (b.databaseUrl) {
    const client = new pg.Client({ connectionString: b.databaseUrl });
    await client.connect();
    try {
      return Number((await client.query<{ n: string }>(query)).rows[0]?.n);
    } finally {
      await client.end();
    }
  }
  const db = new BetterSqlite3(join(b.dataDir, 'liftoff.db'), { readonly: true });
  try {
    return Number((db.prepare(query).get() as { n: number }).n);
  } finally {
    db.close();
  }
}

async function until(check: () => Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (await check()) return;
    await sleep(100);
  }
  throw new Error(`timed out waiting until ${what}`);
}

/** Issue 17: retention prunes a run's outputs with it, records and stored bytes alike. */
for (const backend of BACKENDS) {
  describe.skipIf(backend === 'postgres' && !pgAvailable)(`outputs under retention on ${backend}`, () => {
    let b: BackendServer;
    beforeAll(async () => {
      // Nothing is pruned until the test has written both runs: keep one ended item per queue.
      b = await startBackendServer(backend, { retention: { maxAgeMs: null, keepPerQueue: 1 }, pruneIntervalMs: 100 });
    });
    afterAll(async () => b.close());

    it('deletes a pruned run’s output records and bytes, and keeps the kept run’s', async () => {
      const c = b.client;
      // Over one chunk (8 MiB on the data dir, 4 MiB in the database), so a file of several stored chunks goes too.
      const big = Buffer.alloc(9 * 1024 * 1024, 7);
      const old = await endedRunWithOutputs(c, 'ra', { 'model.pt': big, 'notes/a.txt': Buffer.from('a') });
      const keptModel = Buffer.from('kept weights');
      await sleep(5); // distinct end times
      const kept = await endedRunWithOutputs(c, 'rb', { 'model.pt': keptModel });

      await until(
        async () =>
          (await count(b, `SELECT count(*) AS n FROM runs WHERE id = '${old}'`)) === 0 &&
          (await count(b, 'SELECT count(*) AS n FROM artifact_garbage')) === 0,
        'the old run and its queued keys are gone',
      );
      expect(await count(b, `SELECT count(*) AS n FROM run_outputs WHERE run_id = '${old}'`)).toBe(0);
      expect(await count(b, `SELECT count(*) AS n FROM run_output_commits WHERE run_id = '${old}'`)).toBe(0);
      // Every chunk left belongs to an output still recorded: none of the pruned run's.
      expect(
        await count(
          b,
          'SELECT count(*) AS n FROM run_output_chunks WHERE output_id NOT IN (SELECT id FROM run_outputs)',
        ),
      ).toBe(0);
      if (backend === 'sqlite') {
        // The data dir store: the pruned run's folder is gone, the kept one's is there.
        const root = join(b.dataDir, 'artifacts');
        expect(existsSync(join(root, old))).toBe(false);
        expect(readdirSync(root)).toEqual([kept]);
      } else {
        // The database store: only the kept run's one chunk is left.
        expect(await count(b, 'SELECT count(*) AS n FROM artifact_chunks')).toBe(1);
        expect(await count(b, `SELECT count(*) AS n FROM artifact_chunks WHERE key LIKE '${kept}/%'`)).toBe(1);
      }
      const refused = await c.listOutputs(old).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(refused instanceof LiftoffError && refused.code).toBe('NOT_FOUND');
      const parts: Buffer[] = [];
      for await (const p of await c.downloadOutput(kept, 'model.pt')) parts.push(p as Buffer);
      expect(Buffer.concat(parts)).toEqual(keptModel);
    });
  });
}

describe('the artifact garbage sweep', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'liftoff-garbage-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('keeps the queued keys when the store fails, and deletes them on the next sweep', async () => {
    const { db } = await openSqlite(join(dir, 'liftoff.db'));
    try {
      const keys = Array.from({ length: 1500 }, (_, i) => `r1/u1/${i}`);
      await db
        .insertInto('artifact_garbage')
        .values(keys.map((key) => ({ key, queued_at: 1 })))
        .execute();
      const deleted: string[] = [];
      let failing = true;
      const store: ArtifactStore = {
        kind: 'database',
        chunkBytes: 1,
        put: () => Promise.resolve(),
        get: () => Promise.reject(new Error('unused')),
        delete: (k) => {
          if (failing) return Promise.reject(new Error('store unreachable'));
          deleted.push(...k);
          return Promise.resolve();
        },
        close: () => Promise.resolve(),
      };
      await expect(sweepArtifactGarbage(db, store)).rejects.toThrow('store unreachable');
      const left = async () =>
        Number(
          (
            await db
              .selectFrom('artifact_garbage')
              .select((e) => e.fn.countAll().as('n'))
              .executeTakeFirstOrThrow()
          ).n,
        );
      expect(await left()).toBe(1500);
      failing = false;
      // One batch per sweep (1,000 keys), the rest on the next.
      expect(await sweepArtifactGarbage(db, store)).toBe(1000);
      expect(await left()).toBe(500);
      expect(await sweepArtifactGarbage(db, store)).toBe(500);
      expect(await sweepArtifactGarbage(db, store)).toBe(0);
      expect(new Set(deleted)).toEqual(new Set(keys));
    } finally {
      await db.destroy();
    }
  });
});
