import { constants } from 'node:fs';
import { createRequire } from 'node:module';
import { lstat, open, readdir, readFile, readlink, realpath, stat } from 'node:fs/promises';
import { join, posix, sep } from 'node:path';
import type { Readable } from 'node:stream';
import type tarStream from 'tar-stream';
import { SourceRefusedError, cappedMode, entryEscapes } from '@liftoff/core';

/**
 * A job's checkout (or unpacked archive) as the agent hands it to Docker: as a build context, or as the per-run
 * copy put into a container. The agent never follows a link of the job's code on the host, never writes into the
 * code, and refuses code whose links lead outside it, so neither the agent nor Docker's builder can be led to a
 * host file.
 */
export interface CodeEntry {
  /** Path relative to the code's root, with "/" separators. */
  rel: string;
  type: 'directory' | 'file' | 'symlink';
  /** Capped mode: 0755 for directories and executable files, else 0644. */
  mode: number;
  size: number;
  linkname?: string;
}

/** A file the agent generates (a Dockerfile, requirements) and adds to the stream instead of writing it to disk. */
export interface GeneratedFile {
  rel: string;
  text: string;
}

/**
 * Every entry under `root`, parents before children, without following links (`lstat`). Throws a
 * SourceRefusedError for a link leading outside the code or a file that is neither file, directory nor link.
 * `skip(rel)` leaves an entry (and what is under it) out.
 */
export async function listCode(root: string, skip: (rel: string) => boolean = () => false): Promise<CodeEntry[]> {
  const realRoot = await realpath(root);
  const out: CodeEntry[] = [];
  const walk = async (dirRel: string): Promise<void> => {
    const names = (await readdir(join(root, dirRel))).sort();
    for (const name of names) {
      const rel = dirRel ? `${dirRel}/${name}` : name;
      if (skip(rel)) continue;
      const abs = join(root, rel);
      const st = await lstat(abs);
      if (st.isDirectory()) {
        out.push({ rel, type: 'directory', mode: 0o755, size: 0 });
        await walk(rel);
      } else if (st.isFile()) {
        out.push({ rel, type: 'file', mode: cappedMode('File', st.mode), size: st.size });
      } else if (st.isSymbolicLink()) {
        const target = await readlink(abs);
        await assertLinkInside(realRoot, abs, rel, target);
        out.push({ rel, type: 'symlink', mode: 0o777, size: 0, linkname: target });
      } else {
        throw new SourceRefusedError(
          `The job's code holds "${rel}", which is not a file, directory or link; remove it from the code.`,
        );
      }
    }
  };
  await walk('');
  return out;
}

/** The archive rule (no absolute or climbing targets), and, when the target exists, its real path must be inside. */
async function assertLinkInside(realRoot: string, abs: string, rel: string, target: string): Promise<void> {
  const why = entryEscapes(rel, 'SymbolicLink', target);
  let outside = why !== undefined;
  if (!outside) {
    const real = await realpath(abs).catch(() => undefined);
    outside = real !== undefined && !isInside(realRoot, real);
  }
  if (outside) {
    throw new SourceRefusedError(
      `The job's code has a link "${rel}" pointing outside it ("${target}"). Links in the code must stay inside it: make it relative to a file of the code, or replace it with the file.`,
    );
  }
}

const isInside = (realRoot: string, real: string): boolean => real === realRoot || real.startsWith(realRoot + sep);

/**
 * Resolves `rel` (which may pass through links of the code) and reads it, or returns undefined when it does not
 * exist. A path that leads outside the code, or to something other than a file, is refused: the agent reads no
 * host file for a job (a Dockerfile, requirements.txt, pyproject.toml linked to /etc/shadow).
 */
export async function readCodeFile(root: string, rel: string, what: string): Promise<string | undefined> {
  const realRoot = await realpath(root);
  const candidate = join(root, posix.normalize(rel));
  let real: string;
  try {
    real = await realpath(candidate);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT' || (e as NodeJS.ErrnoException).code === 'ENOTDIR') {
      // A dangling link is absent too, unless it names a place outside (listCode refuses those in the context).
      return undefined;
    }
    throw e;
  }
  if (!isInside(realRoot, real)) {
    throw new SourceRefusedError(
      `${what} "${rel}" leads outside the job's code through a link; the agent only reads files inside the code.`,
    );
  }
  if (!(await stat(real)).isFile()) {
    throw new SourceRefusedError(`${what} "${rel}" is not a regular file.`);
  }
  return readFile(real, { encoding: 'utf8', flag: constants.O_RDONLY | constants.O_NOFOLLOW });
}

