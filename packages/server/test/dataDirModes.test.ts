import { chmodSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { create as createTar } from 'tar';
import { afterAll, describe, expect, it } from 'vitest';
import { LiftoffClient, readCredentials } from '@liftoff/core';
import { startServer } from '@liftoff/server';

const mode = (p: string) => statSync(p).mode & 0o777;
const homes: string[] = [];
afterAll(() => homes.forEach((h) => rmSync(h, { recursive: true, force: true })));

/** A server whose log lines are kept, to see its warnings. */
async function start(h: string, opts: { dataDirMode?: 0o700 | 0o711 } = {}) {
  const lines: Array<{ level: number; msg: string }> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(l) as (typeof lines)[0]);
      done();
    },
  });
  const server = await startServer({
    host: '127.0.0.1',
    port: 0,
    dataDir: join(h, 'data'),
    env: { HOME: h },
    logger: pino({ level: 'warn' }, sink),
    ...opts,
  });
  return { server, lines };
}

/** Issue 12, point 7: any local user could read all tenants' specs and logs (data dir 0755, files 0644). */
describe('data dir modes', () => {
  it('creates the data dir 0700 and its database, WAL, archives and credentials 0600', async () => {
    const h = mkdtempSync(join(tmpdir(), 'liftoff-modes-'));
    homes.push(h);
    const { server } = await start(h);
    try {
      const client = new LiftoffClient({
        baseUrl: server.url,
        apiKey: readCredentials(server.credentialsFile)?.api_key ?? '',
      });
      const chunks: Buffer[] = [];
      for await (const b of createTar({ gzip: true, cwd: h, portable: true }, ['.config']) as AsyncIterable<Buffer>)
        chunks.push(b);
      const archive = await client.uploadArchive(Buffer.concat(chunks));
      const data = join(h, 'data');
      expect(mode(data)).toBe(0o700);
      expect(mode(join(data, 'archives'))).toBe(0o700);
      for (const f of ['liftoff.db', 'liftoff.db-wal', 'liftoff.db-shm'])
        expect([f, mode(join(data, f))]).toEqual([f, 0o600]);
      expect(mode(join(data, 'archives', `${archive.sha256}.tar.gz`))).toBe(0o600);
      expect(mode(server.credentialsFile)).toBe(0o600);
    } finally {
      await server.close();
    }
  });

  it('tightens a looser data dir and files left by an older version at start, with a warning', async () => {
    const h = mkdtempSync(join(tmpdir(), 'liftoff-modes-'));
    homes.push(h);
    const data = join(h, 'data');
    const first = await start(h);
    const client = new LiftoffClient({
      baseUrl: first.server.url,
      apiKey: readCredentials(first.server.credentialsFile)?.api_key ?? '',
    });
    const chunks: Buffer[] = [];
    for await (const b of createTar({ gzip: true, cwd: h, portable: true }, ['.config']) as AsyncIterable<Buffer>)
      chunks.push(b);
    await client.uploadArchive(Buffer.concat(chunks));
    await first.server.close();
    chmodSync(data, 0o755);
    chmodSync(join(data, 'archives'), 0o755);
    chmodSync(join(data, 'liftoff.db'), 0o644);
    const stored = readdirSync(join(data, 'archives')).map((f) => join(data, 'archives', f));
    expect(stored).toHaveLength(1);
    for (const f of stored) chmodSync(f, 0o644);

    const { server, lines } = await start(h);
    try {
      expect(mode(data)).toBe(0o700);
      expect(mode(join(data, 'archives'))).toBe(0o700);
      expect(mode(join(data, 'liftoff.db'))).toBe(0o600);
      for (const f of stored) expect(mode(f)).toBe(0o600);
      const warnings = lines.filter((l) => l.level === 40).map((l) => l.msg);
      expect(warnings).toContain('the data dir was open to other users; tightened it');
      expect(warnings).toContain('files in the data dir were readable by others; made them 0600');
    } finally {
      await server.close();
    }
  });

  it('keeps a data dir shared with job users enterable (0711) but not listable', async () => {
    const h = mkdtempSync(join(tmpdir(), 'liftoff-modes-'));
    homes.push(h);
    const { server, lines } = await start(h, { dataDirMode: 0o711 });
    try {
      expect(mode(join(h, 'data'))).toBe(0o711);
      expect(mode(join(h, 'data', 'archives'))).toBe(0o700);
      expect(lines.filter((l) => l.level === 40).map((l) => l.msg)).toEqual([]);
    } finally {
      await server.close();
    }
  });
});
