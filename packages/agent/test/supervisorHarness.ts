import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { supervisorArgs } from '../src/runners/supervisorClient.js';

/** The built supervisor (npm test builds first): a script of its own, started here with the agent's arguments. */
const SCRIPT = fileURLToPath(new URL('../dist/runners/supervisor.js', import.meta.url));

export interface SupervisorUnderTest {
  process: ChildProcess;
  /** Sends one request (`{start}` or `{killAll}`) and resolves with the supervisor's answer to it. */
  ask: (msg: object) => Promise<Record<string, unknown>>;
  /** Resolves once the supervisor says the job of state dir `dir` has ended. */
  ended: (dir: string) => Promise<void>;
  /** What it wrote to stderr (its log) so far. */
  log: () => string;
  /** Kills the supervisor (found by the pid it logs, as it may run under a wrapper) and whatever started it. */
  stop: () => void;
}

/** The mount points of cgroup v2 hierarchies, from /proc/self/mountinfo. */
export function cgroup2Mounts(): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter((l) => l.split(' - ')[1]?.startsWith('cgroup2 '))
    .map((l) => l.split(' ')[4] ?? '');
}

/**
 * Runs the supervisor in a mount namespace of its own where every cgroup v2 hierarchy is read-only: a host whose
 * cgroups it cannot use (root only). A small node wrapper remounts, then starts it and passes its output on.
 */
function withReadOnlyCgroups(home: string): ChildProcess {
  const wrapper = `
    const { spawn, spawnSync } = require('node:child_process');
    for (const m of ${JSON.stringify(cgroup2Mounts())}) {
      if (spawnSync('mount', ['-o', 'remount,bind,ro', m]).status !== 0) process.exit(3);
    }
    const s = spawn(process.execPath, ${JSON.stringify(supervisorArgs(home, SCRIPT))}, { stdio: 'inherit', env: {} });
    s.on('exit', (code) => process.exit(code ?? 1));`;
  return spawn('unshare', ['--mount', '--propagation', 'private', '--', process.execPath, '-e', wrapper], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {},
  });
}

/**
 * A real job supervisor for `home` (its 0700 dir), connected to over its socket as an agent would; stopped by the
 * caller (`stop`). Resolves once it listens. `readOnlyCgroups`: as on a host whose cgroups it cannot use.
 */
export async function startSupervisor(
  home: string,
  opts: { readOnlyCgroups?: boolean } = {},
): Promise<SupervisorUnderTest> {
  const child = opts.readOnlyCgroups
    ? withReadOnlyCgroups(home)
    : spawn(process.execPath, supervisorArgs(home, SCRIPT), { stdio: ['ignore', 'pipe', 'pipe'], env: {} });
  let log = '';
  child.stderr?.on('data', (d: Buffer) => (log += d.toString()));
  await new Promise<void>((resolve) => child.stdout?.once('data', () => resolve()));
  const socket = connect(join(home, 'v1.sock'));
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
  const answers = new Map<number, (m: Record<string, unknown>) => void>();
  const endings = new Map<string, () => void>();
  createInterface({ input: socket }).on('line', (line) => {
    const m = JSON.parse(line) as Record<string, unknown>;
    if (typeof m.ended === 'string') endings.get(m.ended)?.();
    else answers.get(m.id as number)?.(m);
  });
  let next = 1;
  return {
    process: child,
    log: () => log,
    stop: () => {
      const pid = /supervisor (\d+) listening/.exec(log)?.[1];
      if (pid) process.kill(Number(pid), 'SIGKILL');
      child.kill('SIGKILL');
    },
    ended: (dir) => new Promise((resolve) => endings.set(dir, resolve)),
    ask: (msg) =>
      new Promise((resolve) => {
        const id = next++;
        answers.set(id, resolve);
        socket.write(`${JSON.stringify({ id, ...msg })}\n`);
      }),
  };
}
