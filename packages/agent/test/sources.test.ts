import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { LiftoffClient, LiftoffError, ServerUnreachableError } from '@liftoff/core';
import { packDirectory } from '@liftoff/cli';
import { fetchSource } from '../src/sources.js';

/** A client whose archive downloads fail `failures` times before they reach `data`. */
class FlakyClient extends LiftoffClient {
  calls = 0;
  constructor(
    private readonly failures: number,
    private readonly data: Buffer,
    private readonly error: () => Error,
  ) {
    super({ baseUrl: 'http://127.0.0.1:9', apiKey: 'x' });
  }
  override async downloadArchive(): Promise<Buffer> {
    this.calls++;
    if (this.calls <= this.failures) throw this.error();
    return this.data;
  }
}

/** Issue 12 (liveness): a code archive download survives a server restart or blip instead of failing the run. */
describe('fetching a code archive', () => {
  const dirs: string[] = [];
  const temp = () => {
    const d = mkdtempSync(join(tmpdir(), 'liftoff-src-'));
    dirs.push(d);
    return d;
  };
  afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

  it('retries while the server is unreachable, saying so in the run log, then unpacks it', async () => {
    const src = temp();
    const { writeFileSync } = await import('node:fs');
    writeFileSync(join(src, 'main.py'), 'print(1)\n');
    const client = new FlakyClient(
      2,
      Buffer.from(await packDirectory(src)),
      () => new ServerUnreachableError('x', null),
    );
    const said: string[] = [];
    const dir = join(temp(), 'code');
    await fetchSource({ type: 'code', archive_id: 'a' }, dir, { client, env: {}, say: (l) => said.push(l) });
    expect(client.calls).toBe(3);
    expect(readFileSync(join(dir, 'main.py'), 'utf8')).toBe('print(1)\n');
    expect(said.filter((l) => l.includes('retrying'))).toHaveLength(2);
  });

  it('does not retry a refusal (a 4xx will not change by asking again)', async () => {
    const client = new FlakyClient(5, gzipSync(Buffer.alloc(1024)), () => new LiftoffError('NOT_FOUND', 'gone'));
    const dir = join(temp(), 'code');
    await expect(
      fetchSource({ type: 'code', archive_id: 'a' }, dir, { client, env: {}, say: () => undefined }),
    ).rejects.toThrow('gone');
    expect(client.calls).toBe(1);
  });
});
