import { spawn, type ChildProcess } from 'node:child_process';
import { connect } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

/** The built supervisor (npm test builds first): a script of its own, started here as the agent starts it. */
const SCRIPT = fileURLToPath(new URL('../dist/runners/supervisor.js', import.meta.url));

export interface SupervisorUnderTest {
  process: ChildProcess;
  /** Sends one request (`{start}` or `{killAll}`) and resolves with the supervisor's answer to it. */
  ask: (msg: object) => Promise<Record<string, unknown>>;
  /** Resolves once the supervisor says the job of state dir `dir` has ended. */
  ended: (dir: string) => Promise<void>;
  /** What it wrote to stderr (its log) so far. */
  log: () => string;
}

/**
 * A real job supervisor for `home` (its 0700 dir), connected to over its socket as an agent would; killed by the
 * caller. Resolves once it listens.
 */
export async function startSupervisor(home: string): Promise<SupervisorUnderTest> {
  const child = spawn(process.execPath, [SCRIPT, home], { stdio: ['ignore', 'pipe', 'pipe'], env: {} });
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
    ended: (dir) => new Promise((resolve) => endings.set(dir, resolve)),
    ask: (msg) =>
      new Promise((resolve) => {
        const id = next++;
        answers.set(id, resolve);
        socket.write(`${JSON.stringify({ id, ...msg })}\n`);
      }),
  };
}
