import { mkdirSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { prepareOutputDir, removeOutputDir } from '../src/outputs/outputDir.js';
import { OutputDirs } from '../src/outputs/outputDirs.js';
import { cleanupAll, onCleanup, tempDir } from '../../../test/helpers/procs.js';

const isRoot = process.getuid?.() === 0;
const mounted = (dir: string) => statSync(dir).dev !== statSync(dirname(dir)).dev;
const CAP = 1024 * 1024;

/** A data dir whose slots are unmounted when the test ends, whatever it left mounted. */
function dataDir(): string {
  const dir = tempDir('liftoff-outdirs-');
  onCleanup(async () => {
    for (const name of readdirSync(join(dir, 'job-outputs'), { withFileTypes: true }))
      if (name.isDirectory()) await removeOutputDir(join(dir, 'job-outputs', name.name));
  });
  return dir;
}

async function started(dirs: OutputDirs, data: string, runId: string, owner: { uid: number; gid: number }) {
  const stateDir = join(data, 'runs', runId);
  mkdirSync(stateDir, { recursive: true });
  const { path, reused } = await dirs.assign(runId, stateDir);
  const capped = await prepareOutputDir({ path, reused, capBytes: CAP }, owner, () => undefined);
  return { path, reused, stateDir, capped };
}

/**
 * Issue 20: a root agent reuses the capped tmpfs of an ended run instead of spawning umount and mount for the next
 * one; nothing of the first run's reaches the second.
 */
describe.skipIf(!isRoot)('output dir slots of a root agent', () => {
  afterAll(cleanupAll);
  it('hands an emptied slot, still mounted and capped, to the next run with a new owner', async () => {
    const data = dataDir();
    const dirs = new OutputDirs(data, true);
    const a = await started(dirs, data, 'run-a', { uid: 61001, gid: 61001 });
    expect(a.capped).toBe(true);
    expect(a.reused).toBe(false);
    expect(mounted(a.path)).toBe(true);
    mkdirSync(join(a.path, 'ckpt'));
    writeFileSync(join(a.path, 'ckpt', 'model.bin'), 'weights of run a');
    symlinkSync('/etc/shadow', join(a.path, 'link'));
    expect(await dirs.pathOf('run-a', a.stateDir)).toBe(a.path);
    await dirs.release('run-a', a.stateDir);

    const b = await started(dirs, data, 'run-b', { uid: 61002, gid: 61002 });
    expect(b.path).toBe(a.path);
    expect(b.reused).toBe(true);
    expect(mounted(b.path)).toBe(true);
    expect(readdirSync(b.path)).toEqual([]);
    const st = statSync(b.path);
    expect([st.uid, st.gid, st.mode & 0o777]).toEqual([61002, 61002, 0o700]);
    // The cap is the slot's own: past 1 MiB the write fails.
    expect(() => writeFileSync(join(b.path, 'big'), Buffer.alloc(2 * CAP))).toThrow(/ENOSPC/);
    // The symlink went, not what it pointed at.
    expect(readFileSync('/etc/shadow').length).toBeGreaterThan(0);
    await dirs.release('run-b', b.stateDir);
    // A run that leaves nothing behind (b left a cut-short file): the slot goes on, owner changed, still capped.
    const c = await started(dirs, data, 'run-c', { uid: 61007, gid: 61007 });
    expect([c.path, c.reused]).toEqual([a.path, true]);
    expect(readdirSync(c.path)).toEqual([]);
    await dirs.release('run-c', c.stateDir);
    const d = await started(dirs, data, 'run-d', { uid: 61008, gid: 61008 });
    expect([d.path, d.reused, d.capped]).toEqual([a.path, true, true]);
    const std = statSync(d.path);
    expect([std.uid, std.gid, std.mode & 0o777]).toEqual([61008, 61008, 0o700]);
    expect(() => writeFileSync(join(d.path, 'big'), Buffer.alloc(2 * CAP))).toThrow(/ENOSPC/);
    await dirs.release('run-d', d.stateDir);
    // An agent that stops unmounts its idle slots.
    expect(mounted(b.path)).toBe(true);
    await dirs.close();
    expect(readdirSync(join(data, 'job-outputs'))).toEqual([]);
  });

  it('unmounts a slot holding too many entries instead of emptying it, and the next run gets a fresh one', async () => {
    const data = dataDir();
    const dirs = new OutputDirs(data, true);
    const a = await started(dirs, data, 'run-a', { uid: 61003, gid: 61003 });
    for (let i = 0; i < 2_100; i++) writeFileSync(join(a.path, `f${i}`), '');
    await dirs.release('run-a', a.stateDir);
    expect(readdirSync(join(data, 'job-outputs'))).toEqual([]);
    const b = await started(dirs, data, 'run-b', { uid: 61004, gid: 61004 });
    expect(b.path).not.toBe(a.path);
    expect(readdirSync(b.path)).toEqual([]);
    await dirs.release('run-b', b.stateDir);
  });

  it('after a restart: keeps the slot a held run records, unmounts the others', async () => {
    const data = dataDir();
    const before = new OutputDirs(data, true);
    const held = await started(before, data, 'run-held', { uid: 61005, gid: 61005 });
    const gone = await started(before, data, 'run-gone', { uid: 61006, gid: 61006 });
    writeFileSync(join(held.path, 'checkpoint'), 'still running');
    // A new agent process on the same data dir.
    const after = new OutputDirs(data, true);
    await after.sweep(new Map([['run-held', held.stateDir]]));
    expect(mounted(held.path)).toBe(true);
    expect(readFileSync(join(held.path, 'checkpoint'), 'utf8')).toBe('still running');
    expect(readdirSync(join(data, 'job-outputs'))).toEqual([held.path.split('/').at(-1)]);
    expect(await after.pathOf('run-held', held.stateDir)).toBe(held.path);
    expect(gone.path).not.toBe(held.path);
    await after.release('run-held', held.stateDir);
  });
});

describe('output dirs of a non-root agent', () => {
  afterAll(cleanupAll);
  it('are per-run paths, removed on release', async () => {
    const data = tempDir('liftoff-outdirs-');
    const dirs = new OutputDirs(data, false);
    mkdirSync(join(data, 'runs', 'r1'), { recursive: true });
    const { path, reused } = await dirs.assign('r1', join(data, 'runs', 'r1'));
    expect(reused).toBe(false);
    expect(path).toBe(join(data, 'job-outputs', 'r1'));
    mkdirSync(path, { recursive: true });
    writeFileSync(join(path, 'x'), 'x');
    await dirs.release('r1');
    expect(readdirSync(join(data, 'job-outputs'))).toEqual([]);
  });
});
