import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { alive } from '../../../test/helpers/procs.js';
import { detectUserSwitching, JobUsers } from '../src/jobUsers.js';

const root = process.getuid?.() === 0;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** A process of `uid` that left its process group, as a job's daemon would. */
function daemonOf(uid: number): number {
  const child = spawn('sleep', ['60'], { uid, gid: uid, detached: true, stdio: 'ignore' });
  child.unref();
  return child.pid ?? 0;
}

/**
 * Dynamic job users, for real (root only; CI runs as root): a released uid's processes die with one kill(-1) made as
 * the uid, and a uid is not picked again while any process holds it, even one the release could not reach.
 */
describe.skipIf(!root)('dynamic job users', () => {
  it('release kills every process of the run uid, daemons outside its group included', async () => {
    const users = await JobUsers.resolve({ dynamic: { first: 1_950_000_000, count: 4 } }, detectUserSwitching());
    const id = await users.acquire('run-a');
    if (!id) throw new Error('no identity');
    const pids = [daemonOf(id.uid), daemonOf(id.uid)];
    await sleep(100);
    expect(pids.every(alive)).toBe(true);
    await users.release('run-a');
    for (let i = 0; i < 100 && pids.some(alive); i++) await sleep(20);
    expect(pids.some(alive)).toBe(false);
  });

  it('a released uid still held by a process is not picked again until a later pass finds it gone', async () => {
    const users = await JobUsers.resolve({ dynamic: { first: 1_950_000_100, count: 1 } }, detectUserSwitching());
    const id = await users.acquire('run-b');
    if (!id) throw new Error('no identity');
    await users.release('run-b');
    // What the release's kill(-1) could not reach (a process holding the uid as its effective one only), made here
    // by root after the release.
    const survivor = daemonOf(id.uid);
    await sleep(50);
    // The only uid of the range is refused while the survivor holds it; the pass that saw it kills it.
    await expect(users.acquire('run-c')).rejects.toThrow(/every uid of the dynamic range is in use/);
    let again: number | undefined;
    for (let i = 0; i < 60 && again === undefined; i++) {
      await sleep(100);
      again = await users.acquire('run-c').then(
        (x) => x?.uid,
        () => undefined,
      );
    }
    expect(again).toBe(id.uid);
    expect(alive(survivor)).toBe(false);
  });
});
