import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LiftoffClient, type LogReadResponse } from '@liftoff/core';
import { BACKENDS, pgAvailable, type Backend } from '../../../test/helpers/postgres.js';
import { refusal, startBackendServer, startedRun, type BackendServer } from './factory.js';

/**
 * Issue 18, the log viewer's server side: windows of a run's log by byte offset or line, literal search in bounded
 * pages, raw download; on both backends, with hostile queries and stored bytes that are not valid UTF-8.
 */

/** Uploads `text` as the agent would, in pieces of the given sizes (characters), and returns the whole. */
async function upload(c: LiftoffClient, run: string, agent: string, text: string, pieces: number[]): Promise<void> {
  let at = 0;
  let offset = 0;
  for (let i = 0; at < text.length; i++) {
    const piece = text.slice(at, at + (pieces[i % pieces.length] as number));
    offset = (await c.appendLogs(run, agent, offset, piece)).size;
    at += piece.length;
  }
}

/** Every window from 0 to the end, `limit` bytes at most each. */
async function pageAll(c: LiftoffClient, run: string, limit: number): Promise<LogReadResponse[]> {
  const pages: LogReadResponse[] = [];
  for (let offset = 0; ;) {
    const page = await c.readLogWindow(run, { offset, limit });
    pages.push(page);
    if (page.next_offset === page.size) return pages;
    expect(page.next_offset).toBeGreaterThan(offset);
    offset = page.next_offset;
  }
}

/** A chunk written straight into the table (bytes as given, line count unknown as before migration 0020). */
function rawChunkSql(backend: Backend, run: string, offset: number, bytes: Buffer): string {
  const hex = bytes.toString('hex');
  const data = backend === 'postgres' ? `decode('${hex}', 'hex')` : `X'${hex}'`;
  return `INSERT INTO log_chunks (run_id, "offset", size, data, kind) VALUES ('${run}', ${offset}, ${bytes.length}, ${data}, 'output');
    UPDATE runs SET log_size = ${offset + bytes.length}, log_received = ${offset + bytes.length} WHERE id = '${run}';`;
}

const numbered = (n: number) => Array.from({ length: n }, (_, i) => `line ${i + 1} é\n`).join('');

