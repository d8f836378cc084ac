import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LiftoffClient, readCredentials, splitLogPage } from '@liftoff/core';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const BIN = join(ROOT, 'packages', 'cli', 'dist', 'bin.js');

const cleanups: Array<() => void | Promise<void>> = [];

/** Registers a cleanup; call `cleanupAll` from afterAll/afterEach. */
export function onCleanup(fn: () => void | Promise<void>): void {
  cleanups.push(fn);
}
export async function cleanupAll(): Promise<void> {
  while (cleanups.length) await cleanups.pop()?.();
}

export function tempDir(prefix = 'liftoff-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  onCleanup(() => {
    unmountUnder(dir);
    rmSync(dir, { recursive: true, force: true });
  });
  return dir;
}

/**
 * Unmounts what is mounted under `dir`, deepest first: an agent a test killed (SIGKILL) leaves its runs' output
 * tmpfs mounted, and its idle ones (outputs/outputDirs.ts), as a crashed agent would until it starts again on
 * the same data dir; rm cannot remove a mount point (EBUSY).
 */
export function unmountUnder(dir: string): void {
  let mounts: string;
  try {
    mounts = readFileSync('/proc/self/mounts', 'utf8');
  } catch {
    return;
  }
  const points = mounts
    .split('\n')
    .map((l) => l.split(' ')[1] ?? '')
    .map((p) => p.replace(/\\(\d{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))))
    .filter((p) => p.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length);
  for (const p of points) spawnSync('umount', [p], { stdio: 'ignore' });
}

/**
 * A temp dir jobs may write into (mode 1777, like /tmp): on a root agent a job runs as a uid of its own, which
 * cannot write into the test's 0700 temp dirs.
 */
export function jobWritableDir(prefix = 'liftoff-shared-'): string {
  const dir = tempDir(prefix);
  chmodSync(dir, 0o1777);
  return dir;
}

/** Polls `fn` every 100 ms until it gives a value (anything but undefined); fails after `ms`. */
export async function until<T>(fn: () => Promise<T | undefined> | T | undefined, ms = 30_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error('condition not met in time');
    await sleep(100);
  }
}

/** A run's job output (the agent's notes left out), read page by page to the end. */
export async function outputOf(client: LiftoffClient, runId: string): Promise<string> {
  let out = '';
  let offset = 0;
  for (;;) {
    const page = await client.readLogs(runId, offset);
    for (const s of splitLogPage(page)) if (s.kind === 'output') out += s.text;
    if (page.next_offset === offset) return out;
    offset = page.next_offset;
  }
}

/** A live process with this pid (a zombie, dead but not yet reaped, is not). */
export const alive = (pid: number): boolean =>
  existsSync(`/proc/${pid}`) && !readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z ');

