import { readFileSync } from 'node:fs';
import { join, posix } from 'node:path';
import ignore, { type Ignore } from 'ignore';

/** Directories never worth shipping with a code archive, whatever the ignore files say. */
const ALWAYS_SKIPPED = new Set(['.git', 'node_modules', '__pycache__', '.venv', '.mypy_cache', '.pytest_cache']);
/** Read in every directory, in this order: `.liftoffignore` may re-include (`!path`) what `.gitignore` leaves out. */
const IGNORE_FILES = ['.gitignore', '.liftoffignore'];

/**
 * What `liftoff launch --code DIR` leaves out of the archive: the directories above, and whatever the `.gitignore`
 * and `.liftoffignore` files of DIR and its subdirectories exclude, with git's rules (a file's patterns apply below
 * its own directory; a directory left out is not entered, so nothing below it can be re-included). Matching is the
 * `ignore` package's, the gitignore implementation eslint and prettier use.
 *
 * `skip(path, isDir)` takes paths relative to DIR with `/` separators, parents before children (a tar walk's
 * order), and may be called for one path at most once.
 */
export function codeFilter(root: string): (path: string, isDir: boolean) => boolean {
  const rules = new Map<string, Ignore | null>();
  const rulesOf = (dir: string): Ignore | null => {
    let found = rules.get(dir);
    if (found !== undefined) return found;
    found = null;
    for (const name of IGNORE_FILES) {
      let text: string;
      try {
        text = readFileSync(join(root, dir, name), 'utf8');
      } catch {
        continue;
      }
      found ??= ignore();
      found.add(text);
    }
    rules.set(dir, found);
    return found;
  };
  return (path, isDir) => {
    const parts = path.split('/').filter((p) => p !== '' && p !== '.');
    if (!parts.length) return false;
    if (parts.some((p) => ALWAYS_SKIPPED.has(p))) return true;
    // Each ancestor's rules see the path relative to that ancestor; the deepest file that decides wins (git's order).
    let skipped = false;
    for (let depth = 0; depth < parts.length; depth++) {
      const dir = parts.slice(0, depth).join('/');
      const r = rulesOf(dir);
      if (!r) continue;
      const rel = posix.join(...parts.slice(depth)) + (isDir ? '/' : '');
      const verdict = r.test(rel);
      if (verdict.ignored) skipped = true;
      else if (verdict.unignored) skipped = false;
    }
    return skipped;
  };
}
