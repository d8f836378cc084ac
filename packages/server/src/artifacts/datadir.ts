import { createReadStream } from 'node:fs';
import { mkdir, rename, rm, rmdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
import type { ArtifactStore } from './types.js';

/**
 * Files under `<data dir>/artifacts`, one per chunk: the default of a single server. Replicas do not share a data dir,
 * so a server on PostgreSQL refuses this store (artifacts/index.ts). Directories are 0700 and files 0600, like the
 * rest of the data dir; a chunk is written to a temporary name and renamed, so a crash never leaves a short chunk
 * under its key.
 */
export class DataDirArtifactStore implements ArtifactStore {
  readonly kind = 'datadir';
  readonly chunkBytes = 8 * 1024 * 1024;

  constructor(private readonly root: string) {}

  private file(key: string): string {
    // Keys are server-made ids joined by "/" (types.ts); refusing anything else keeps a bug from writing elsewhere.
    if (!/^[0-9A-Za-z-]+(\/[0-9A-Za-z-]+)*$/.test(key)) throw new Error(`Bad artifact key ${JSON.stringify(key)}.`);
    return join(this.root, ...key.split('/'));
  }

  async put(key: string, data: Buffer): Promise<void> {
    const path = this.file(key);
    await mkdir(dirname(path), { recursive: true, mode: 0o700 });
    const tmp = `${path}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
    try {
      await writeFile(tmp, data, { mode: 0o600 });
      await rename(tmp, path);
    } finally {
      await rm(tmp, { force: true });
    }
  }

  get(key: string): Promise<Readable> {
    const stream = createReadStream(this.file(key));
    // Open errors (a missing chunk) surface here, not half-way through a response.
    return new Promise((resolve, reject) => {
      stream.once('open', () => resolve(stream));
      stream.once('error', reject);
    });
  }

  async delete(keys: readonly string[]): Promise<void> {
    await Promise.all(keys.map((k) => rm(this.file(k), { force: true })));
    // Then the folders the keys emptied (`<run>/<upload>`, `<run>`), deepest first; one another key still holds is
    // left (rmdir refuses a folder that is not empty, so no listing is needed and a concurrent put is never undone).
    const dirs = new Set<string>();
    for (const k of keys) for (let d = dirname(this.file(k)); d !== this.root; d = dirname(d)) dirs.add(d);
    for (const d of [...dirs].sort((a, b) => b.length - a.length)) await rmdir(d).catch(() => undefined);
  }

  async close(): Promise<void> {}
}
