// Shared harness of the benchmarks: real `liftoff` server and agent processes, process statistics, percentiles,
// and the results files. Benchmarks measure and report; they assert nothing about timing.
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, totalmem, release, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { packDirectory } from '@liftoff/cli';
import { LiftoffClient, readCredentials } from '@liftoff/core';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const BIN = join(ROOT, 'packages', 'cli', 'dist', 'bin.js');
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const cleanups = [];
export async function cleanup() {
  while (cleanups.length) await cleanups.pop()();
}
export function tempDir(prefix = 'liftoff-bench-') {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  cleanups.push(() => {
    // An agent killed after its grace leaves its output tmpfs mounted (outputs/outputDirs.ts); rm cannot remove them.
    const mounts = existsSync('/proc/self/mounts') ? readFileSync('/proc/self/mounts', 'utf8') : '';
    const under = mounts
      .split('\n')
      .map((l) => l.split(' ')[1] ?? '')
      .filter((p) => p.startsWith(`${dir}/`));
    for (const p of under.sort((a, b) => b.length - a.length)) spawnSync('umount', [p], { stdio: 'ignore' });
    rmSync(dir, { recursive: true, force: true });
  });
  return dir;
}

/**
 * A fresh tmpfs to use as a benchmark's HOME, or undefined unless root (mounting needs it). For rows that separate
 * what the host's file system costs from what Liftoff does; unmounted at cleanup (by tempDir's).
 */
export function tmpfsDir() {
  if (process.getuid?.() !== 0) return undefined;
  const parent = tempDir();
  // Job users must enter it to reach their work dirs (the agent checks that at start).
  chmodSync(parent, 0o711);
  const dir = join(parent, 'tmpfs');
  mkdirSync(dir);
  const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=2g,mode=0711', 'liftoff-bench', dir]);
  return mounted.status === 0 ? dir : undefined;
}

