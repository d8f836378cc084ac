import { appendFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { OutputTail } from '../src/runners/supervised.js';
import { cleanupAll, tempDir } from '../../../test/helpers/procs.js';

/** The agent's reader of a supervised job's output file (runners/supervised.ts). */
describe('OutputTail', () => {
  afterAll(cleanupAll);

  it('delivers every byte once, in order, a character split across reads and writes kept whole', async () => {
    const path = join(tempDir('liftoff-tail-'), 'output.log');
    let got = '';
    const tail = new OutputTail(path, (t) => (got += t));
    await tail.pump(); // not created yet: nothing, no error
    expect(got).toBe('');
    // Past the largest read (256 KiB), with 2- and 4-byte characters at every alignment.
    const text = Array.from({ length: 60_000 }, (_, i) => `é${i % 7 ? '' : '😀'}line ${i}\n`).join('');
    const bytes = Buffer.from(text, 'utf8');
    for (let at = 0; at < bytes.length;) {
      const end = Math.min(bytes.length, at + 1 + ((at * 7919) % 90_000));
      appendFileSync(path, bytes.subarray(at, end));
      at = end;
      await tail.pump();
      // Whatever is delivered is a prefix of the text; an incomplete character waits for its last bytes.
      expect(text.startsWith(got)).toBe(true);
    }
    await tail.close();
    expect(got).toBe(text);
  });

  it('lets other work run while it reads a large output', async () => {
    const path = join(tempDir('liftoff-tail-'), 'output.log');
    writeFileSync(path, Buffer.alloc(4 * 1024 * 1024, 'a'));
    const events: string[] = [];
    let size = 0;
    const tail = new OutputTail(path, (t) => {
      size += t.length;
      events.push('read');
    });
    setImmediate(() => events.push('other'));
    await tail.pump();
    await tail.close();
    expect(size).toBe(4 * 1024 * 1024);
    // Read in pieces, with the other callback run between two of them rather than after all.
    const other = events.indexOf('other');
    expect(other).toBeGreaterThan(0);
    expect(other).toBeLessThan(events.length - 1);
  });
});
