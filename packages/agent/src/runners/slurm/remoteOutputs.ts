import type { ChildProcess } from 'node:child_process';
import { Unpack, type ReadEntry } from 'tar';

/** What fetching a run's remote output dir brought into the staging dir. */
export interface FetchedOutputs {
  /** More than the cap was announced: the transfer was cut and nothing of it may be uploaded. */
  over: boolean;
  /** Bytes of the regular files announced before the cut (or in all, when not over). */
  bytes: number;
  /** Entries not taken, with why (symlinks, hard links, devices ...), for the run's log. */
  skipped: Array<{ path: string; why: string }>;
}

/** What remoteTarCommand exits with when the run has no output dir: nothing to fetch, not an error. */
export const NO_OUTPUT_DIR = 3;

/**
 * The remote side (docs/outputs.md, Slurm over ssh): the output dir as a tar stream on stdout, made by the cluster's
 * own `tar`, which stores links as links (never follows them) and stays on the dir's file system. The dir itself must
 * be a directory and not a link (the job owns the run dir and could swap it for a link to elsewhere).
 */
export function remoteTarCommand(dir: string): string[] {
  return [
    'sh',
    '-c',
    `[ -d "$1" ] && [ ! -L "$1" ] || exit ${NO_OUTPUT_DIR}; cd -- "$1" && exec tar -cf - --one-file-system .`,
    'sh',
    dir,
  ];
}

/**
 * Unpacks the remote tar stream of `child` (remoteTarCommand run over ssh) into `into`, as hostile input: regular
 * files and directories only (a symlink, hard link, device or FIFO is skipped and named); no absolute or `..` paths
 * (tar's own refusal, `preservePaths` off); owners and permissions not kept (umask 077); and at most `capBytes` of
 * file data: past it the transfer is stopped at once (the ssh process killed), so a job cannot make the agent pull
 * more than the cap. Resolves undefined when the run has no output dir.
 */
export function unpackRemoteOutputs(
  child: ChildProcess,
  into: string,
  capBytes: number,
): Promise<FetchedOutputs | undefined> {
  const out: FetchedOutputs = { over: false, bytes: 0, skipped: [] };
  const unpack = new Unpack({
    cwd: into,
    preserveOwner: false,
    umask: 0o077,
    noMtime: true,
    strict: false,
    filter: (path: string, entry: unknown) => {
      const e = entry as ReadEntry;
      const rel = path.replace(/^\.\//, '');
      if (e.type === 'Directory') return true;
      if (e.type !== 'File' && e.type !== 'OldFile' && e.type !== 'ContiguousFile') {
        if (rel !== '' && rel !== '.') out.skipped.push({ path: rel, why: whyNot(e.type) });
        return false;
      }
      out.bytes += e.size ?? 0;
      if (out.bytes > capBytes && !out.over) {
        out.over = true;
        child.kill('SIGKILL');
      }
      return !out.over;
    },
  });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-2000)));
  unpack.on('warn', (_code: string, message: string) => out.skipped.push({ path: '(archive)', why: message }));
  // Every entry is on disk once the unpacker ends (its pending writes done), not when the stream closes.
  const unpacked = new Promise<void>((resolve, reject) => {
    unpack.on('end', resolve);
    unpack.on('error', reject);
  });
  // Not awaited when there is nothing (an empty stream) or the transfer was cut: its errors are no news then.
  unpacked.catch(() => undefined);
  const exited = new Promise<number | null>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', resolve);
  });
  child.stdout?.pipe(unpack);
  return exited.then(async (code) => {
    if (out.over) return out;
    if (code === NO_OUTPUT_DIR) return undefined;
    if (code !== 0) throw new Error(`tar of the output dir exited ${code}: ${stderr.trim() || 'no output'}`);
    await unpacked;
    return out;
  });
}

function whyNot(type: string): string {
  if (type === 'SymbolicLink') return 'a symlink (only regular files are uploaded)';
  if (type === 'Link') return 'a hard link (only regular files are uploaded)';
  return 'not a regular file (only regular files are uploaded)';
}
