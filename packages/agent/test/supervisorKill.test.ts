import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { alive } from '../../../test/helpers/procs.js';

/** The built supervisor (npm test builds first): it is a script of its own, started as the agent starts it. */
const SCRIPT = fileURLToPath(new URL('../dist/runners/supervisor.js', import.meta.url));
const root = process.getuid?.() === 0;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * The supervisor's kill request (jobUsers.ts release): kill(-1) made as a run's own uid ends every process of it,
 * and a request for uid 0 or the supervisor's own uid, which would signal every process of the host or the agent's,
 * is refused. Real processes, root only (CI runs as root).
 */
describe.skipIf(!root)('the supervisor kills as a run uid on request', () => {
  let home: string;
  let supervisor: ReturnType<typeof spawn>;
  let ask: (msg: object) => Promise<Record<string, unknown>>;

  beforeAll(async () => {
    home = mkdtempSync(join(tmpdir(), 'liftoff-sup-'));
    supervisor = spawn(process.execPath, [SCRIPT, home], { stdio: ['ignore', 'pipe', 'inherit'], env: {} });
    await new Promise<void>((resolve) => supervisor.stdout?.once('data', () => resolve()));
    const socket = connect(join(home, 'v1.sock'));
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    const answers = new Map<number, (m: Record<string, unknown>) => void>();
    createInterface({ input: socket }).on('line', (line) => {
      const m = JSON.parse(line) as Record<string, unknown>;
      answers.get(m.id as number)?.(m);
    });
    let next = 1;
    ask = (msg) =>
      new Promise((resolve) => {
        const id = next++;
        answers.set(id, resolve);
        socket.write(`${JSON.stringify({ id, ...msg })}\n`);
      });
  });
  afterAll(() => {
    supervisor.kill('SIGKILL');
    rmSync(home, { recursive: true, force: true });
  });

  it('ends every process of the uid, those outside the job group included, and leaves other uids alone', async () => {
    const uid = 1_950_001_000;
    const mine = [0, 1].map(() => spawn('sleep', ['60'], { uid, gid: uid, detached: true, stdio: 'ignore' }));
    const other = spawn('sleep', ['60'], { uid: uid + 1, gid: uid + 1, detached: true, stdio: 'ignore' });
    await sleep(100);
    expect(await ask({ killAll: { uid, gid: uid } })).toMatchObject({ done: true });
    for (let i = 0; i < 100 && mine.some((c) => alive(c.pid as number)); i++) await sleep(20);
    expect(mine.some((c) => alive(c.pid as number))).toBe(false);
    expect(alive(other.pid as number)).toBe(true);
    other.kill('SIGKILL');
  });

  it('refuses uid 0 and its own uid', async () => {
    expect(await ask({ killAll: { uid: 0, gid: 0 } })).toMatchObject({ error: 'malformed kill request' });
    const own = process.getuid?.() ?? 0;
    expect(await ask({ killAll: { uid: own, gid: own } })).toMatchObject({ error: 'malformed kill request' });
    expect(await ask({ killAll: { uid: -5, gid: 3 } })).toMatchObject({ error: 'malformed kill request' });
    expect(alive(process.pid)).toBe(true);
  });
});
