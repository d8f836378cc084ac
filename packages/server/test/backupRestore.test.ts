import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { create as createTar } from 'tar';
import { LiftoffClient, readCredentials } from '@liftoff/core';
import { startServer } from '@liftoff/server';
import { freshPgDatabase, pgAvailable } from '../../../test/helpers/postgres.js';

const dirs: string[] = [];
const temp = () => {
  const d = mkdtempSync(join(tmpdir(), 'liftoff-restore-'));
  dirs.push(d);
  return d;
};
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

async function archiveOf(dir: string): Promise<Buffer> {
  writeFileSync(join(dir, 'train.py'), 'print("hello")\n');
  const chunks: Buffer[] = [];
  for await (const b of createTar({ gzip: true, cwd: dir, portable: true }, ['train.py']) as AsyncIterable<Buffer>)
    chunks.push(b);
  return Buffer.concat(chunks);
}

/** Fills a server with a queue, an uploaded archive and a pending item; returns what must survive a restore. */
async function seed(client: LiftoffClient) {
  await client.createQueue('default', { name: 'kept', resource: 'local-process', max_concurrency: 3 });
  const archive = await client.uploadArchive(await archiveOf(temp()));
  await client.setSecret('default', 'KEPT', 'kept-secret-value');
  const item = await client.push('default', 'kept', {
    spec: {
      source: { type: 'code', archive_id: archive.id },
      entry_point: ['python3', 'train.py'],
      secret_env: { TOKEN: 'KEPT' },
    },
  });
  return { archive, item };
}

async function expectRestored(client: LiftoffClient, seeded: Awaited<ReturnType<typeof seed>>) {
  expect((await client.getQueue('default', 'kept')).max_concurrency).toBe(3);
  expect((await client.getItem(seeded.item.id)).state).toBe('pending');
  expect((await client.downloadArchive(seeded.archive.id)).length).toBe(seeded.archive.size);
  // The restored server started, so it holds the key its secrets were encrypted under (it refuses any other).
  expect((await client.listSecrets('default')).secrets.map((s) => s.name)).toEqual(['KEPT']);
}

/** docs/operations.md, followed step by step: a backup taken from a running server restores into a fresh one. */
describe('backup and restore (docs/operations.md)', () => {
  it('SQLite: .backup of the live database plus the archives directory', async () => {
    const home = temp();
    const dataDir = join(home, 'data');
    const server = await startServer({ host: '127.0.0.1', port: 0, dataDir, env: { HOME: home } });
    const key = readCredentials(join(home, '.config', 'liftoff', 'credentials'))?.api_key ?? '';
    const seeded = await seed(new LiftoffClient({ baseUrl: server.url, apiKey: key }));
    const backup = temp();
    execFileSync('sqlite3', [join(dataDir, 'liftoff.db'), `.backup '${join(backup, 'liftoff.db')}'`]);
    cpSync(join(dataDir, 'archives'), join(backup, 'archives'), { recursive: true });
    cpSync(join(dataDir, 'secrets.key'), join(backup, 'secrets.key'));
    await server.close();

    const fresh = join(temp(), 'data');
    mkdirSync(fresh);
    cpSync(backup, fresh, { recursive: true });
    const restored = await startServer({ host: '127.0.0.1', port: 0, dataDir: fresh, env: { HOME: temp() } });
    try {
      await expectRestored(new LiftoffClient({ baseUrl: restored.url, apiKey: key }), seeded);
    } finally {
      await restored.close();
    }
  });

  it.skipIf(!pgAvailable)('PostgreSQL: pg_dump of the live database, pg_restore into an empty one', async () => {
    const source = await freshPgDatabase();
    const target = await freshPgDatabase();
    try {
      const home = temp();
      const opts = { host: '127.0.0.1', port: 0, dataDir: join(home, 'data'), env: { HOME: home } };
      const server = await startServer({ ...opts, databaseUrl: source.url });
      const key = readCredentials(join(home, '.config', 'liftoff', 'credentials'))?.api_key ?? '';
      const seeded = await seed(new LiftoffClient({ baseUrl: server.url, apiKey: key }));
      const dump = join(temp(), 'liftoff.dump');
      execFileSync('pg_dump', ['--format=custom', `--file=${dump}`, source.url]);
      const keyBackup = join(temp(), 'secrets.key');
      cpSync(join(home, 'data', 'secrets.key'), keyBackup);
      await server.close();

      execFileSync('pg_restore', ['--no-owner', `--dbname=${target.url}`, dump]);
      const other = temp();
      const restored = await startServer({
        ...opts,
        dataDir: join(other, 'data'),
        env: { HOME: other },
        databaseUrl: target.url,
        secretsKeyFile: keyBackup,
      });
      try {
        await expectRestored(new LiftoffClient({ baseUrl: restored.url, apiKey: key }), seeded);
      } finally {
        await restored.close();
      }
    } finally {
      await source.drop();
      await target.drop();
    }
  });
});
