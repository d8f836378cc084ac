import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { Header } from 'tar';
import { assertSafeArchive, DEFAULT_ARCHIVE_LIMITS } from '../src/archive.js';

/** A tar stream of `count` small files, with `size` declared per file, optionally followed by junk after its end. */
function tarOf(opts: { count: number; declared?: number; data?: number; trailing?: Buffer }): Buffer {
  const blocks: Buffer[] = [];
  for (let i = 0; i < opts.count; i++) {
    const size = opts.declared ?? opts.data ?? 1;
    const block = Buffer.alloc(512);
    new Header({ path: `f${i}`, type: 'File', size, mode: 0o644, mtime: new Date(0) }).encode(block, 0);
    blocks.push(block);
    const data = opts.data ?? 1;
    blocks.push(Buffer.alloc(Math.ceil(data / 512) * 512, 0x61));
  }
  blocks.push(Buffer.alloc(1024));
  if (opts.trailing) blocks.push(opts.trailing);
  return Buffer.concat(blocks);
}

/** Issue 12, point 1: caps on entries, unpacked and packed size, and nothing read past the end marker. */
describe('archive limits', () => {
  const limits = { compressedBytes: 1024 * 1024, uncompressedBytes: 64 * 1024, entries: 100 };

  it('accepts an archive within every limit and reports its size', async () => {
    await expect(assertSafeArchive(gzipSync(tarOf({ count: 10, data: 100 })), limits)).resolves.toEqual({
      entries: 10,
      bytes: 1000,
    });
  });

  it('refuses too many entries, naming the limit', async () => {
    await expect(assertSafeArchive(gzipSync(tarOf({ count: 101 })), limits)).rejects.toThrow(
      'Refused code archive: it has more than 100 entries.',
    );
  });

  it('refuses an archive unpacking past the cap from its headers, before inflating the data', async () => {
    // One header declares 3 GiB; the data is not there at all: the header alone is refused.
    const declared = gzipSync(tarOf({ count: 1, declared: 3 * 1024 ** 3, data: 0 }));
    await expect(assertSafeArchive(declared)).rejects.toThrow(
      'Refused code archive: it unpacks to more than 2048 MiB.',
    );
    await expect(assertSafeArchive(gzipSync(tarOf({ count: 2, data: 40_000 })), limits)).rejects.toThrow(
      'it unpacks to more than 65536 bytes',
    );
  });

  it('refuses a packed archive past its cap', async () => {
    const big = gzipSync(tarOf({ count: 1, data: 200_000 }), { level: 0 });
    await expect(
      assertSafeArchive(big, { ...limits, uncompressedBytes: 1e9, compressedBytes: 100_000 }),
    ).rejects.toThrow('it is larger than 100000 bytes');
  });

  it('stops at the end marker: a gzip of zeros after it is never inflated', async () => {
    const bomb = gzipSync(Buffer.concat([tarOf({ count: 1 }), Buffer.alloc(200 * 1024 * 1024)]));
    const started = process.hrtime.bigint();
    await expect(assertSafeArchive(bomb, DEFAULT_ARCHIVE_LIMITS)).resolves.toEqual({ entries: 1, bytes: 1 });
    // Inflating 200 MiB takes far longer than reading a few blocks; this is a sanity bound, not a benchmark.
    expect(Number(process.hrtime.bigint() - started) / 1e6).toBeLessThan(2_000);
  });
});
