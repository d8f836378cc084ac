import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { extractArchive } from '@liftoff/core';
import { codeDir } from '../helpers/jobs.js';
import { cleanupAll, cli, startServer, tempDir, type TestServer } from '../helpers/procs.js';

/** Issue 17: `liftoff launch --code` shows how far the upload of a large archive is, and the bytes arrive whole. */
describe('code upload progress', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startServer();
  });
  afterAll(cleanupAll);

  it('prints a line per quarter of a large archive (not a terminal here) and the server gets every byte', async () => {
    const dir = codeDir({ 'main.py': 'print(1)\n' });
    // Random bytes do not compress: the archive stays about this big.
    const blob = randomBytes(3 * 1024 * 1024);
    writeFileSync(join(dir, 'weights.bin'), blob);
    const r = await cli(['launch', '--code', dir, '-E', 'python3 main.py', '--json'], server.env);
    expect(r.code).toBe(0);
    const lines = r.output.split('\n').filter((l) => l.startsWith('uploading the code archive of '));
    // One line as each quarter is entered, the last at 100%.
    const pcts = lines.map((l) => Number(l.replace(/.*\((\d+)%\)$/, '$1')));
    expect(pcts.map((p) => Math.floor(p / 25))).toEqual([0, 1, 2, 3, 4]);
    expect(lines.at(-1)).toMatch(/: 3\.0 of 3\.0 MiB \(100%\)$/);
    const item = JSON.parse(r.output.slice(r.output.indexOf('{'))) as { spec: { source: { archive_id: string } } };
    const out = tempDir();
    await extractArchive(await server.client.downloadArchive(item.spec.source.archive_id), out);
    expect(readFileSync(join(out, 'weights.bin')).equals(blob)).toBe(true);
  });

  it('prints nothing for a small archive', async () => {
    const r = await cli(['launch', '--code', codeDir({ 'a.py': 'x' }), '-E', 'python3 a.py'], server.env);
    expect(r.code).toBe(0);
    expect(r.output).not.toContain('uploading');
  });
});