/** A child process of the `liftoff` binary with its output captured. */
export class Proc {
  output = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  constructor(readonly child: ChildProcess) {
    child.stdout?.on('data', (b: Buffer) => (this.output += b.toString()));
    child.stderr?.on('data', (b: Buffer) => (this.output += b.toString()));
    this.exited = new Promise((res) => child.once('exit', (code, signal) => res({ code, signal })));
    onCleanup(() => this.kill('SIGKILL'));
  }
  get pid(): number {
    return this.child.pid as number;
  }
  kill(signal: NodeJS.Signals = 'SIGTERM'): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
  }
  /** Resolves with the first match of `re` in the output, or rejects after `ms`. */
  async waitFor(re: RegExp, ms = 20_000): Promise<RegExpMatchArray> {
    const until = Date.now() + ms;
    for (;;) {
      const m = this.output.match(re);
      if (m) return m;
      if (this.child.exitCode !== null)
        throw new Error(`process exited (${this.child.exitCode}) before ${re}:\n${this.output}`);
      if (Date.now() > until) throw new Error(`timed out waiting for ${re}; output:\n${this.output}`);
      await sleep(25);
    }
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function liftoff(args: string[], env: Record<string, string>, cwd = ROOT): Proc {
  const child = spawn(process.execPath, [BIN, ...args], {
    cwd,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return new Proc(child);
}

/** Runs a CLI command to completion. */
export async function cli(args: string[], env: Record<string, string>, cwd = ROOT) {
  const p = liftoff(args, env, cwd);
  const { code } = await p.exited;
  return { code, output: p.output };
}

export interface TestServer {
  url: string;
  home: string;
  dataDir: string;
  apiKey: string;
  env: Record<string, string>;
  client: LiftoffClient;
  proc: Proc;
  stop(): Promise<void>;
}

/** Starts `liftoff server` on a free port with its own HOME and data dir. */
export async function startServer(
  /** `apiKey`: a replica joining a database that already has keys writes no credentials; use the first one's. */
  opts: { flags?: string[]; home?: string; dataDir?: string; apiKey?: string; env?: Record<string, string> } = {},
): Promise<TestServer> {
  const home = opts.home ?? tempDir('liftoff-home-');
  // Agents keep their data dirs (and so the work dirs of their job users) under this home: job users must be able
  // to enter it (not list it). What is secret in it has modes of its own (~/.config/liftoff is 0700).
  chmodSync(home, 0o711);
  const dataDir = opts.dataDir ?? join(home, 'data');
  const proc = liftoff(['server', '--port', '0', '--data-dir', dataDir, ...(opts.flags ?? [])], {
    ...opts.env,
    HOME: home,
  });
  const [, url] = (await proc.waitFor(/listening on (http:\/\/\S+)/)) as unknown as [string, string];
  const creds = opts.apiKey
    ? { api_key: opts.apiKey }
    : readCredentials(join(home, '.config', 'liftoff', 'credentials'));
  if (!creds) throw new Error('server wrote no credentials');
  const env = { HOME: home, LIFTOFF_BASE_URL: url, LIFTOFF_API_KEY: creds.api_key };
  return {
    url,
    home,
    dataDir,
    apiKey: creds.api_key,
    env,
    client: new LiftoffClient({ baseUrl: url, apiKey: creds.api_key }),
    proc,
    async stop() {
      proc.kill('SIGTERM');
      await proc.exited;
    },
  };
}

export interface TestAgent {
  proc: Proc;
  name: string;
  /** The agent key it runs with (its id is bound to it), for tests that speak for the agent themselves. */
  key: string;
  stop(): Promise<{ code: number | null }>;
}

/** Mints an agent-role key for `entity`, as an operator would for an agent (`liftoff keys create --agent`). */
export async function agentKey(server: TestServer, entity = 'default', name = 'test-agent'): Promise<string> {
  const created = await server.client.createKey({
    name: `${name}-${Math.random().toString(36).slice(2, 8)}`,
    role: 'agent',
    entity,
  });
  return created.key;
}

/** The agent key each agent (server, entity, name) was started with, reused when it is started again. */
const agentKeys = new Map<string, string>();

/**
 * Starts `liftoff launch-agent` against a test server and waits until it polls. It authenticates with an agent key
 * of its entity (`entity`, else `-e` in `extra`, else "default"), never the admin key, as users will run agents.
 */
export async function startAgent(
  server: TestServer,
  opts: {
    queues?: string[];
    maxJobs?: number;
    name?: string;
    config?: string;
    extra?: string[];
    dataDir?: string;
    entity?: string;
    /** Extra environment of the agent process. */
    env?: Record<string, string>;
  } = {},
): Promise<TestAgent> {
  const name = opts.name ?? `agent-${Math.random().toString(36).slice(2, 8)}`;
  const args = ['launch-agent', '--name', name, '--data-dir', opts.dataDir ?? join(server.home, 'agents', name)];
  for (const q of opts.queues ?? ['default']) args.push('-q', q);
  if (opts.maxJobs !== undefined) args.push('-j', String(opts.maxJobs));
  if (opts.config) args.push('-c', opts.config);
  args.push(...(opts.extra ?? []));
  const flag = (opts.extra ?? []).findIndex((a) => a === '-e' || a === '--entity');
  const entity = opts.entity ?? (flag >= 0 ? opts.extra?.[flag + 1] : undefined) ?? 'default';
  if (opts.entity) args.push('-e', opts.entity);
  // A restarted agent keeps its key, as an operator's would: its id is bound to the key that first registered it.
  // By data dir, not URL: a server restarted on the same data dir listens on another port but knows the key.
  const slot = `${server.dataDir} ${entity} ${name}`;
  const key = agentKeys.get(slot) ?? (await agentKey(server, entity, name));
  agentKeys.set(slot, key);
  // Registered first, so it runs after the agent's own SIGKILL: local-process jobs outlive their agent (each under
  // a supervisor), so a test that ends with one still running would leave it behind.
  onCleanup(() => stopSupervisedJobs(opts.dataDir ?? join(server.home, 'agents', name)));
  const proc = liftoff(args, { ...server.env, ...opts.env, LIFTOFF_API_KEY: key });
  await proc.waitFor(/polling /);
  return {
    proc,
    name,
    key,
    async stop() {
      proc.kill('SIGTERM');
      return proc.exited;
    },
  };
}

/**
 * SIGKILLs every local-process job an agent with this data dir still supervises, and its supervisor first (else
 * the supervisor writes the job's status into the run's dir while the test's temp dirs are being removed).
 */
export function stopSupervisedJobs(dataDir: string): void {
  unmountJobOutputs(dataDir);
  const runs = join(dataDir, 'runs');
  if (!existsSync(runs)) return;
  // Only the process a record names (same start time), not a later one that got its pid.
  const same = (p: { pid?: unknown; start?: unknown } | undefined): p is { pid: number } => {
    if (typeof p?.pid !== 'number' || p.pid <= 1) return false;
    try {
      const stat = readFileSync(`/proc/${p.pid}/stat`, 'utf8');
      return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] === p.start;
    } catch {
      return false;
    }
  };
  for (const id of readdirSync(runs)) {
    let record: { supervisor?: { pid?: unknown; start?: unknown }; job?: { pid?: unknown; start?: unknown } };
    try {
      record = JSON.parse(readFileSync(join(runs, id, 'process.json'), 'utf8')) as typeof record;
    } catch {
      continue; // no record: nothing was started
    }
    for (const [p, group] of [
      [record.supervisor, false],
      [record.job, true],
    ] as const) {
      if (!same(p)) continue;
      try {
        process.kill(group ? -p.pid : p.pid, 'SIGKILL');
      } catch {
        // Gone meanwhile.
      }
    }
  }
}

/** Writes an agent config that makes cancellation fast in tests. */
export function agentConfig(dir: string, yaml: string): string {
  const path = join(dir, `launch-config-${Math.random().toString(36).slice(2, 8)}.yaml`);
  writeFileSync(path, yaml);
  return path;
}

export function readText(path: string): string {
  return readFileSync(path, 'utf8');
}

/**
 * A root agent mounts a tmpfs on each run's output dir (docs/outputs.md); one killed mid-run and never restarted
 * leaves it mounted, and removing the test's temp dirs would then fail with EBUSY: they are unmounted first.
 */
function unmountJobOutputs(dataDir: string): void {
  const under = `${join(dataDir, 'job-outputs')}/`;
  let mounts: string;
  try {
    mounts = readFileSync('/proc/self/mounts', 'utf8');
  } catch {
    return;
  }
  for (const line of mounts.split('\n')) {
    const at = line.split(' ')[1];
    if (at?.startsWith(under)) spawnSync('umount', [at], { stdio: 'ignore' });
  }
}
