import { constants, createReadStream } from 'node:fs';
import { lstat, open, readdir, statfs, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { OUTPUT_PATH_MAX_DEPTH, checkOutputPath } from '@liftoff/core';

export interface CollectedFile {
  /** The output's path, "/"-separated, relative to the dir. */
  rel: string;
  abs: string;
  size: number;
}

/** Most files one run's outputs hold (the server's default per-run count limit). */
const MAX_FILES = 10_000;

/**
 * What a run left in its output dir: regular files only. The job controls the dir, so it is read as hostile:
 * symlinks are never followed (a link to the agent's files would otherwise be uploaded with the agent's rights) and
 * are skipped with a note, like sockets, FIFOs and devices; names the server would refuse are skipped with a note.
 * It is read after the job ended (a container removed, a job user's processes killed), so nothing changes it
 * meanwhile; files are opened with O_NOFOLLOW all the same (upload.ts).
 *
 * `over`: set when the dir holds more than the cap, or a capped (tmpfs) dir is full, where the job's last writes
 * failed with ENOSPC and a file may be cut short: then nothing is uploaded (the caller says why).
 */
export async function collectOutputs(
  root: string,
  capBytes: number,
  capped: boolean,
  note: (line: string) => void,
  /** Only files of this uid (a Slurm job's dir on a shared filesystem, where a job could hard-link others' files). */
  ownerUid?: number,
): Promise<{ files: CollectedFile[]; total: number; over: boolean }> {
  const files: CollectedFile[] = [];
  let total = 0;
  const walk = async (dir: string, rel: string, depth: number): Promise<void> => {
    const names = (await readdir(dir)).sort();
    for (const name of names) {
      const abs = join(dir, name);
      const r = rel ? `${rel}/${name}` : name;
      const st = await lstat(abs);
      if (st.isDirectory()) {
        if (depth + 1 >= OUTPUT_PATH_MAX_DEPTH) note(`outputs: skipped ${JSON.stringify(r)}: nested too deep`);
        else await walk(abs, r, depth + 1);
        continue;
      }
      if (!st.isFile()) {
        note(
          `outputs: skipped ${JSON.stringify(r)}: ${st.isSymbolicLink() ? 'a symlink' : 'not a regular file'} (only regular files are uploaded)`,
        );
        continue;
      }
      if (ownerUid !== undefined && st.uid !== ownerUid) {
        note(`outputs: skipped ${JSON.stringify(r)}: it belongs to uid ${st.uid}, not the job's user`);
        continue;
      }
      try {
        checkOutputPath(r);
      } catch (e) {
        note(`outputs: skipped a file: ${(e as Error).message}`);
        continue;
      }
      if (files.length >= MAX_FILES) {
        note(`outputs: more than ${MAX_FILES} files; the rest are not uploaded`);
        return;
      }
      files.push({ rel: r, abs, size: st.size });
      total += st.size;
    }
  };
  await walk(root, '', 0);
  let over = total > capBytes;
  if (capped && !over) {
    const fs = await statfs(root);
    over = fs.bavail === 0;
  }
  return { files, total, over };
}

/** Opens a collected file for reading without following a symlink put in its place, and checks it is still one. */
export async function openOutput(file: CollectedFile): Promise<FileHandle> {
  const fh = await open(file.abs, constants.O_RDONLY | constants.O_NOFOLLOW);
  const st = await fh.stat();
  if (!st.isFile() || st.size !== file.size) {
    await fh.close();
    throw new Error(`${file.rel} changed while the outputs were collected`);
  }
  return fh;
}

/** The file's bytes from `start`, read through the handle (which stays open). */
export function readFrom(fh: FileHandle, start: number): AsyncIterable<Buffer> {
  return createReadStream('', {
    fd: fh.fd,
    start,
    autoClose: false,
    highWaterMark: 1024 * 1024,
  }) as AsyncIterable<Buffer>;
}
