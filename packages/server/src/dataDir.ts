import { chmodSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';

/**
 * The data dir holds every tenant's specs, logs and code: readable by the server's user only. 0700, or 0711 when
 * an agent sharing it (`liftoff up` as root) gives jobs users of their own: they must pass through it to their work
 * dirs, and still cannot list it. A looser dir left by an older version or by hand is tightened, with a warning.
 */
export type DataDirMode = 0o700 | 0o711;

const octal = (m: number) => `0${(m & 0o777).toString(8)}`;

/**
 * Before the database opens: the data dir exists with `mode`, its archive dir 0700, and files already there 0600
 * (with a warning when they were not: a fresh database is created 0644 and made 0600 silently, by privateFiles).
 */
export function privateDataDir(dataDir: string, mode: DataDirMode, logger: Logger): void {
  mkdirSync(dataDir, { recursive: true, mode });
  tighten(dataDir, mode, logger, 'data dir');
  const archives = join(dataDir, 'archives');
  mkdirSync(archives, { recursive: true, mode: 0o700 });
  tighten(archives, 0o700, logger, 'archive dir');
  privateFiles(dataDir, logger);
}

/**
 * After the database opened (and, with `logger`, before): its files (SQLite gives -wal and -shm the database file's mode when it creates them)
 * and the stored archives are 0600.
 */
export function privateFiles(dataDir: string, logger?: Logger): void {
  const archives = join(dataDir, 'archives');
  const files = [
    ...['liftoff.db', 'liftoff.db-wal', 'liftoff.db-shm', 'liftoff.db-journal'].map((f) => join(dataDir, f)),
    ...readdirSync(archives).map((f) => join(archives, f)),
  ];
  let loosened = 0;
  for (const f of files) {
    let st;
    try {
      st = statSync(f);
    } catch {
      continue; // not there (yet)
    }
    if (!st.isFile() || (st.mode & 0o777) === 0o600) continue;
    if (st.mode & 0o077) loosened++;
    chmodSync(f, 0o600);
  }
  if (loosened)
    logger?.warn({ dataDir, files: loosened }, 'files in the data dir were readable by others; made them 0600');
}

function tighten(dir: string, mode: number, logger: Logger, what: string): void {
  const was = statSync(dir).mode & 0o777;
  if (was === mode) return;
  chmodSync(dir, mode);
  if (was & ~mode)
    logger.warn({ dir, was: octal(was), now: octal(mode) }, `the ${what} was open to other users; tightened it`);
}
