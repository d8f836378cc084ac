import { randomBytes } from 'node:crypto';
import { chmod, cp, mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { extractArchive } from '@liftoff/core';
import { MAX_LISTED_ENTRIES, copyTree, listTree, type TreeEntry } from './archiveTree.js';
import { handOver, type FileOwner } from './workDirAccess.js';

/** How many extracted archives an agent keeps by default; the least recently used go first. */
export const ARCHIVE_CACHE_ENTRIES = 16;

/** Archive ids are server-made (UUIDv7); anything else is never used as a path. */
const ARCHIVE_ID = /^[A-Za-z0-9-]{1,64}$/;

/**
 * Code archives, extracted once per agent and copied into each run's work dir. An archive id names immutable bytes
 * (the server never reuses one, and an upload of other bytes gets another id), so the id is the key. The cache is
 * the agent's own (0700 under its data dir): a job gets a copy, never the cached tree, so it cannot change what the
 * next run of the same code starts from. Copies keep symlinks as they are (`verbatimSymlinks`: a relative link must
 * not be turned into a path into the cache).
 *
 * What an entry holds is also kept in memory once it was used (its identity and the list of its tree,
 * archiveTree.ts), so that a run's copy is made, and handed over to the job's user, in one pass of creating calls
 * with no reads of the cache; an entry whose files went missing under a running agent is filled again.
 */
export class ArchiveCache {
  private readonly inflight = new Map<string, Promise<string>>();
  /** Entries being copied from right now, by how many runs: never evicted under them. */
  private readonly inUse = new Map<string, number>();
  /** Entry ids in order of last use, oldest first. */
  private order: string[] | undefined;

  constructor(
    private readonly root: string,
    private readonly maxEntries = ARCHIVE_CACHE_ENTRIES,
    /** Trees with more entries are copied by fs.cp and handed over by a walk (archiveTree.ts). */
    private readonly maxListed = MAX_LISTED_ENTRIES,
  ) {}

  /** Identity and tree list of entries known complete, by id (dropped when evicted). */
  private readonly known = new Map<string, { identity: string; tree: TreeEntry[] | undefined }>();

  /**
   * Puts archive `id`'s tree into `dir` (which must exist and be empty), owned by `owner` when given (every entry,
   * as workDirAccess.ts handOver leaves them) and 0700 at its top, and returns the archive's identity
   * (`code:<sha256>`). `download` runs only when the archive is not cached yet, once however many runs ask at once.
   */
  async copyInto(
    id: string,
    dir: string,
    download: () => Promise<Uint8Array>,
    hash: (data: Uint8Array) => string,
    owner?: FileOwner,
  ): Promise<string> {
    if (!ARCHIVE_ID.test(id)) throw new Error(`Refused code archive id "${id}".`);
    this.inUse.set(id, (this.inUse.get(id) ?? 0) + 1);
    try {
      const remembered = this.known.get(id);
      if (remembered?.tree) {
        try {
          this.touch(id);
          await copyTree(join(this.root, id, 'tree'), remembered.tree, dir, owner);
          return remembered.identity;
        } catch {
          // The entry changed under the agent (an operator cleaned the cache dir): forgotten, checked and, if need
          // be, filled again below, into an emptied run dir.
          this.known.delete(id);
          await rm(dir, { recursive: true, force: true });
          await mkdir(dir, { mode: 0o700 });
        }
      }
      const entry = await this.entry(id, download, hash);
      let info = this.known.get(id);
      if (!info) {
        const identity = await readFile(join(entry, 'identity'), 'utf8');
        info = { identity, tree: await listTree(join(entry, 'tree'), this.maxListed) };
        this.known.set(id, info);
      }
      const { identity, tree } = info;
      if (tree) await copyTree(join(entry, 'tree'), tree, dir, owner);
      else {
        await cp(join(entry, 'tree'), dir, {
          recursive: true,
          verbatimSymlinks: true,
          force: true,
          errorOnExist: false,
        });
        if (owner) await handOver(dir, owner);
        else await chmod(dir, 0o700);
      }
      return identity;
    } finally {
      const n = (this.inUse.get(id) ?? 1) - 1;
      if (n > 0) this.inUse.set(id, n);
      else this.inUse.delete(id);
    }
  }

  private async entry(
    id: string,
    download: () => Promise<Uint8Array>,
    hash: (data: Uint8Array) => string,
  ): Promise<string> {
    await this.loadOrder();
    const dir = join(this.root, id);
    const present = await stat(join(dir, 'identity')).then(
      () => true,
      () => false,
    );
    if (present) {
      this.touch(id);
      return dir;
    }
    let pending = this.inflight.get(id);
    if (!pending) {
      pending = this.fill(id, dir, download, hash).finally(() => this.inflight.delete(id));
      this.inflight.set(id, pending);
    }
    return pending;
  }

  /** Extracts into a scratch dir and renames it into place, so a crash never leaves a half tree that looks whole. */
  private async fill(
    id: string,
    dir: string,
    download: () => Promise<Uint8Array>,
    hash: (data: Uint8Array) => string,
  ): Promise<string> {
    const data = await download();
    const scratch = join(this.root, `.fill-${id}-${randomBytes(4).toString('hex')}`);
    try {
      await extractArchive(data, join(scratch, 'tree'));
      // The identity file is written last: its presence is what marks an entry complete.
      await writeFile(join(scratch, 'identity'), hash(data), { mode: 0o600 });
      await rm(dir, { recursive: true, force: true });
      await rename(scratch, dir);
    } catch (e) {
      await rm(scratch, { recursive: true, force: true });
      throw e;
    }
    this.touch(id);
    await this.evict();
    return dir;
  }

  private async loadOrder(): Promise<void> {
    if (this.order) return;
    await mkdir(this.root, { recursive: true, mode: 0o700 });
    await chmod(this.root, 0o700);
    const names = await readdir(this.root);
    // Scratch dirs of a fill that died with the agent are removed; complete entries are kept, oldest first.
    const entries: Array<{ id: string; at: number }> = [];
    for (const name of names) {
      if (name.startsWith('.fill-')) await rm(join(this.root, name), { recursive: true, force: true });
      else if (ARCHIVE_ID.test(name)) {
        const at = await stat(join(this.root, name, 'identity')).then(
          (s) => s.mtimeMs,
          () => undefined,
        );
        if (at === undefined) await rm(join(this.root, name), { recursive: true, force: true });
        else entries.push({ id: name, at });
      }
    }
    this.order = entries.sort((a, b) => a.at - b.at).map((e) => e.id);
  }

  private touch(id: string): void {
    const order = (this.order ??= []);
    const i = order.indexOf(id);
    if (i >= 0) order.splice(i, 1);
    order.push(id);
  }

  private async evict(): Promise<void> {
    const order = this.order ?? [];
    const busy = (id: string) => this.inflight.has(id) || this.inUse.has(id);
    let excess = order.length - this.maxEntries;
    for (const id of [...order]) {
      if (excess <= 0) break;
      if (busy(id)) continue;
      order.splice(order.indexOf(id), 1);
      this.known.delete(id);
      excess--;
      await rm(join(this.root, id), { recursive: true, force: true });
    }
  }
}