/** Whether `rel` exists inside the code, resolved like `readCodeFile` (false when it leads outside). */
export async function existsInCode(root: string, rel: string): Promise<boolean> {
  const realRoot = await realpath(root);
  const real = await realpath(join(root, posix.normalize(rel))).catch(() => undefined);
  return real !== undefined && isInside(realRoot, real);
}

export interface PackOptions {
  /** Owner of every entry in the stream (the build context: root; a container's work dir: the run's user). */
  uid: number;
  gid: number;
  /** Directory the code lands in, inside the stream ("" for the root, "app" for /app). */
  prefix?: string;
  /** Directories to add before the code, e.g. the parents of `prefix` (owned by root, 0755) or a home dir. */
  dirs?: Array<{ rel: string; uid: number; gid: number; mode: number }>;
  generated?: GeneratedFile[];
}

/**
 * A tar stream of the listed code (read from `root` without following links; each file's size is the one listed),
 * plus generated files. Modes are the capped ones and owners are `uid`/`gid`, never the files' own.
 */
export function packCode(root: string, entries: CodeEntry[], opts: PackOptions): Readable {
  // Loaded here, not at import: tar-stream brings readable-stream and bl (~20 modules, several MB of an agent's RSS)
  // that only container jobs and image builds use. CommonJS, so a synchronous require keeps packCode synchronous.
  const { pack: newPack } = createRequire(import.meta.url)('tar-stream') as typeof tarStream;
  const pack = newPack();
  const at = (rel: string) => (opts.prefix ? `${opts.prefix}/${rel}` : rel);
  const owner = { uid: opts.uid, gid: opts.gid, uname: '', gname: '', mtime: new Date(0) };
  const add = (header: tarStream.Headers, body?: NodeJS.ReadableStream | string): Promise<void> =>
    new Promise((resolve, reject) => {
      if (typeof body !== 'object') {
        pack.entry(header, body ?? '', (err) => (err ? reject(err) : resolve()));
        return;
      }
      const sink = pack.entry(header, (err) => (err ? reject(err) : resolve()));
      body.on('error', reject);
      body.pipe(sink);
    });
  void (async () => {
    for (const d of opts.dirs ?? []) {
      await add({ name: d.rel, type: 'directory', mode: d.mode, uid: d.uid, gid: d.gid, mtime: new Date(0) });
    }
    if (opts.prefix) await add({ name: opts.prefix, type: 'directory', mode: 0o755, ...owner });
    for (const e of entries) {
      if (e.type === 'directory') await add({ name: at(e.rel), type: 'directory', mode: e.mode, ...owner });
      else if (e.type === 'symlink') {
        await add({ name: at(e.rel), type: 'symlink', linkname: e.linkname ?? '', mode: 0o777, ...owner });
      } else {
        const header = { name: at(e.rel), type: 'file' as const, size: e.size, mode: e.mode, ...owner };
        if (!e.size) {
          await add(header, '');
          continue;
        }
        const handle = await open(join(root, e.rel), constants.O_RDONLY | constants.O_NOFOLLOW);
        try {
          await add(header, handle.createReadStream({ start: 0, end: e.size - 1, autoClose: false }));
        } finally {
          await handle.close();
        }
      }
    }
    const listed = new Set(entries.filter((e) => e.type === 'directory').map((e) => e.rel));
    for (const g of opts.generated ?? []) {
      const parts = g.rel.split('/').slice(0, -1);
      for (let i = 1; i <= parts.length; i++) {
        const dir = parts.slice(0, i).join('/');
        if (listed.has(dir)) continue;
        listed.add(dir);
        await add({ name: at(dir), type: 'directory', mode: 0o755, ...owner });
      }
      await add({ name: at(g.rel), type: 'file', mode: 0o644, ...owner, size: Buffer.byteLength(g.text) }, g.text);
    }
    pack.finalize();
  })().catch((err: unknown) => pack.destroy(err as Error));
  return pack;
}
