/**
 * A minimal ustar writer plus the browser's gzip (CompressionStream), enough to upload a directory picked with
 * `<input webkitdirectory>` as the .tar.gz that `POST /api/code-archives` takes. Regular files only, mode 0644
 * (0755 for files that start with "#!"); the same directories as the CLI are skipped.
 */

export const SKIPPED_DIRS = new Set(['.git', 'node_modules', '__pycache__', '.venv']);

export interface TarEntry {
  path: string;
  data: Uint8Array;
  mtimeMs: number;
}

const utf8 = new TextEncoder();

function octal(value: number, width: number): string {
  return value.toString(8).padStart(width - 1, '0') + '\0';
}

function header(path: string, size: number, mode: number, mtimeMs: number): Uint8Array {
  const h = new Uint8Array(512);
  let name = path;
  let prefix = '';
  if (utf8.encode(name).length > 100) {
    const cut = path.lastIndexOf('/', 155);
    if (cut <= 0 || utf8.encode(path.slice(cut + 1)).length > 100) throw new Error(`path too long for tar: ${path}`);
    prefix = path.slice(0, cut);
    name = path.slice(cut + 1);
  }
  const put = (s: string, off: number, len: number) => h.set(utf8.encode(s).subarray(0, len), off);
  put(name, 0, 100);
  put(octal(mode, 8), 100, 8);
  put(octal(0, 8), 108, 8);
  put(octal(0, 8), 116, 8);
  put(octal(size, 12), 124, 12);
  put(octal(Math.floor(mtimeMs / 1000), 12), 136, 12);
  put('        ', 148, 8);
  put('0', 156, 1);
  put('ustar\0', 257, 6);
  put('00', 263, 2);
  put(prefix, 345, 155);
  let sum = 0;
  for (const b of h) sum += b;
  put(octal(sum, 7) + ' ', 148, 8);
  return h;
}

export function tar(entries: readonly TarEntry[]): Uint8Array {
  const parts: Uint8Array[] = [];
  let total = 0;
  for (const e of entries) {
    const exec = e.data[0] === 0x23 && e.data[1] === 0x21;
    const h = header(e.path, e.data.length, exec ? 0o755 : 0o644, e.mtimeMs);
    const pad = (512 - (e.data.length % 512)) % 512;
    parts.push(h, e.data, new Uint8Array(pad));
    total += 512 + e.data.length + pad;
  }
  parts.push(new Uint8Array(1024));
  total += 1024;
  const out = new Uint8Array(total);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

/** Path of a picked file inside the picked directory, or null when it is in a skipped directory. */
export function uploadPath(f: File): string | null {
  const rel = (f.webkitRelativePath || f.name).split('/');
  if (rel.length > 1) rel.shift(); // the picked directory's own name
  if (rel.some((p) => SKIPPED_DIRS.has(p) || p === '..' || p === '' || p === '.')) return null;
  return rel.join('/');
}

/** The files of a picked directory (paths relative to it, skipped dirs left out) as a gzipped tar. */
export async function packFiles(files: readonly File[]): Promise<{ blob: Blob; count: number }> {
  const entries: TarEntry[] = [];
  for (const f of files) {
    const path = uploadPath(f);
    if (path === null) continue;
    entries.push({ path, data: new Uint8Array(await f.arrayBuffer()), mtimeMs: f.lastModified });
  }
  if (entries.length === 0) throw new Error('The directory has no files to upload.');
  entries.sort((a, b) => (a.path < b.path ? -1 : 1));
  const gz = new Blob([tar(entries) as BlobPart]).stream().pipeThrough(new CompressionStream('gzip'));
  return { blob: await new Response(gz).blob(), count: entries.length };
}
