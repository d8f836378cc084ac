import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { promisify } from 'node:util';
import {
  SourceFetchError,
  assertSafeGitRef,
  assertSafeGitUrl,
  extractArchive,
  type Env,
  type JobSource,
  type LiftoffClient,
} from '@liftoff/core';

const run = promisify(execFile);

/**
 * git transports allowed while cloning, including for submodules and redirects: `ext::` and friends would let a
 * repository run commands on the agent's machine.
 */
const GIT_PROTOCOL_ARGS = [
  '-c',
  'protocol.allow=never',
  '-c',
  'protocol.https.allow=always',
  '-c',
  'protocol.ssh.allow=always',
  '-c',
  'protocol.file.allow=always',
];

export interface SourceDeps {
  client: LiftoffClient;
  /** Base environment for git (PATH, HOME, SSH agent, proxies). */
  env: Env;
  /** Receives progress lines for the run's log. */
  say(line: string): void;
}

/**
 * Materialises a job's code into `dir`: unpacks an uploaded code archive or clones a git repository. Returns the
 * source's identity (archive digest, or remote and commit), which image tags are derived from.
 */
export async function fetchSource(
  source: Exclude<JobSource, { type: 'image' }>,
  dir: string,
  deps: SourceDeps,
): Promise<string> {
  await mkdir(dir, { recursive: true });
  if (source.type === 'code') {
    deps.say(`fetching code archive ${source.archive_id}`);
    const data = await deps.client.downloadArchive(source.archive_id);
    await extractArchive(data, dir);
    return `code:${createHash('sha256').update(data).digest('hex')}`;
  }
  return `git:${source.url}@${await cloneGit(source.url, source.ref, dir, deps)}`;
}

async function cloneGit(url: string, ref: string | undefined, dir: string, deps: SourceDeps): Promise<string> {
  // Checked again here although the server validated the spec: the agent must not trust its input.
  assertSafeGitUrl(url);
  if (ref !== undefined) assertSafeGitRef(ref);
  deps.say(`cloning ${url}${ref ? ` at ${ref}` : ''}`);
  const env = { ...deps.env, GIT_TERMINAL_PROMPT: '0', GIT_ASKPASS: 'true' } as NodeJS.ProcessEnv;
  const git = async (args: string[], cwd?: string) => {
    try {
      return (await run('git', [...GIT_PROTOCOL_ARGS, ...args], { cwd, env, maxBuffer: 16 * 1024 * 1024 })).stdout;
    } catch (e) {
      const stderr = String((e as { stderr?: string }).stderr ?? '').trim();
      throw new SourceFetchError(`git ${args[0] ?? ''} failed for ${url}: ${stderr || (e as Error).message}`, e);
    }
  };
  await git(['clone', '--quiet', '--no-checkout', '--', url, dir]);
  let commit: string | undefined;
  if (ref) {
    for (const candidate of [`origin/${ref}`, ref]) {
      commit = await git(['rev-parse', '--verify', '--quiet', '--end-of-options', `${candidate}^{commit}`], dir).then(
        (out) => out.trim(),
        () => undefined,
      );
      if (commit) break;
    }
    if (!commit)
      throw new SourceFetchError(`git ref "${ref}" was not found in ${url}; check the branch, tag or commit.`);
  } else {
    commit = (await git(['rev-parse', 'HEAD'], dir)).trim();
  }
  await git(['checkout', '--quiet', '--detach', commit], dir);
  await git(['submodule', 'update', '--init', '--recursive', '--quiet'], dir);
  deps.say(`checked out ${commit}`);
  return commit;
}