export function spawnLiftoff(args, env) {
  // LIFTOFF_BENCH_NODE_ARGS (e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`, space-separated) go to every liftoff
  // process a benchmark starts: how the profiles behind the notes in RESULTS.md are taken.
  const nodeArgs = (process.env.LIFTOFF_BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const child = spawn(process.execPath, [...nodeArgs, BIN, ...args], {
    cwd: ROOT,
    env: { PATH: process.env.PATH, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const proc = { child, output: '', exited: new Promise((r) => child.once('exit', (code) => r(code))) };
  child.stdout.on('data', (b) => (proc.output = (proc.output + b.toString()).slice(-20_000)));
  child.stderr.on('data', (b) => (proc.output = (proc.output + b.toString()).slice(-20_000)));
  cleanups.push(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await Promise.race([proc.exited, sleep(5_000)]);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
  });
  proc.waitFor = async (re, ms = 60_000) => {
    const until = Date.now() + ms;
    for (;;) {
      const m = proc.output.match(re);
      if (m) return m;
      if (child.exitCode !== null) throw new Error(`liftoff ${args[0]} exited: ${proc.output}`);
      if (Date.now() > until) throw new Error(`timed out waiting for ${re}: ${proc.output}`);
      await sleep(20);
    }
  };
  return proc;
}

/** A fresh, empty PostgreSQL database next to `baseUrl`'s, dropped at cleanup. */
export async function freshPgDatabase(baseUrl) {
  const { default: pg } = await import('pg');
  const name = `liftoff_bench_${Math.random().toString(36).slice(2, 10)}`;
  const admin = new pg.Client({ connectionString: baseUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  cleanups.push(async () => {
    const c = new pg.Client({ connectionString: baseUrl });
    await c.connect();
    await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch(() => undefined);
    await c.end();
  });
  const url = new URL(baseUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

/** Whether a PostgreSQL answers at `url` (the benchmarks' PostgreSQL rows need one). */
export async function pgReachable(url) {
  const { default: pg } = await import('pg');
  const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2_000 });
  try {
    await c.connect();
    await c.query('SELECT 1');
    return true;
  } catch {
    return false;
  } finally {
    await c.end().catch(() => undefined);
  }
}

/** `liftoff server` on a free port with its own HOME and data dir (and a fresh PostgreSQL database when given one). */
export async function startServer({ flags = [], database: pgBase, home: givenHome } = {}) {
  const home = givenHome ?? tempDir();
  // As root, agents give jobs users of their own, who must enter the agent data dirs under this HOME.
  chmodSync(home, 0o711);
  const database = pgBase ? await freshPgDatabase(pgBase) : undefined;
  const args = [
    'server',
    '--port',
    '0',
    '--data-dir',
    join(home, 'data'),
    ...(database ? ['--database', database] : []),
    ...flags,
  ];
  const proc = spawnLiftoff(args, { HOME: home });
  const [, url] = await proc.waitFor(/listening on (http:\/\/\S+)/);
  const creds = readCredentials(join(home, '.config', 'liftoff', 'credentials'));
  const env = { HOME: home, LIFTOFF_BASE_URL: url, LIFTOFF_API_KEY: creds.api_key };
  return {
    url,
    home,
    env,
    pid: proc.child.pid,
    proc,
    databaseUrl: database,
    client: new LiftoffClient({ baseUrl: url, apiKey: creds.api_key }),
  };
}

/** Uploads a code archive of one small file: the code of the benchmarks' trivial jobs. Its id. */
export async function archiveOf(client) {
  const dir = join(tempDir(), 'code');
  mkdirSync(dir);
  writeFileSync(join(dir, 'README'), 'benchmark code');
  return (await client.uploadArchive(await packDirectory(dir))).id;
}

/** Registers `id` as an agent on queue "default" through the API, for benchmarks that speak the protocol themselves. */
export function registerProtocolAgent(client, id) {
  return client.registerAgent({
    id,
    name: id,
    entity: 'default',
    hostname: 'bench',
    queues: ['default'],
    version: 'bench',
    max_jobs: 1,
  });
}

/** Pushes an item on queue "default" and has protocol agent `agentId` claim and ack it: the run id it now holds. */
export async function heldRun(client, agentId) {
  const item = await client.push('default', 'default', {
    spec: { source: { type: 'git', url: 'https://example.com/r.git' }, entry_point: ['true'] },
  });
  await client.poll(agentId, { queues: ['default'], max_items: 1, wait_ms: 0 });
  return (await client.ackItem(item.id, agentId)).id;
}

let agentCount = 0;
export async function startAgent(server, { queues = ['default'], maxJobs = 1, pollInterval, name } = {}) {
  const id = name ?? `bench-${++agentCount}-${Math.random().toString(36).slice(2, 6)}`;
  const args = ['launch-agent', '--name', id, '--data-dir', join(server.home, 'agents', id), '-j', String(maxJobs)];
  for (const q of queues) args.push('-q', q);
  if (pollInterval) args.push('--poll-interval', String(pollInterval));
  const proc = spawnLiftoff(args, server.env);
  await proc.waitFor(/polling /);
  return { id, proc, pid: proc.child.pid };
}

/** CPU seconds (user + system) and resident memory of a process, from /proc. */
export function procStats(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]);
  const rssKb = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
  return { cpuSeconds: ticks / 100, rssMb: rssKb / 1024 };
}

/** CPU use (fraction of one core) and peak RSS of a process over `ms`. */
export async function sampleProcess(pid, ms) {
  const start = procStats(pid);
  let peak = start.rssMb;
  const t0 = Date.now();
  while (Date.now() - t0 < ms) {
    await sleep(Math.min(500, ms));
    peak = Math.max(peak, procStats(pid).rssMb);
  }
  const end = procStats(pid);
  return {
    cpuCores: (end.cpuSeconds - start.cpuSeconds) / ((Date.now() - t0) / 1000),
    rssMb: end.rssMb,
    peakRssMb: peak,
  };
}

export function percentiles(samples) {
  const s = [...samples].sort((a, b) => a - b);
  const at = (p) => s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
  return { n: s.length, p50: at(50), p95: at(95), p99: at(99), min: s[0], max: s.at(-1) };
}

export function median(values) {
  return percentiles(values).p50;
}

export function machine() {
  const cpu = cpus();
  return {
    cpu: cpu[0]?.model ?? 'unknown',
    cores: cpu.length,
    memoryGb: Math.round(totalmem() / 1024 ** 3),
    node: process.version,
    kernel: release(),
    date: new Date().toISOString(),
  };
}

export const fmtMs = (v) =>
  v === undefined || v === null ? '-' : v >= 1000 ? `${(v / 1000).toFixed(2)} s` : `${v.toFixed(v < 10 ? 2 : 1)} ms`;
export const ratio = (a, b) => (b > 0 ? `${(a / b).toFixed(a / b < 10 ? 2 : 0)}×` : '-');
