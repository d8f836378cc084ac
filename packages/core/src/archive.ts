import { mkdir } from 'node:fs/promises';
import { isAbsolute, posix } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Parser, extract, type ReadEntry } from 'tar';
import { SourceRefusedError } from './errors.js';

const ALLOWED_TYPES = new Set(['File', 'OldFile', 'ContiguousFile', 'Directory', 'SymbolicLink', 'Link']);

/** Why an entry would escape the extraction directory, or undefined when it stays inside. */
export function entryEscapes(path: string, type: string, linkpath?: string): string | undefined {
  if (!ALLOWED_TYPES.has(type)) return `entry "${path}" is a ${type}, which code archives may not contain`;
  if (isAbsolute(path) || /^[A-Za-z]:[\\/]/.test(path)) return `entry "${path}" has an absolute path`;
  const norm = posix.normalize(path.replace(/\\/g, '/'));
  if (norm === '..' || norm.startsWith('../') || path.split(/[\\/]/).includes('..')) {
    return `entry "${path}" climbs out of the archive with ".."`;
  }
  if ((type === 'SymbolicLink' || type === 'Link') && linkpath !== undefined) {
    if (isAbsolute(linkpath)) return `link "${path}" points to the absolute path "${linkpath}"`;
    // "y/.." is only "." on paper: if y is itself a link (to "." say), the kernel resolves it first and ".." then
    // climbs out. Leading ".." segments are safe, as node-tar never creates an entry inside a link.
    const segments = linkpath.split(/[\\/]/).filter((s) => s !== '' && s !== '.');
    const firstName = segments.findIndex((s) => s !== '..');
    if (firstName >= 0 && segments.slice(firstName).includes('..')) {
      return `link "${path}" has ".." after a name in its target ("${linkpath}"), which can lead out through another link`;
    }
    const base = type === 'Link' ? '.' : posix.dirname(norm);
    const target = posix.normalize(posix.join(base, linkpath.replace(/\\/g, '/')));
    if (target === '..' || target.startsWith('../')) return `link "${path}" points outside the archive ("${linkpath}")`;
  }
  return undefined;
}

/**
 * Reads every header of a .tar.gz and refuses the whole archive if any entry would land outside the directory it
 * is unpacked into (absolute paths, "..", links pointing out, devices). node-tar would skip such entries with a
 * warning; a code archive that tries this is refused instead, so nobody runs half an archive.
 */
export async function assertSafeArchive(data: Uint8Array): Promise<{ entries: number }> {
  let entries = 0;
  let problem: string | undefined;
  const parser = new Parser({
    strict: true,
    onReadEntry: (entry: ReadEntry) => {
      entries += 1;
      problem ??= entryEscapes(entry.path, entry.type, entry.linkpath);
      entry.resume();
    },
  });
  try {
    await pipeline(Readable.from([data]), parser);
  } catch (e) {
    throw new SourceRefusedError(`Refused code archive: it is not a valid .tar.gz (${(e as Error).message}).`);
  }
  if (problem) throw new SourceRefusedError(`Refused code archive: ${problem}.`);
  return { entries };
}

/**
 * The mode an extracted entry gets: directories 0755, files 0755 when the archive gave them any execute bit, else
 * 0644. setuid, setgid and sticky bits, and write access for anyone but the owner, never survive, so an archive
 * cannot plant a setuid binary (or a world-writable file) for a job to use.
 */
export function cappedMode(type: string, mode: number | undefined): number {
  if (type === 'Directory') return 0o755;
  return (mode ?? 0) & 0o111 ? 0o755 : 0o644;
}

/**
 * Validates, then unpacks a .tar.gz into `dir` (created if needed). Owners are never taken from the archive (node-tar
 * would, when run as root) and modes are capped (`cappedMode`).
 */
export async function extractArchive(data: Uint8Array, dir: string): Promise<void> {
  await assertSafeArchive(data);
  await mkdir(dir, { recursive: true });
  await pipeline(
    Readable.from([data]),
    extract({
      cwd: dir,
      strict: true,
      preservePaths: false,
      preserveOwner: false,
      noChmod: false,
      umask: 0o022,
      filter: (_path, entry) => {
        if ('type' in entry && entry.type !== 'SymbolicLink') entry.mode = cappedMode(entry.type, entry.mode);
        return true;
      },
    }),
  );
}
