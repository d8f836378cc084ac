import { execFile } from 'node:child_process';
import { lstat, mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import {
  SourceFetchError,
  SourceRefusedError,
  assertSafeGitRef,
  assertSafeGitUrl,
  type Env,
  type GitAgentConfig,
} from '@liftoff/core';

const run = promisify(execFile);

/**
 * git transports allowed while cloning, including for redirects: `ext::` and friends would let a repository run
 * commands on the agent's machine. `file` is added only for a top-level remote the agent config allows; submodules
 * never get it, so a repository cannot pull in other repositories of the agent's machine.
 */
const protocolArgs = (file: boolean): string[] => [
  '-c',
  'protocol.allow=never',
  '-c',
  'protocol.https.allow=always',
  '-c',
  'protocol.ssh.allow=always',
  '-c',
  `protocol.file.allow=${file ? 'always' : 'never'}`,
];

/**
 * ssh for hosts without the agent's credentials: no config file (so no IdentityFile, ControlMaster or agent of the
 * operator's), no key files, no SSH agent, no prompts. ssh finds ~/.ssh through the passwd entry, not $HOME, so
 * changing HOME alone would not be enough.
 */
export const ANONYMOUS_SSH_COMMAND = [
  'ssh',
  '-F /dev/null',
  '-o IdentitiesOnly=yes',
  '-o IdentityFile=/dev/null',
  '-o IdentityAgent=none',
  '-o PubkeyAuthentication=no',
  '-o GSSAPIAuthentication=no',
  '-o HostbasedAuthentication=no',
  '-o ControlMaster=no',
  '-o ControlPath=none',
  '-o BatchMode=yes',
].join(' ');

/** Variables an anonymous git keeps from the agent's environment: locale, proxies and TLS trust, no credentials. */
const ANONYMOUS_ENV_KEYS = [
  'PATH',
  'LANG',
  'LC_ALL',
  'LC_CTYPE',
  'TZ',
  'http_proxy',
  'https_proxy',
  'no_proxy',
  'HTTP_PROXY',
  'HTTPS_PROXY',
  'NO_PROXY',
  'GIT_SSL_CAINFO',
  'GIT_SSL_CAPATH',
  'SSL_CERT_FILE',
  'SSL_CERT_DIR',
];

export interface GitCloneDeps {
  /** The agent's environment (minus its API key): git's environment for hosts listed in `credential-hosts`. */
  env: Env;
  git: GitAgentConfig;
  say(line: string): void;
}

/** The host of a remote as `credential-hosts` lists it (`host` or `host:port`), or undefined for a local path. */
export function remoteHost(url: string): string | undefined {
  if (/^(https|ssh):\/\//.test(url)) {
    try {
      return new URL(url).host.toLowerCase() || undefined;
    } catch {
      return undefined;
    }
  }
  const scp = /^[^@/]+@([^:/]+):/.exec(url);
  return scp?.[1]?.toLowerCase();
}

const isLocal = (url: string): boolean => url.startsWith('file:') || url.startsWith('/') || url.startsWith('.');

/**
 * Clones `url` at `ref` into `dir` and checks out its submodules; returns the commit. `scratch` (outside the code,
 * removed afterwards) is the HOME of git runs that must not see the agent's credentials.
 */
export async function cloneGit(
  url: string,
  ref: string | undefined,
  dir: string,
  scratch: string,
  deps: GitCloneDeps,
): Promise<string> {
  // Checked again here although the server validated the spec: the agent must not trust its input.
  assertSafeGitUrl(url);
  if (ref !== undefined) assertSafeGitRef(ref);
  if (isLocal(url) && deps.git['allow-file'] !== true) {
    throw new SourceRefusedError(
      `Refused git URL "${url}": this agent does not clone repositories of its own machine (file://). Push the code with --code, use an https:// or ssh:// remote, or have the agent operator set git: {allow-file: true}.`,
    );
  }
  const listed = new Set((deps.git['credential-hosts'] ?? []).map((h) => h.toLowerCase()));
  const withCredentials = (u: string): boolean => {
    const host = remoteHost(u);
    return host !== undefined && listed.has(host);
  };
  await mkdir(scratch, { recursive: true, mode: 0o700 });
  try {
    const git = gitRunner(url, scratch, deps.env);
    const top = { credentials: withCredentials(url), file: isLocal(url) };
    deps.say(`cloning ${url}${ref ? ` at ${ref}` : ''}${top.credentials ? ' (with the agent credentials)' : ''}`);
    await git(['clone', '--quiet', '--no-checkout', '--', url, dir], undefined, top);
    let commit: string | undefined;
    if (ref) {
      for (const candidate of [`origin/${ref}`, ref]) {
        commit = await git(
          ['rev-parse', '--verify', '--quiet', '--end-of-options', `${candidate}^{commit}`],
          dir,
          {},
        ).then(
          (out) => out.trim(),
          () => undefined,
        );
        if (commit) break;
      }
      if (!commit)
        throw new SourceFetchError(`git ref "${ref}" was not found in ${url}; check the branch, tag or commit.`);
    } else {
      commit = (await git(['rev-parse', 'HEAD'], dir, {})).trim();
    }
    await git(['checkout', '--quiet', '--detach', commit], dir, {});
    await updateSubmodules(dir, git, withCredentials, 0);
    deps.say(`checked out ${commit}`);
    return commit;
  } finally {
    await rm(scratch, { recursive: true, force: true }).catch(() => undefined);
  }
}

type Git = (
  args: string[],
  cwd: string | undefined,
  mode: { credentials?: boolean; file?: boolean },
) => Promise<string>;

function gitRunner(url: string, scratch: string, agentEnv: Env): Git {
  const anonymousEnv: Env = {
    ...Object.fromEntries(ANONYMOUS_ENV_KEYS.flatMap((k) => (agentEnv[k] !== undefined ? [[k, agentEnv[k]]] : []))),
    HOME: scratch,
    XDG_CONFIG_HOME: scratch,
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_CONFIG_GLOBAL: '/dev/null',
    GIT_SSH_COMMAND: ANONYMOUS_SSH_COMMAND,
  };
  return async (args, cwd, mode) => {
    const env = {
      ...(mode.credentials ? agentEnv : anonymousEnv),
      GIT_TERMINAL_PROMPT: '0',
      GIT_ASKPASS: 'true',
    } as NodeJS.ProcessEnv;
    // An empty credential.helper clears every helper configured anywhere (belt and braces: no config is read).
    const anon = mode.credentials ? [] : ['-c', 'credential.helper='];
    try {
      const argv = [...protocolArgs(mode.file === true), ...anon, ...args];
      return (await run('git', argv, { cwd, env, maxBuffer: 16 * 1024 * 1024 })).stdout;
    } catch (e) {
      const stderr = String((e as { stderr?: string }).stderr ?? '').trim();
      throw new SourceFetchError(`git ${args[0] ?? ''} failed for ${url}: ${stderr || (e as Error).message}`, e);
    }
  };
}

const MAX_SUBMODULE_DEPTH = 8;

/**
 * Submodules one level at a time, so each level's remotes are checked before git fetches them: none may be local
 * (file://, a path), and the agent's credentials are used only when every remote of the level is a listed host.
 */
async function updateSubmodules(
  dir: string,
  git: Git,
  withCredentials: (url: string) => boolean,
  depth: number,
): Promise<void> {
  if (
    !(await lstat(join(dir, '.gitmodules')).then(
      (s) => s.isFile(),
      () => false,
    ))
  )
    return;
  if (depth >= MAX_SUBMODULE_DEPTH) {
    throw new SourceRefusedError(`Refused git submodules nested more than ${MAX_SUBMODULE_DEPTH} levels deep.`);
  }
  await git(['submodule', 'init', '--quiet'], dir, {});
  const urls = configValues(await git(['config', '--get-regexp', '^submodule\\..*\\.url$'], dir, {}).catch(() => ''));
  if (!urls.length) return;
  for (const [name, url] of urls) {
    if (isLocal(url)) {
      throw new SourceRefusedError(
        `Refused git submodule "${name}": its remote "${url}" is on the agent's machine, and submodules never use the file protocol.`,
      );
    }
    assertSafeGitUrl(url);
  }
  const credentials = urls.every(([, url]) => withCredentials(url));
  await git(['submodule', 'update', '--quiet', '--'], dir, { credentials });
  const paths = configValues(
    await git(['config', '--file', '.gitmodules', '--get-regexp', '^submodule\\..*\\.path$'], dir, {}).catch(() => ''),
  );
  for (const [, path] of paths) {
    await updateSubmodules(join(dir, path), git, withCredentials, depth + 1);
  }
}

/** `git config --get-regexp` output ("submodule.NAME.KEY value" lines) as [NAME, value] pairs. */
function configValues(out: string): Array<[string, string]> {
  return out
    .split('\n')
    .filter(Boolean)
    .flatMap((line) => {
      const m = /^submodule\.(.+)\.(?:url|path) (.*)$/.exec(line);
      return m?.[1] !== undefined && m[2] !== undefined ? [[m[1], m[2]] as [string, string]] : [];
    });
}
