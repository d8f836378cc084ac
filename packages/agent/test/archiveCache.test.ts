import {
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { LiftoffClient } from '@liftoff/core';
import { packDirectory } from '@liftoff/cli';
import { ArchiveCache } from '../src/archiveCache.js';
import { fetchSource } from '../src/sources.js';

/** A client serving archives from memory and counting downloads. */
class CountingClient extends LiftoffClient {
  readonly downloads = new Map<string, number>();
  constructor(private readonly archives: Map<string, Buffer>) {
    super({ baseUrl: 'http://127.0.0.1:9', apiKey: 'x' });
  }
  override async downloadArchive(id: string): Promise<Buffer> {
    this.downloads.set(id, (this.downloads.get(id) ?? 0) + 1);
    await new Promise((r) => setTimeout(r, 20));
    const data = this.archives.get(id);
    if (!data) throw new Error(`no archive ${id}`);
    return data;
  }
}

/** Issue 20: a code archive is downloaded and extracted once per agent, and each run gets a copy of its own. */
describe('the agent archive cache', () => {
  const dirs: string[] = [];
  const temp = () => {
    const d = mkdtempSync(join(tmpdir(), 'liftoff-cache-'));
    dirs.push(d);
    return d;
  };
  afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

  async function archive(files: Record<string, string>, links: Record<string, string> = {}): Promise<Buffer> {
    const src = temp();
    for (const [path, text] of Object.entries(files)) {
      mkdirSync(join(src, path, '..'), { recursive: true });
      // Scripts are executable, which the copies must keep.
      writeFileSync(join(src, path), text, { mode: path.endsWith('.sh') ? 0o755 : 0o644 });
    }
    for (const [path, target] of Object.entries(links)) symlinkSync(target, join(src, path));
    return Buffer.from(await packDirectory(src));
  }

  const fetch = (
    client: LiftoffClient,
    cache: ArchiveCache,
    id: string,
    dir: string,
    owner?: { uid: number; gid: number },
  ) =>
    fetchSource({ type: 'code', archive_id: id }, dir, {
      client,
      env: {},
      say: () => undefined,
      archives: cache,
      ...(owner ? { owner } : {}),
    });

  /** Every entry under `dir` (itself included), without following links: path → [uid, gid, mode bits, kind]. */
  function ownership(dir: string): Record<string, [number, number, number, string]> {
    const out: Record<string, [number, number, number, string]> = {};
    const walk = (rel: string) => {
      const st = lstatSync(join(dir, rel));
      const kind = st.isSymbolicLink() ? 'link' : st.isDirectory() ? 'dir' : 'file';
      out[rel || '.'] = [st.uid, st.gid, kind === 'link' ? 0 : st.mode & 0o7777, kind];
      if (kind === 'dir') for (const e of readdirSync(join(dir, rel))) walk(rel ? `${rel}/${e}` : e);
    };
    walk('');
    return out;
  }

  it('downloads an archive once for many runs, concurrent ones too, each getting a copy of its own', async () => {
    const client = new CountingClient(
      new Map([['a1', await archive({ 'main.py': 'print(1)\n', 'pkg/m.py': 'x = 1\n' })]]),
    );
    const root = join(temp(), 'archive-cache');
    const cache = new ArchiveCache(root);
    const runs = [0, 1, 2].map(() => join(temp(), 'code'));
    const ids = await Promise.all(runs.map((dir) => fetch(client, cache, 'a1', dir)));
    expect(client.downloads.get('a1')).toBe(1);
    expect(new Set(ids).size).toBe(1);
    expect(ids[0]).toMatch(/^code:[0-9a-f]{64}$/);
    // A run changing its code changes its copy only: the next run starts from the archive as uploaded.
    writeFileSync(join(runs[0] as string, 'main.py'), 'tampered\n');
    rmSync(join(runs[1] as string, 'pkg'), { recursive: true });
    const next = join(temp(), 'code');
    await fetch(client, cache, 'a1', next);
    expect(readFileSync(join(next, 'main.py'), 'utf8')).toBe('print(1)\n');
    expect(readFileSync(join(next, 'pkg/m.py'), 'utf8')).toBe('x = 1\n');
    expect(client.downloads.get('a1')).toBe(1);
    // The cache is the agent's alone.
    expect(statSync(root).mode & 0o777).toBe(0o700);
    // A new cache on the same dir (an agent restart) uses what is there.
    await fetch(client, new ArchiveCache(root), 'a1', join(temp(), 'code'));
    expect(client.downloads.get('a1')).toBe(1);
  });

  it('keeps relative symlinks as they are, never pointing into the cache', async () => {
    const client = new CountingClient(
      new Map([['l1', await archive({ 'data/v1.txt': 'one\n' }, { 'current.txt': 'data/v1.txt' })]]),
    );
    const cache = new ArchiveCache(join(temp(), 'archive-cache'));
    for (let i = 0; i < 2; i++) {
      const dir = join(temp(), 'code');
      await fetch(client, cache, 'l1', dir);
      expect(readlinkSync(join(dir, 'current.txt'))).toBe('data/v1.txt');
      expect(readFileSync(join(dir, 'current.txt'), 'utf8')).toBe('one\n');
    }
  });

  it('evicts the least recently used archive past its size, and downloads it again when asked', async () => {
    const client = new CountingClient(
      new Map([
        ['e1', await archive({ 'a.txt': '1' })],
        ['e2', await archive({ 'a.txt': '2' })],
        ['e3', await archive({ 'a.txt': '3' })],
      ]),
    );
    const root = join(temp(), 'archive-cache');
    const cache = new ArchiveCache(root, 2);
    for (const id of ['e1', 'e2', 'e1', 'e3']) await fetch(client, cache, id, join(temp(), 'code'));
    // e2 was the least recently used when e3 came in.
    expect(existsSync(join(root, 'e2'))).toBe(false);
    expect(existsSync(join(root, 'e1'))).toBe(true);
    const dir = join(temp(), 'code');
    await fetch(client, cache, 'e2', dir);
    expect(readFileSync(join(dir, 'a.txt'), 'utf8')).toBe('2');
    expect(client.downloads.get('e2')).toBe(2);
    expect(client.downloads.get('e1')).toBe(1);
  });

  it('throws away half-made entries of an agent that died while filling them, and refuses a hostile id', async () => {
    const root = join(temp(), 'archive-cache');
    mkdirSync(join(root, '.fill-h1-dead'), { recursive: true });
    mkdirSync(join(root, 'h1', 'tree'), { recursive: true });
    writeFileSync(join(root, 'h1', 'tree', 'stale.txt'), 'half');
    const client = new CountingClient(new Map([['h1', await archive({ 'ok.txt': 'whole' })]]));
    const cache = new ArchiveCache(root);
    const dir = join(temp(), 'code');
    await fetch(client, cache, 'h1', dir);
    expect(client.downloads.get('h1')).toBe(1);
    expect(readFileSync(join(dir, 'ok.txt'), 'utf8')).toBe('whole');
    expect(existsSync(join(dir, 'stale.txt'))).toBe(false);
    expect(existsSync(join(root, '.fill-h1-dead'))).toBe(false);
    await expect(fetch(client, cache, '../escape', join(temp(), 'code'))).rejects.toThrow('Refused code archive id');
  });

  const asRoot = process.getuid?.() === 0;
  const tree = { 'main.py': 'print(1)\n', 'bin/run.sh': '#!/bin/sh\n', 'pkg/sub/m.py': 'x = 1\n' };
  const expected = (uid: number) => ({
    '.': [uid, uid, 0o700, 'dir'],
    'main.py': [uid, uid, 0o644, 'file'],
    bin: [uid, uid, 0o755, 'dir'],
    'bin/run.sh': [uid, uid, 0o755, 'file'],
    pkg: [uid, uid, 0o755, 'dir'],
    'pkg/sub': [uid, uid, 0o755, 'dir'],
    'pkg/sub/m.py': [uid, uid, 0o644, 'file'],
    'cur.py': [uid, uid, 0, 'link'],
  });

  it.skipIf(!asRoot)('hands each copy over to its run user as it is made, listed or not', async () => {
    const data = await archive(tree, { 'cur.py': 'pkg/sub/m.py' });
    // Listed (the fast copy) and too big to list (fs.cp and the hand-over walk) end the same.
    for (const maxListed of [100, 2]) {
      const client = new CountingClient(new Map([['o1', data]]));
      const cache = new ArchiveCache(join(temp(), 'archive-cache'), 16, maxListed);
      for (const uid of [61011, 61012]) {
        const dir = join(temp(), 'code');
        await fetch(client, cache, 'o1', dir, { uid, gid: uid });
        expect(ownership(dir)).toEqual(expected(uid));
        expect(readlinkSync(join(dir, 'cur.py'))).toBe('pkg/sub/m.py');
      }
      expect(client.downloads.get('o1')).toBe(1);
    }
  });

  it('copies a tree too big for the synchronous copy (over 32 entries, or a file over 256 KiB) just the same', async () => {
    const many = Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`many/f${i}.txt`, `${i}\n`]));
    const big = { 'big.bin': 'b'.repeat(300 * 1024), 'run.sh': '#!/bin/sh\n' };
    for (const files of [many, big, { ...tree }]) {
      const client = new CountingClient(
        new Map([['t1', await archive(files, { 'cur.txt': Object.keys(files)[0] as string })]]),
      );
      const cache = new ArchiveCache(join(temp(), 'archive-cache'));
      const uid = asRoot ? 61013 : (process.getuid?.() ?? 0);
      for (let i = 0; i < 2; i++) {
        const dir = join(temp(), 'code');
        await fetch(client, cache, 't1', dir, asRoot ? { uid, gid: uid } : undefined);
        for (const [path, text] of Object.entries(files)) expect(readFileSync(join(dir, path), 'utf8')).toBe(text);
        expect(readlinkSync(join(dir, 'cur.txt'))).toBe(Object.keys(files)[0]);
        const own = ownership(dir);
        expect(own['.']).toEqual([uid, uid, 0o700, 'dir']);
        for (const [path, [u, , mode, kind]] of Object.entries(own)) {
          expect(u, path).toBe(uid);
          if (path.endsWith('.sh')) expect(mode, path).toBe(0o755);
          else if (kind === 'file') expect(mode, path).toBe(0o644);
        }
      }
    }
  });

  it("without a run user, a copy is the agent's, 0700 at the top", async () => {
    const client = new CountingClient(new Map([['o2', await archive(tree, { 'cur.py': 'pkg/sub/m.py' })]]));
    const cache = new ArchiveCache(join(temp(), 'archive-cache'));
    const me = process.getuid?.() ?? 0;
    for (let i = 0; i < 2; i++) {
      const dir = join(temp(), 'code');
      await fetch(client, cache, 'o2', dir);
      expect(ownership(dir)).toEqual(expected(me));
    }
  });

  it('fills an entry again when its files went missing under a running agent', async () => {
    const client = new CountingClient(new Map([['m1', await archive(tree)]]));
    const root = join(temp(), 'archive-cache');
    const cache = new ArchiveCache(root);
    await fetch(client, cache, 'm1', join(temp(), 'code'));
    // An operator cleans the cache dir; the agent still remembers the entry's listing.
    rmSync(join(root, 'm1'), { recursive: true });
    const dir = join(temp(), 'code');
    await fetch(client, cache, 'm1', dir);
    expect(client.downloads.get('m1')).toBe(2);
    expect(readFileSync(join(dir, 'pkg/sub/m.py'), 'utf8')).toBe('x = 1\n');
    expect(Object.keys(ownership(dir)).sort()).toEqual(
      Object.keys(expected(0))
        .filter((k) => k !== 'cur.py')
        .sort(),
    );
  });
});