for (const backend of BACKENDS) {
  describe.skipIf(backend === 'postgres' && !pgAvailable)(`log windows, search and download on ${backend}`, () => {
    let b: BackendServer;
    let c: LiftoffClient;

    beforeAll(async () => {
      b = await startBackendServer(backend);
      c = b.client;
    });
    afterAll(async () => {
      await b.close();
    });

    it('pages a log by byte windows on whole lines, numbers them, and starts a window at a line', async () => {
      const run = await startedRun(c, 'pager');
      const text = numbered(2000);
      // Uneven uploads: chunk boundaries fall inside lines and inside the two-byte é.
      await upload(c, run, 'pager', text, [997, 13, 4096, 1]);
      const size = Buffer.byteLength(text);
      const pages = await pageAll(c, run, 700);
      expect(pages.map((p) => p.data).join('')).toBe(text);
      let line = 1;
      for (const p of pages) {
        expect(Buffer.byteLength(p.data)).toBeLessThanOrEqual(700);
        expect(p.data.endsWith('\n')).toBe(true);
        expect(p.line).toBe(line);
        expect(p).toMatchObject({ size, lines: 2000, complete: false });
        line += p.data.split('\n').length - 1;
      }

      const at = await c.readLogWindow(run, { line: 1234, limit: 100 });
      expect(at.data.startsWith('line 1234 é\nline 1235 é\n')).toBe(true);
      expect(at.line).toBe(1234);
      expect(at.offset).toBe(Buffer.byteLength(numbered(1233)));
      // Past the end, by line or by offset: the empty page at the end, never an error.
      for (const past of [
        await c.readLogWindow(run, { line: 2001, limit: 100 }),
        await c.readLogWindow(run, { offset: size + 10_000, limit: 100 }),
      ])
        expect(past).toMatchObject({ offset: size, next_offset: size, data: '', line: 2001, size });

      // The CLI's paging (no limit) still reads whole chunks and now also says where it is.
      const cli = await c.readLogs(run, 0);
      expect(text.startsWith(cli.data)).toBe(true);
      expect(cli).toMatchObject({ offset: 0, line: 1, size, lines: 2000 });
    });

    it('keeps windows on whole characters: a start inside one moves on, a tiny limit still returns one', async () => {
      const run = await startedRun(c, 'utf8');
      await c.appendLogs(run, 'utf8', 0, 'a€b'); // € is 3 bytes: offsets 1..3
      expect(await c.readLogWindow(run, { offset: 2, limit: 10 })).toMatchObject({ offset: 4, data: 'b' });
      expect(await c.readLogWindow(run, { offset: 1, limit: 1 })).toMatchObject({
        offset: 1,
        next_offset: 4,
        data: '€',
      });
      expect(await c.readLogWindow(run, { offset: 0, limit: 2 })).toMatchObject({ next_offset: 1, data: 'a' });
      expect((await c.readLogWindow(run, { offset: 0, limit: 2 })).lines).toBe(1);
      // Refused as the caller's mistake: a limit over the maximum, a zero limit, line 0.
      for (const q of ['limit=0', `limit=${(4 << 20) + 1}`, 'line=0&limit=5', 'offset=-1'])
        expect((await fetch(`${b.server.url}/api/runs/${run}/logs?${q}`, auth(c))).status).toBe(400);
    });

    it('searches literally, case-folded or not, and pages matches with line numbers', async () => {
      const run = await startedRun(c, 'search');
      const text = `${numbered(300)}Epoch 7 loss=.*[x]+(\n${numbered(50)}EPOCH done\nepoch\n`;
      await upload(c, run, 'search', text, [333, 7]);
      const all = await c.searchLogs(run, { q: 'epoch' });
      expect(all.matches.map((m) => m.line)).toEqual([301, 352, 353]);
      for (const m of all.matches)
        expect(
          Buffer.from(text)
            .subarray(m.offset, m.offset + 5)
            .toString()
            .toLowerCase(),
        ).toBe('epoch');
      expect(all).toMatchObject({ next_cursor: null, searched_from: 0, size: Buffer.byteLength(text) });
      expect((await c.searchLogs(run, { q: 'EPOCH', caseSensitive: true })).matches.map((m) => m.line)).toEqual([352]);
      // Regex metacharacters are bytes to find, nothing more.
      const meta = await c.searchLogs(run, { q: '.*[x]+(' });
      expect(meta.matches).toEqual([{ offset: Buffer.byteLength(`${numbered(300)}Epoch 7 loss=`), line: 301 }]);
      expect((await c.searchLogs(run, { q: 'line 4.' })).matches).toHaveLength(0);
      expect((await c.searchLogs(run, { q: 'é\nline 2' })).matches[0]?.line).toBe(1);

      // Paged: two matches a page, the cursor carries on without repeating or skipping one.
      const lines: number[] = [];
      let cursor: number | null = 0;
      while (cursor !== null) {
        const page = await c.searchLogs(run, { q: 'epoch', limit: 2, cursor });
        lines.push(...page.matches.map((m) => m.line));
        cursor = page.next_cursor;
      }
      expect(lines).toEqual([301, 352, 353]);
      // A cursor past the end: nothing, done.
      expect(await c.searchLogs(run, { q: 'epoch', cursor: 10 ** 12 })).toMatchObject({
        matches: [],
        next_cursor: null,
      });
      // A query too long, or empty, is refused before any work.
      for (const q of ['x'.repeat(1025), ''])
        expect((await refusal(c.searchLogs(run, { q }))).code).toBe('BAD_REQUEST');
    });

    it('bounds the bytes one search request reads, and finds a match straddling two requests', async () => {
      const run = await startedRun(c, 'big');
      const budget = 8 << 20;
      // A match whose first byte is the last of the first request's stretch, then one near the end.
      const head = 'y'.repeat(budget - 1);
      const text = `${head}NEEDLE\n${'z'.repeat(1 << 20)}\nNEEDLE at the end\n`;
      await upload(c, run, 'big', text, [3 << 20]);
      const first = await c.searchLogs(run, { q: 'needle' });
      expect(first).toMatchObject({ searched_from: 0, searched_to: budget, next_cursor: budget });
      expect(first.matches).toEqual([{ offset: budget - 1, line: 1 }]);
      const second = await c.searchLogs(run, { q: 'needle', cursor: first.next_cursor ?? 0 });
      expect(second.matches).toEqual([{ offset: Buffer.byteLength(text) - 'NEEDLE at the end\n'.length, line: 3 }]);
      expect(second.next_cursor).toBeNull();
    });

    it('reads and searches stored bytes that are not valid UTF-8, and lines of chunks from before 0020', async () => {
      const run = await startedRun(c, 'raw');
      // Written straight into the store: a cut-off €, a lone continuation byte, an invalid lead byte.
      const bytes = Buffer.concat([
        Buffer.from('ok\n'),
        Buffer.from([0xe2, 0x82]),
        Buffer.from('\nmid'),
        Buffer.from([0x80, 0xff]),
        Buffer.from('FIND me\nlast'),
      ]);
      await b.exec(
        rawChunkSql(backend, run, 0, bytes.subarray(0, 7)) + rawChunkSql(backend, run, 7, bytes.subarray(7)),
      );
      const found = await c.searchLogs(run, { q: 'find' });
      expect(found.matches).toEqual([{ offset: bytes.indexOf('FIND'), line: 3 }]);
      const win = await c.readLogWindow(run, { offset: 0, limit: 1000 });
      expect(win).toMatchObject({ lines: 4, size: bytes.length, line: 1 });
      expect(win.data.startsWith('ok\n')).toBe(true);
      expect(win.data.endsWith('FIND me\nlast')).toBe(true);
      // A window starting on the lone continuation byte skips it, and knows its line.
      const mid = await c.readLogWindow(run, { offset: bytes.indexOf(0x80), limit: 1000 });
      expect(mid).toMatchObject({ line: 3, data: expect.stringMatching(/FIND me\nlast$/) });
      expect(await c.readLogWindow(run, { line: 4, limit: 10 })).toMatchObject({ data: 'last', line: 4 });
      // The raw download hands back the stored bytes exactly.
      const res = await fetch(`${b.server.url}/api/runs/${run}/logs/raw`, auth(c));
      expect(Buffer.from(await res.arrayBuffer()).equals(bytes)).toBe(true);
    });

    it('downloads the raw log as an attachment, streamed in batches, notes included', async () => {
      const run = await startedRun(c, 'dl');
      const text = 'x'.repeat(5 << 20) + '\n';
      await upload(c, run, 'dl', text, [1 << 20]);
      const note = '[liftoff] a note\n';
      await c.appendLogs(run, 'dl', Buffer.byteLength(text), note, 'note');
      // Asked for as it is (fetch would ask for br/gzip): the length is announced.
      const plain = { headers: { ...auth(c).headers, 'accept-encoding': 'identity' } };
      const res = await fetch(`${b.server.url}/api/runs/${run}/logs/raw`, plain);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-disposition')).toBe(`attachment; filename=run-${run}.log`);
      expect(res.headers.get('content-type')).toBe('text/plain; charset=utf-8');
      expect(Number(res.headers.get('content-length'))).toBe(text.length + note.length);
      expect(await res.text()).toBe(text + note);
      // A browser gets it compressed (compression.ts), the same bytes once decoded.
      const compressed = await fetch(`${b.server.url}/api/runs/${run}/logs/raw`, auth(c));
      expect(compressed.headers.get('content-encoding')).toMatch(/^(br|gzip)$/);
      expect(await compressed.text()).toBe(text + note);
      const page = await c.readLogWindow(run, { offset: text.length - 2, limit: 100 });
      expect(page.notes).toEqual([{ offset: text.length, size: note.length }]);
      const empty = await startedRun(c, 'dl-empty');
      const none = await fetch(`${b.server.url}/api/runs/${empty}/logs/raw`, auth(c));
      expect(await none.text()).toBe('');
    });

    it('answers a run outside the caller’s entities as unknown, on every route', async () => {
      const run = await startedRun(c, 'private');
      await c.appendLogs(run, 'private', 0, 'secret line\n');
      await c.createUser('mallory');
      const stranger = new LiftoffClient({
        baseUrl: b.server.url,
        apiKey: (await c.createKey({ name: 'mallory-admin', role: 'admin', user: 'mallory' })).key,
      });
      expect((await refusal(stranger.readLogWindow(run, { limit: 10 }))).code).toBe('NOT_FOUND');
      expect((await refusal(stranger.searchLogs(run, { q: 'secret' }))).code).toBe('NOT_FOUND');
      const raw = await fetch(`${b.server.url}/api/runs/${run}/logs/raw`, auth(stranger));
      expect(raw.status).toBe(404);
      expect(await raw.text()).not.toContain('secret');
      expect((await fetch(`${b.server.url}/api/runs/${run}/logs/raw`)).status).toBe(401);
    });
  });
}

/** Fetch options with the client's key (the raw routes are read with fetch to see headers and bytes). */
function auth(c: LiftoffClient): RequestInit {
  return { headers: { authorization: `Bearer ${(c as unknown as { apiKey: string }).apiKey}` } };
}
