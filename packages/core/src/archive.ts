import { mkdir } from 'node:fs/promises';
import { isAbsolute, posix } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
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

/** Caps on what one code archive may hold, checked by the server at upload and again by the agent before it unpacks. */
export interface ArchiveLimits {
  /** Size of the .tar.gz itself. */
  compressedBytes: number;
  /** Sum of the entries' sizes once unpacked. */
  uncompressedBytes: number;
  entries: number;
}

export const DEFAULT_ARCHIVE_LIMITS: ArchiveLimits = {
  compressedBytes: 512 * 1024 * 1024,
  uncompressedBytes: 2 * 1024 * 1024 * 1024,
  entries: 100_000,
};

const MIB = 1024 * 1024;
const size = (n: number) => (n >= MIB ? `${Math.round(n / MIB)} MiB` : `${n} bytes`);

/**
 * Reads every header of a .tar.gz and refuses the whole archive if any entry would land outside the directory it
 * is unpacked into (absolute paths, "..", links pointing out, devices), or if it holds more than `limits` allow. node-
 * tar would skip escaping entries with a warning; a code archive that tries this is refused instead, so nobody runs
 * half an archive. Sizes are taken from the headers, so an archive declaring too much is refused before its data is
 * inflated; reading stops at the archive's end marker, so trailing data (a gzip of zeros, say) is never inflated.
 */
export async function assertSafeArchive(
  data: Uint8Array | Readable,
  limits: ArchiveLimits = DEFAULT_ARCHIVE_LIMITS,
): Promise<{ entries: number; bytes: number }> {
  let entries = 0;
  let bytes = 0;
  let problem: string | undefined;
  const source = data instanceof Readable ? data : Readable.from([data]);
  const parser = new Parser({
    strict: true,
    onReadEntry: (entry: ReadEntry) => {
      entries += 1;
      bytes += entry.size;
      problem ??= entryEscapes(entry.path, entry.type, entry.linkpath);
      if (entries > limits.entries) problem ??= `it has more than ${limits.entries} entries`;
      if (bytes > limits.uncompressedBytes) problem ??= `it unpacks to more than ${size(limits.uncompressedBytes)}`;
      if (problem) parser.abort(new Error(problem));
      entry.resume();
    },
  });
  let compressed = 0;
  try {
    await new Promise<void>((resolve, reject) => {
      // Inflated here, chunk by chunk, rather than by the parser (which inflates all it is given): at the archive's
      // end-of-archive marker the inflater is destroyed, so trailing data (a gzip of zeros, say) is never inflated.
      const gunzip = createGunzip();
      let settled = false;
      const finish = (err?: unknown) => {
        if (settled) return;
        settled = true;
        source.destroy();
        gunzip.destroy();
        if (err) reject(err instanceof Error ? err : new Error('the archive stream failed'));
        else resolve();
      };
      parser.on('eof', () => finish());
      parser.on('end', () => finish());
      parser.on('error', finish);
      parser.on('abort', finish);
      gunzip.on('error', finish);
      source.on('error', finish);
      gunzip.on('data', (chunk: Buffer) => parser.write(chunk));
      gunzip.on('end', () => parser.end());
      source.on('data', (chunk: Buffer | string) => {
        compressed += chunk.length;
        if (compressed > limits.compressedBytes) {
          problem ??= `it is larger than ${size(limits.compressedBytes)}`;
          return finish(new Error(problem));
        }
        gunzip.write(chunk);
      });
      source.on('end', () => gunzip.end());
    });
  } catch (e) {
    if (problem) throw new SourceRefusedError(`Refused code archive: ${problem}.`);
    throw new SourceRefusedError(`Refused code archive: it is not a valid .tar.gz (${(e as Error).message}).`);
  }
  if (problem) throw new SourceRefusedError(`Refused code archive: ${problem}.`);
  return { entries, bytes };
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
export async function extractArchive(
  data: Uint8Array,
  dir: string,
  limits: ArchiveLimits = DEFAULT_ARCHIVE_LIMITS,
): Promise<void> {
  await assertSafeArchive(data, limits);
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
