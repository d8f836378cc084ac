import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from './procs.js';

/** A code directory with the given files. */
export function codeDir(files: Record<string, string>): string {
  const dir = tempDir('liftoff-code-');
  for (const [name, body] of Object.entries(files)) {
    mkdirSync(join(dir, name, '..'), { recursive: true });
    writeFileSync(join(dir, name), body);
  }
  return dir;
}

/** A git repository with the given files committed on branch `main`; returns its file:// URL. */
export function gitRepo(files: Record<string, string>): { url: string; dir: string; commit: string } {
  const dir = codeDir(files);
  const git = (...args: string[]) =>
    execFileSync('git', args, {
      cwd: dir,
      env: {
        ...process.env,
        GIT_AUTHOR_NAME: 't',
        GIT_AUTHOR_EMAIL: 't@t',
        GIT_COMMITTER_NAME: 't',
        GIT_COMMITTER_EMAIL: 't@t',
      },
    })
      .toString()
      .trim();
  git('init', '--quiet', '--initial-branch=main');
  git('add', '.');
  git('commit', '--quiet', '-m', 'initial');
  return { url: `file://${dir}`, dir, commit: git('rev-parse', 'HEAD') };
}

/** A job that prints its identity, config and args, then exits with $EXIT_CODE. Run as `node main.mjs`. */
export const PRINT_SCRIPT = `
console.log('hello from', process.env.LIFTOFF_RUN_ID, 'queue', process.env.LIFTOFF_QUEUE);
console.log('config', process.env.LIFTOFF_RUN_CONFIG);
console.log('args', JSON.stringify(process.argv.slice(2)));
process.exitCode = Number(process.env.EXIT_CODE ?? '0');
`;
