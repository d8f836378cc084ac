import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { parse as parseYaml } from 'yaml';
import {
  BadRequestError,
  SourceFetchError,
  assertSafeGitRef,
  assertSafeGitUrl,
  type CreateJobVersionBody,
  type Env,
} from '@liftoff/core';
import { compileJobSchema } from '@liftoff/core/jobSchema';
import { connect } from '../connection.js';
import { printJson } from '../output.js';
import type { JobCreateFlags } from './jobs.js';
import { splitCommand, uploadCode } from './launchRun.js';

const run = promisify(execFile);
const COMMIT = /^[0-9a-f]{40}([0-9a-f]{24})?$/;

/**
 * The commit a git ref names on the remote, by `git ls-remote` (spawned without a shell, after the URL and ref
 * were checked): the CLI pins it, so the server never fetches a user's URL. A full commit id is taken as is, since
 * a remote lists only its refs. Preference: the branch, then the tag (peeled to its commit), then e.g. HEAD.
 */
export async function resolveCommit(url: string, ref: string | undefined, env: Env): Promise<string> {
  assertSafeGitUrl(url);
  if (ref !== undefined) assertSafeGitRef(ref);
  if (ref && COMMIT.test(ref)) return ref;
  const want = ref ?? 'HEAD';
  const { LIFTOFF_API_KEY: _key, ...gitEnv } = env;
  let out: string;
  try {
    ({ stdout: out } = await run('git', ['-c', 'protocol.ext.allow=never', 'ls-remote', '--', url], {
      env: { ...gitEnv, GIT_TERMINAL_PROMPT: '0' },
      maxBuffer: 64 * 1024 * 1024,
      timeout: 120_000,
    }));
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new SourceFetchError(`git ls-remote ${url} failed: ${(err.stderr || err.message).trim()}`);
  }
  const refs = new Map<string, string>();
  for (const line of out.split('\n')) {
    const [sha, name] = line.split('\t');
    if (sha && name) refs.set(name, sha);
  }
  const sha =
    refs.get(`refs/heads/${want}`) ??
    refs.get(`refs/tags/${want}^{}`) ??
    refs.get(`refs/tags/${want}`) ??
    refs.get(want);
  if (!sha || !COMMIT.test(sha))
    throw new SourceFetchError(
      `git ref "${want}" was not found in ${url}; check the branch or tag (or give a commit).`,
    );
  return sha;
}

function readSchema(file: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = parseYaml(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new BadRequestError(`--schema ${file}: ${(e as Error).message.split('\n')[0]}`);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed))
    throw new BadRequestError(`--schema ${file}: a JSON Schema is a mapping.`);
  // Checked here as the server will, so a broken schema fails before anything is uploaded.
  compileJobSchema(parsed as Record<string, unknown>);
  return parsed as Record<string, unknown>;
}

export async function createJob(name: string, flags: JobCreateFlags, env: Env): Promise<void> {
  if ([flags.code, flags.git, flags.image].filter(Boolean).length !== 1)
    throw new BadRequestError('Give exactly one source: --code DIR, --git URL or --image IMAGE.');
  if (flags.ref && !flags.git) throw new BadRequestError('--ref only applies to --git.');
  if (!flags.entryPoint && !flags.image)
    throw new BadRequestError('--entry-point (-E) is required for --code and --git jobs.');
  const schema = flags.schema ? readSchema(flags.schema) : null;
  const client = await connect(flags, env);
  const source: CreateJobVersionBody['source'] = flags.image
    ? { type: 'image', image: flags.image }
    : flags.git
      ? { type: 'git', url: flags.git, ref: await resolveCommit(flags.git, flags.ref, env) }
      : { type: 'code', archive_id: await uploadCode(client, flags.code as string, flags.entity) };
  const v = await client.createJobVersion(flags.entity, name, {
    source,
    entry_point: flags.entryPoint ? splitCommand(flags.entryPoint) : [],
    ...(flags.dockerfile ? { dockerfile: flags.dockerfile } : {}),
    ...(flags.baseImage ? { base_image: flags.baseImage } : {}),
    schema,
    aliases: flags.alias,
    ...(flags.description ? { description: flags.description } : {}),
    ...(flags.wandbEnv ? { wandb_env: true } : {}),
  });
  if (flags.json) return printJson(v);
  process.stderr.write(
    v.created
      ? `created ${v.entity}/${v.job}:${v.version} (aliases: ${v.aliases.join(', ')})\n`
      : `no changes: ${v.entity}/${v.job}:${v.version} is the same definition (aliases: ${v.aliases.join(', ')})\n`,
  );
  process.stdout.write(`${v.job}:${v.version}\n`);
}
