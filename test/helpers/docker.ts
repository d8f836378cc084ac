import { execFileSync, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { onCleanup, Proc, sleep, tempDir } from './procs.js';

export const BUSYBOX = 'liftoff-test/busybox:1';
export const PYTHON = 'liftoff-test/python:3';

/**
 * Whether the Docker engine and the test base images are there. Missing: the suite skips with a loud reason,
 * unless LIFTOFF_REQUIRE_SERVICES=1 (CI), where that is a failure. `scripts/services/docker.sh` sets them up.
 */
export function dockerAvailable(): boolean {
  try {
    execFileSync('docker', ['image', 'inspect', BUSYBOX, PYTHON], { stdio: 'ignore' });
    return true;
  } catch {
    const reason = 'Docker engine or test images missing: run scripts/services/docker.sh';
    if (process.env.LIFTOFF_REQUIRE_SERVICES === '1') throw new Error(`${reason} (LIFTOFF_REQUIRE_SERVICES=1)`);
    console.warn(`\n*** SKIPPING container suites: ${reason} ***\n`);
    return false;
  }
}

export function docker(...args: string[]): string {
  return execFileSync('docker', args, { encoding: 'utf8' }).trim();
}

/** Containers carrying a run label, as `docker ps -a` sees them. */
export function containersOfRun(runId: string): string[] {
  const out = docker('ps', '-a', '-q', '--filter', `label=liftoff.run-id=${runId}`);
  return out ? out.split('\n') : [];
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

export interface TestRegistry {
  host: string;
  username: string;
  password: string;
}

/**
 * A real Distribution registry with htpasswd auth on a free loopback port; `login` sets its one user (ECR tests:
 * the `AWS:<token>` GetAuthorizationToken answers).
 */
export async function startRegistry(login?: { username: string; password: string }): Promise<TestRegistry> {
  const dir = tempDir('liftoff-registry-');
  const port = await freePort();
  const username = login?.username ?? 'tester';
  const password = login?.password ?? 'pw-' + Math.random().toString(36).slice(2);
  writeFileSync(join(dir, 'htpasswd'), execFileSync('htpasswd', ['-Bbn', username, password], { encoding: 'utf8' }));
  writeFileSync(
    join(dir, 'config.yml'),
    [
      'version: 0.1',
      'log: { level: error }',
      `storage: { filesystem: { rootdirectory: ${join(dir, 'data')} }, delete: { enabled: true } }`,
      `http: { addr: 127.0.0.1:${port} }`,
      `auth: { htpasswd: { realm: liftoff-test, path: ${join(dir, 'htpasswd')} } }`,
      '',
    ].join('\n'),
  );
  const proc = new Proc(
    spawn('docker-registry', ['serve', join(dir, 'config.yml')], { stdio: ['ignore', 'pipe', 'pipe'] }),
  );
  for (let i = 0; i < 100; i++) {
    const res = await fetch(`http://127.0.0.1:${port}/v2/`).catch(() => undefined);
    if (res?.status === 401) return { host: `127.0.0.1:${port}`, username, password };
    await sleep(100);
  }
  proc.kill('SIGKILL');
  throw new Error(`registry did not start:\n${proc.output}`);
}

/** Removes, at cleanup, every container of the given agents and the images the tests built. */
export function cleanupDockerAfter(agentNames: () => string[]): void {
  onCleanup(() => {
    for (const name of agentNames()) {
      const ids = docker('ps', '-a', '-q', '--filter', `label=liftoff.agent-id=${name}`);
      if (ids) execFileSync('docker', ['rm', '-f', ...ids.split('\n')], { stdio: 'ignore' });
    }
  });
}

/**
 * Tags `source` as `image` and pushes it through the engine with `login` (a registry host's user and password, as
 * `docker login` would keep them); a push the registry refuses rejects with its error line.
 */
export async function pushImage(
  image: string,
  login: { username: string; password: string; serveraddress: string },
  source = BUSYBOX,
): Promise<void> {
  const { default: Dockerode } = await import('dockerode');
  const engine = new Dockerode();
  docker('tag', source, image);
  const stream = await engine.getImage(image).push({ authconfig: login });
  await new Promise<void>((resolve, reject) =>
    engine.modem.followProgress(stream, (e: Error | null, out: Array<{ error?: string }>) => {
      const failed = out?.find((o) => o.error);
      return e || failed ? reject(e ?? new Error(failed?.error)) : resolve();
    }),
  );
}

/** `pushImage` with a test registry's own login. */
export const pushToRegistry = (registry: TestRegistry, image: string, source = BUSYBOX): Promise<void> =>
  pushImage(image, { username: registry.username, password: registry.password, serveraddress: registry.host }, source);
