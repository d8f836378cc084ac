import { spawn, spawnSync } from 'node:child_process';
import { Proc, tempDir } from './procs.js';

/**
 * The preinstalled Google Cloud CLI, a client Liftoff did not write, for cross-checks of the Google Cloud fakes.
 * Missing: the suite skips loudly, unless LIFTOFF_REQUIRE_SERVICES=1, where that is a failure.
 */
export function gcloudAvailable(what: string): boolean {
  if (spawnSync('gcloud', ['--version'], { stdio: 'ignore' }).status === 0) return true;
  const reason = 'gcloud (the Google Cloud CLI) missing: run scripts/services/gcp.sh';
  if (process.env.LIFTOFF_REQUIRE_SERVICES === '1') throw new Error(`${reason} (LIFTOFF_REQUIRE_SERVICES=1)`);
  console.warn(`\n*** SKIPPING ${what}: ${reason} ***\n`);
  return false;
}

/**
 * gcloud's environment in a sandbox: a temp config dir and HOME (no account, usage reporting and update checks
 * off, no prompts), `extra` (endpoint overrides, the fake metadata server's variables), and every proxy variable at
 * a dead loopback port with only 127.0.0.1 exempt, so a request for anything beyond loopback fails instead of
 * leaving the machine.
 */
export function gcloudEnv(project: string, extra: Record<string, string>): Record<string, string> {
  const dead = 'http://127.0.0.1:9';
  return {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: tempDir('liftoff-gcloud-home-'),
    CLOUDSDK_CONFIG: tempDir('liftoff-gcloud-'),
    CLOUDSDK_CORE_DISABLE_USAGE_REPORTING: 'true',
    CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK: 'true',
    CLOUDSDK_CORE_DISABLE_PROMPTS: '1',
    CLOUDSDK_CORE_PROJECT: project,
    ...extra,
    HTTP_PROXY: dead,
    HTTPS_PROXY: dead,
    http_proxy: dead,
    https_proxy: dead,
    NO_PROXY: '127.0.0.1',
    no_proxy: '127.0.0.1',
    ...(process.env.PYENV_ROOT ? { PYENV_ROOT: process.env.PYENV_ROOT } : {}),
  };
}

/** Runs gcloud with `env`; its exit code and output. */
export async function runGcloud(
  env: Record<string, string>,
  ...args: string[]
): Promise<{ code: number | null; output: string }> {
  const p = new Proc(spawn('gcloud', args, { env, stdio: ['ignore', 'pipe', 'pipe'] }));
  const { code } = await p.exited;
  return { code, output: p.output };
}
