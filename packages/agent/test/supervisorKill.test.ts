import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { alive } from '../../../test/helpers/procs.js';
import { startSupervisor, type SupervisorUnderTest } from './supervisorHarness.js';

const root = process.getuid?.() === 0;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * The supervisor's kill request (jobUsers.ts release): kill(-1) made as a run's own uid ends every process of it,
 * and a request for uid 0 or the supervisor's own uid, which would signal every process of the host or the agent's,
 * is refused. Real processes, root only (CI runs as root).
 */
describe.skipIf(!root)('the supervisor kills as a run uid on request', () => {
  let home: string;
  let supervisor: SupervisorUnderTest;
  let ask: SupervisorUnderTest['ask'];

  beforeAll(async () => {
    home = mkdtempSync(join(tmpdir(), 'liftoff-sup-'));
    supervisor = await startSupervisor(home);
    ask = supervisor.ask;
  });
  afterAll(() => {
    supervisor?.stop();
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
