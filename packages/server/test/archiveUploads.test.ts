import { readdirSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Header } from 'tar';
import { readCredentials, type LiftoffClient } from '@liftoff/core';
import { BACKENDS, pgAvailable } from '../../../test/helpers/postgres.js';
import { refusal, startBackendServer, type BackendServer } from './factory.js';

/** A .tar.gz of `count` one-byte files (optionally followed by `trailing` bytes after the end marker). */
function archive(count: number, trailing = 0): Buffer {
  const blocks: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    const header = Buffer.alloc(512);
    new Header({ path: `code/f${i}.py`, type: 'File', size: 1, mode: 0o644, mtime: new Date(0) }).encode(header, 0);
    blocks.push(header, Buffer.alloc(512, 0x61));
  }
  blocks.push(Buffer.alloc(1024), Buffer.alloc(trailing));
  return gzipSync(Buffer.concat(blocks));
}

/** Issue 12, point 1: binary bodies only where they belong, archives streamed to disk and checked off the loop. */
for (const backend of BACKENDS) {
  describe.skipIf(backend === 'postgres' && !pgAvailable)(`archive uploads on ${backend}`, () => {
    let s: BackendServer;
    let c: LiftoffClient;
    let key: string;
    beforeAll(async () => {
      s = await startBackendServer(backend, {
        archiveLimits: { compressedBytes: 4 * 1024 * 1024, uncompressedBytes: 64 * 1024 * 1024, entries: 100_000 },
      });
      c = s.client;
      key = readCredentials(join(s.home, '.config', 'liftoff', 'credentials'))?.api_key ?? '';
    });
    afterAll(async () => s.close());
    const send = (path: string, method: string, body: Buffer, type: string) =>
      fetch(`${s.server.url}${path}`, {
        method,
        body: new Uint8Array(body),
        headers: { authorization: `Bearer ${key}`, 'content-type': type },
      });

    it('answers a binary body to any other route with 415 at once and stays up', async () => {
      const res = await send('/api/entities/default', 'PATCH', Buffer.alloc(8 * 1024 * 1024, 1), 'application/gzip');
      expect(res.status).toBe(415);
      expect((await res.text()).length).toBeLessThan(1_000);
      expect((await fetch(`${s.server.url}/healthz`)).status).toBe(200);
    });

    it('names a few of the problems of a body that breaks a rule per element, not all of them', async () => {
      const body = Buffer.from(
        JSON.stringify({ status: 'POLLING', current_jobs: Array.from({ length: 50_000 }, () => 'x') }),
      );
      const res = await send('/api/agents/none/heartbeat', 'POST', body, 'application/json');
      expect(res.status).toBe(400);
      expect((await res.text()).length).toBeLessThan(4_000);
    });

    it('stores an archive and refuses one past the entry cap, leaving no temporary file', async () => {
      const ok = await c.uploadArchive(archive(3));
      expect(ok.size).toBeGreaterThan(0);
      const e = await refusal(c.uploadArchive(archive(100_001)));
      expect(e.code).toBe('SOURCE_REFUSED');
      expect(e.message).toBe('Refused code archive: it has more than 100000 entries.');
      expect(readdirSync(join(s.dataDir, 'archives')).filter((n) => n.endsWith('.tmp'))).toEqual([]);
    });

    it('cuts off an upload past the size cap with 413', async () => {
      const big = gzipSync(
        Buffer.alloc(6 * 1024 * 1024).map(() => Math.floor(Math.random() * 256)),
        { level: 0 },
      );
      const e = await refusal(c.uploadArchive(big));
      expect(e.code).toBe('PAYLOAD_TOO_LARGE');
      expect(e.httpStatus).toBe(413);
      expect(readdirSync(join(s.dataDir, 'archives')).filter((n) => n.endsWith('.tmp'))).toEqual([]);
    });

    /**
     * Sends a body through a raw socket in two parts with a pause: when the server refuses the first part, the client
     * is still writing. Resolves with what came back and whether the second part could be written.
     */
    const sendInTwoParts = (path: string, type: string, first: Buffer, rest: Buffer) =>
      new Promise<{ answer: string; restWritten: boolean }>((resolve, reject) => {
        const url = new URL(s.server.url);
        const sock = connect(Number(url.port), url.hostname);
        let answer = '';
        let restWritten = false;
        sock.on('data', (d: Buffer) => (answer += d.toString('latin1')));
        sock.on('error', (e) => reject(new Error(`${(e as NodeJS.ErrnoException).code ?? e.message}; got: ${answer}`)));
        sock.on('close', () => resolve({ answer, restWritten }));
        sock.write(
          `POST ${path} HTTP/1.1\r\nhost: ${url.host}\r\nauthorization: Bearer ${key}\r\n` +
            `content-type: ${type}\r\ncontent-length: ${first.length + rest.length}\r\n\r\n`,
        );
        sock.write(first);
        setTimeout(() => {
          if (!sock.destroyed) sock.end(rest, () => (restWritten = true));
        }, 300);
      });

    // Closing at once reset the connection under the writer: undici under load reported "unreachable", not the 413.
    it('answers 413 to a client still sending past the cap, and lets it finish sending instead of resetting it', async () => {
      const { answer, restWritten } = await sendInTwoParts(
        '/api/code-archives',
        'application/gzip',
        Buffer.alloc(5 * 1024 * 1024, 7),
        Buffer.alloc(1024 * 1024, 7),
      );
      expect(answer).toMatch(/^HTTP\/1\.1 413 /);
      expect(answer).toContain('PAYLOAD_TOO_LARGE');
      expect(answer.toLowerCase()).not.toContain('connection: close');
      expect(restWritten).toBe(true);
    });

    it('does the same for a JSON body past the body limit, refused before any of it is read', async () => {
      const { answer, restWritten } = await sendInTwoParts(
        '/api/entities/default/queues/default/items',
        'application/json',
        Buffer.alloc(4 * 1024 * 1024, 0x20),
        Buffer.alloc(6 * 1024 * 1024, 0x20),
      );
      expect(answer).toMatch(/^HTTP\/1\.1 413 /);
      expect(answer).toContain('SPEC_TOO_LARGE');
      expect(restWritten).toBe(true);
    });

    it('never inflates what follows the end marker (the gzip-of-zeros stall)', async () => {
      const bomb = archive(1, 256 * 1024 * 1024);
      const started = Date.now();
      const ok = await c.uploadArchive(bomb);
      expect(ok.size).toBeLessThan(1024 * 1024);
      // Inflating 256 MiB alone takes seconds; this bounds the check, it is not a benchmark.
      expect(Date.now() - started).toBeLessThan(5_000);
    });

    it('serves other requests while the worst archive is checked: they finish before it does', async () => {
      const worst = archive(99_000);
      let uploadDone = 0;
      const upload = c.uploadArchive(worst).then((a) => {
        uploadDone = Date.now();
        return a;
      });
      await new Promise((r) => setTimeout(r, 50));
      const finished: number[] = [];
      for (let i = 0; i < 10; i++) {
        await c.listQueues('default');
        finished.push(Date.now());
      }
      await upload;
      expect(uploadDone).toBeGreaterThan(Math.max(...finished));
    });
  });
}
