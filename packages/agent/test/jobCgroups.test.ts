import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ownCgroupDir } from '../src/runners/jobCgroups.js';
import { LocalProcessRunner } from '../src/runners/localProcess.js';
import { alive } from '../../../test/helpers/procs.js';
import { startSupervisor, type SupervisorUnderTest } from './supervisorHarness.js';

const root = process.getuid?.() === 0;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** A pid no process has (none is above the kernel's pid_max). */
const deadPid = () => Number(readFileSync('/proc/sys/kernel/pid_max', 'utf8')) + 1;
const cgroupOf = (pid: number) => /^0::(.*)$/m.exec(readFileSync(`/proc/${pid}/cgroup`, 'utf8'))?.[1];

/**
 * A daemon in a session of its own that keeps the job's stdout: out of reach of the group kill, it held the pipes
 * and with them the run (a cancelled one included) for as long as it lived.
 */
const HOLDER = `
  const d = require('node:child_process').spawn('sleep', ['600'], { detached: true, stdio: 'inherit' });
  d.unref();
  console.log(JSON.stringify({ daemon: d.pid }));`;
/** A start request for a node script run as `uid`, a uid of the run's own, with state dir `dir`. */
const startOf = (dir: string, uid: number, script: string) => ({
  program: process.execPath,
  args: ['-e', script],
  cwd: '/',
  env: {},
  uid,
  gid: uid,
  uidOfItsOwn: true,
  dir,
});

/**
 * A job's leftovers go with its cgroup (runners/jobCgroups.ts): the real supervisor starts jobs under a uid of their
 * own, each in a cgroup of its own, and when a job ends kills what is left in it (a daemon that left the job's
 * process group included), removes the cgroup, and says so in the status. Root only (CI runs as root); a host whose
 * cgroup v2 is not writable fails here under LIFTOFF_REQUIRE_SERVICES=1 and skips loudly otherwise.
 */
describe.skipIf(!root)('job cgroups', () => {
  let home: string;
  let runs: string;
  let supervisor: SupervisorUnderTest;
  let usable = true;
  let stale = '';
  let live = '';
  /** The supervisor's own cgroup dir, where the job cgroups are made (from its log). */
  let cgHome = '';

  beforeAll(async () => {
    const base = mkdtempSync(join(tmpdir(), 'liftoff-cg-'));
    home = join(base, 'supervisor');
    runs = join(base, 'runs');
    mkdirSync(home, { mode: 0o700 });
    mkdirSync(runs, { mode: 0o700 });
    // Job cgroups left by supervisors: one of a pid that is gone (empty: removed at the next start), one of a live
    // process (this one: kept).
    const own = ownCgroupDir();
    if (typeof own === 'string') {
      stale = join(own, `liftoff-job-${deadPid()}-1`);
      live = join(own, `liftoff-job-${process.pid}-999`);
      for (const d of [stale, live]) mkdirSync(d, { recursive: true });
    }
    supervisor = await startSupervisor(home);
    for (let i = 0; i < 50 && !/cgroup/.test(supervisor.log()); i++) await sleep(20);
    cgHome = /get a cgroup of their own below (\S+)/.exec(supervisor.log())?.[1] ?? '';
    if (!cgHome) {
      usable = false;
      const why = `job cgroups are not usable on this host: ${supervisor.log().trim()}`;
      if (process.env.LIFTOFF_REQUIRE_SERVICES === '1') throw new Error(`${why} (LIFTOFF_REQUIRE_SERVICES=1)`);
      console.warn(`SKIPPED: ${why}`);
    }
  });
  afterAll(() => {
    for (const d of [stale, live]) if (d && existsSync(d)) rmdirSync(d);
    supervisor?.stop();
    rmSync(join(home, '..'), { recursive: true, force: true });
  });

  /** Runs a node script as `uid` under the supervisor; resolves with its output and status once it has ended. */
  async function runJob(name: string, uid: number, script: string) {
    const dir = join(runs, name);
    mkdirSync(dir, { mode: 0o700 });
    const done = supervisor.ended(dir);
    const start = startOf(dir, uid, script);
    const answer = await supervisor.ask({ start });
    expect(answer).toHaveProperty('pid');
    await done;
    return {
      output: readFileSync(join(dir, 'output.log'), 'utf8'),
      status: JSON.parse(readFileSync(join(dir, 'status.json'), 'utf8')) as Record<string, unknown>,
    };
  }

  it('ends a daemon that left the job group, removes the cgroup, and says the job was contained', async (ctx) => {
    if (!usable) return ctx.skip();
    const before = cgroupOf(supervisor.process.pid as number);
    // The job forks a daemon in a session of its own (out of reach of the group kill), prints its pid and its
    // cgroup, tries to move itself out of its cgroup, and exits.
    const script = `
      const { spawn } = require('node:child_process');
      const fs = require('node:fs');
      const d = spawn('sleep', ['60'], { detached: true, stdio: 'ignore' });
      d.unref();
      const cg = fs.readFileSync('/proc/self/cgroup', 'utf8').match(/^0::(.*)$/m)[1];
      let escape = 'moved';
      try { fs.writeFileSync(${JSON.stringify(join(cgHome, 'cgroup.procs'))}, String(process.pid)); }
      catch (e) { escape = e.code; }
      console.log(JSON.stringify({ daemon: d.pid, cgroup: cg, escape }));`;
    const { output, status } = await runJob('daemon', 1_950_002_000, script);
    const job = JSON.parse(output.trim()) as { daemon: number; cgroup: string; escape: string };
    expect(status).toMatchObject({ code: 0, contained: true });
    expect(job.cgroup).toMatch(/\/liftoff-job-\d+-\d+$/);
    expect(job.escape).toBe('EACCES');
    expect(alive(job.daemon)).toBe(false);
    expect(existsSync(join(cgHome, basename(job.cgroup)))).toBe(false);
    // The supervisor went back where it was after the spawn.
    expect(cgroupOf(supervisor.process.pid as number)).toBe(before);
  });

  it('ends a run whose leader exited while a daemon out of its group holds its output, and kills the daemon', async (ctx) => {
    if (!usable) return ctx.skip();
    const { output, status } = await runJob('holder-exit', 1_950_002_400, HOLDER);
    expect(status).toMatchObject({ code: 0, contained: true });
    const { daemon } = JSON.parse(output.trim()) as { daemon: number };
    expect(alive(daemon)).toBe(false);
  }, 15_000);

  it('ends a cancelled run (its group killed) although such a daemon holds its output', async (ctx) => {
    if (!usable) return ctx.skip();
    const dir = join(runs, 'holder-cancel');
    mkdirSync(dir, { mode: 0o700 });
    const done = supervisor.ended(dir);
    const uid = 1_950_002_401;
    const start = startOf(dir, uid, `${HOLDER}; setInterval(() => {}, 1000);`);
    const { pid } = (await supervisor.ask({ start })) as { pid: number };
    for (let i = 0; i < 100 && !readFileSync(join(dir, 'output.log'), 'utf8').includes('daemon'); i++) await sleep(20);
    // As the agent's cancel does after its grace period.
    process.kill(-pid, 'SIGKILL');
    await done;
    const status = JSON.parse(readFileSync(join(dir, 'status.json'), 'utf8')) as Record<string, unknown>;
    expect(status).toMatchObject({ signal: 'SIGKILL', contained: true });
    const { daemon } = JSON.parse(readFileSync(join(dir, 'output.log'), 'utf8').trim()) as { daemon: number };
    expect(alive(daemon)).toBe(false);
  }, 15_000);

  it('removes the empty job cgroups of supervisors that are gone at start, and no others', (ctx) => {
    if (!usable) return ctx.skip();
    expect(existsSync(stale)).toBe(false);
    expect(existsSync(live)).toBe(true);
  });

  it('a job that leaves nothing behind is contained too, and many in a row leave no cgroup', async (ctx) => {
    if (!usable) return ctx.skip();
    const results = await Promise.all(
      Array.from({ length: 8 }, (_, i) => runJob(`quick-${i}`, 1_950_002_100 + i, 'process.exit(3)')),
    );
    for (const r of results) expect(r.status).toMatchObject({ code: 3, contained: true });
    const left = readdirSync(cgHome).filter((n) => n.startsWith(`liftoff-job-${supervisor.process.pid}-`));
    expect(left).toEqual([]);
  });
});

/**
 * The agent's side: a run whose exit status says its cgroup was emptied needs no kill(-1) at release; any other
 * asks the supervisor, and with none running (none is started for this) the caller kills by itself.
 */
describe('the local-process runner ends a run uid', () => {
  it('at once when the status says the job was contained, through the supervisor otherwise', async () => {
    const base = mkdtempSync(join(tmpdir(), 'liftoff-cgr-'));
    try {
      const runner = new LocalProcessRunner({ logger: pino({ level: 'silent' }) });
      const dir = join(base, 'runs', 'r1');
      mkdirSync(dir, { recursive: true });
      const identity = { uid: 1_950_002_300, gid: 1_950_002_300 };
      writeFileSync(join(dir, 'status.json'), JSON.stringify({ code: 0, signal: null }));
      expect(await runner.killAllAs(dir, identity)).toBe(false);
      writeFileSync(join(dir, 'status.json'), JSON.stringify({ code: 0, signal: null, contained: true }));
      expect(await runner.killAllAs(dir, identity)).toBe(true);
      await runner.close();
    } finally {
      rmSync(base, { recursive: true, force: true });
    }
  });
});

/**
 * Where the supervisor cannot use cgroups (here: every cgroup v2 mount read-only in its mount namespace), a job
 * runs without one, and a daemon it left holding its output is ended by kill(-1) as the run's own uid, never as a
 * uid runs share. Root only.
 */
describe.skipIf(!root)('a supervisor without usable cgroups', () => {
  let base: string;
  let supervisor: SupervisorUnderTest;

  beforeAll(async () => {
    base = mkdtempSync(join(tmpdir(), 'liftoff-nocg-'));
    mkdirSync(join(base, 'supervisor'), { mode: 0o700 });
    supervisor = await startSupervisor(join(base, 'supervisor'), { readOnlyCgroups: true });
    for (let i = 0; i < 50 && !/cgroup/.test(supervisor.log()); i++) await sleep(20);
  });
  afterAll(() => {
    supervisor?.stop();
    rmSync(base, { recursive: true, force: true });
  });

  it('says why in its log, and ends a daemon holding the output of a per-run uid by kill(-1)', async () => {
    expect(supervisor.log()).toMatch(/jobs get no cgroup of their own \(cannot create a cgroup in .*\)/);
    const dir = join(base, 'run');
    mkdirSync(dir, { mode: 0o700 });
    const done = supervisor.ended(dir);
    const uid = 1_950_002_500;
    const start = startOf(dir, uid, HOLDER);
    expect(await supervisor.ask({ start })).toHaveProperty('pid');
    await done;
    const status = JSON.parse(readFileSync(join(dir, 'status.json'), 'utf8')) as Record<string, unknown>;
    expect(status).toMatchObject({ code: 0 });
    expect(status).not.toHaveProperty('contained');
    const { daemon } = JSON.parse(readFileSync(join(dir, 'output.log'), 'utf8').trim()) as { daemon: number };
    for (let i = 0; i < 50 && alive(daemon); i++) await sleep(20);
    expect(alive(daemon)).toBe(false);
  }, 15_000);
});
