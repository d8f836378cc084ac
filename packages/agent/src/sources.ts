import { createHash } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { chmod } from 'node:fs/promises';
import { extractArchive, type Env, type GitAgentConfig, type JobSource, type LiftoffClient } from '@liftoff/core';
import type { ArchiveCache } from './archiveCache.js';
import { cloneGit } from './gitClone.js';
import { withRetry } from './retry.js';
import { handOver, type FileOwner } from './workDirAccess.js';

/** How long a code archive download is retried while the server is unreachable or failing (a restart, a blip). */
export const ARCHIVE_DOWNLOAD_DEADLINE_MS = 2 * 60_000;

export interface SourceDeps {
  client: LiftoffClient;
  /** Base environment for git (PATH, HOME, SSH agent, proxies); used as is only for `credential-hosts`. */
  env: Env;
  /** The agent config's `git` section: file:// opt-in and the hosts that get the agent's credentials. */
  git?: GitAgentConfig;
  /** Receives progress lines for the run's log. */
  say(line: string): void;
  /** Overrides ARCHIVE_DOWNLOAD_DEADLINE_MS (tests). */
  downloadDeadlineMs?: number;
  /** Extracted archives kept by the agent: a code archive is then downloaded once and copied per run. */
  archives?: ArchiveCache;
  /** The job's own user, who gets the code once it is fetched (fetched as the agent: its git credentials stay its own). */
  owner?: FileOwner;
}

/**
 * Materialises a job's code into `dir`: unpacks an uploaded code archive or clones a git repository, then hands it
 * over whole to `deps.owner` when there is one, before the job starts; `dir` ends 0700 either way, so no other job
 * user can look in. Returns the source's identity (archive digest, or remote and commit), which image tags are
 * derived from.
 */
export async function fetchSource(
  source: Exclude<JobSource, { type: 'image' }>,
  dir: string,
  deps: SourceDeps,
): Promise<string> {
  // Synchronous, as the run's other bookkeeping (runState.ts): one call per run, cheaper in CPU than its async form.
  mkdirSync(dir, { recursive: true });
  if (source.type === 'code') {
    const download = () => {
      deps.say(`fetching code archive ${source.archive_id}`);
      return withRetry(() => deps.client.downloadArchive(source.archive_id), {
        deadlineMs: deps.downloadDeadlineMs ?? ARCHIVE_DOWNLOAD_DEADLINE_MS,
        onRetry: (e) => deps.say(`fetching the code archive failed (${(e as Error).message}); retrying`),
      });
    };
    const identity = (data: Uint8Array) => `code:${createHash('sha256').update(data).digest('hex')}`;
    // The cache hands its copy over as it makes it (archiveCache.ts).
    if (deps.archives) return deps.archives.copyInto(source.archive_id, dir, download, identity, deps.owner);
    const data = await download();
    await extractArchive(data, dir);
    await settle(dir, deps.owner);
    return identity(data);
  }
  // The scratch HOME of credential-less git runs sits next to the code, never in it.
  const commit = await cloneGit(source.url, source.ref, dir, `${dir}.git-home`, {
    env: deps.env,
    git: deps.git ?? {},
    say: (line) => deps.say(line),
  });
  await settle(dir, deps.owner);
  return `git:${source.url}@${commit}`;
}

async function settle(dir: string, owner: FileOwner | undefined): Promise<void> {
  if (owner) await handOver(dir, owner);
  else await chmod(dir, 0o700);
}
