import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_DYNAMIC_RANGE } from '@liftoff/agent';
import { codeDir } from '../helpers/jobs.js';
import {
  ORDINARY_USER,
  PROBE_SCRIPT,
  ensureOrdinaryUser,
  ids,
  isRoot,
  probeResults,
  type Probe,
} from '../helpers/probe.js';
import {
  agentConfig,
  agentKey,
  cleanupAll,
  cli,
  liftoff,
  onCleanup,
  sleep,
  startAgent,
  startServer,
  tempDir,
  type Proc,
  type TestAgent,
  type TestServer,
} from '../helpers/procs.js';

/** Issue #11, points 1, 3 and 10 (files): local-process jobs under a user of their own, on a root agent. */

async function until<T>(fn: () => Promise<T | undefined>, ms = 30_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error('timed out');
    await sleep(100);
  }
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** Pushes a job and returns its item id. */
async function push(server: { env: Record<string, string> }, args: string[]): Promise<string> {
  const r = await cli(['launch', '--json', ...args], server.env);
  if (r.code !== 0) throw new Error(r.output);
  return (JSON.parse(r.output) as { id: string }).id;
}

async function runOf(server: TestServer | { client: TestServer['client'] }, itemId: string): Promise<string> {
  return until(async () => (await server.client.getItem(itemId)).run_id ?? undefined);
}

async function logsUntil(server: { client: TestServer['client'] }, runId: string, re: RegExp): Promise<string> {
  return until(async () => {
    const { data } = await server.client.readLogs(runId);
    return re.test(data) ? data : undefined;
  });
}

async function ended(server: { client: TestServer['client'] }, itemId: string) {
  return until(async () => {
    const item = await server.client.getItem(itemId);
    return ['finished', 'failed', 'stopped'].includes(item.state) ? item : undefined;
  }, 60_000);
}

const requireRoot = (): boolean => {
  if (isRoot()) return true;
  const reason = 'per-job users need a root test run';
  if (process.env.LIFTOFF_REQUIRE_SERVICES === '1') throw new Error(`${reason} (LIFTOFF_REQUIRE_SERVICES=1)`);
  console.warn(`\n*** SKIPPING per-job user suites: ${reason} ***\n`);
  return false;
};

describe.skipIf(!requireRoot())('per-job users on a root agent (run-as default: dynamic)', () => {
  let server: TestServer;
  let agent: TestAgent;
  let agentData: string;

  beforeAll(async () => {
    server = await startServer();
    agentData = join(server.home, 'agents', 'jobuser');
    // What a real agent host holds: cloud secrets in the agent's environment, docker's registry credentials.
    mkdirSync(join(server.home, '.docker'), { recursive: true, mode: 0o700 });
    writeFileSync(join(server.home, '.docker', 'config.json'), '{"auths":{"r":{"auth":"c2VjcmV0"}}}', { mode: 0o600 });
    agent = await startAgent(server, {
      name: 'jobuser',
      dataDir: agentData,
      maxJobs: 4,
      env: { AWS_SECRET_ACCESS_KEY: 'agent-aws-secret', GITHUB_TOKEN: 'agent-gh-token' },
    });
  });
  afterAll(cleanupAll);

  it('runs a code job as a uid of its own, in a 0700 work dir it owns, with its run config and its exit code', async () => {
    const dir = codeDir({
      'train.py': [
        'import json, os, sys',
        'cfg = json.loads(os.environ["LIFTOFF_RUN_CONFIG"])',
        'with open("checkpoint.txt", "w") as f: f.write("epoch %d" % cfg["epochs"])',
        'st = os.stat(".")',
        'print("UID", os.getuid(), "GID", os.getgid(), "GROUPS", os.getgroups(), flush=True)',
        'print("WORKDIR", os.getcwd(), oct(st.st_mode & 0o7777), st.st_uid, os.environ["HOME"] == os.getcwd(), flush=True)',
        'print("OWN-SOURCE", os.stat("train.py").st_uid == os.getuid(), flush=True)',
        'print("CHECKPOINT", open(os.path.join(os.environ["HOME"], "checkpoint.txt")).read(), flush=True)',
        'sys.exit(cfg["code"])',
      ].join('\n'),
    });
    const r = await cli(
      ['launch', '--code', dir, '-E', 'python3 train.py', '--set', 'epochs=3', '--set', 'code=7', '--wait'],
      server.env,
    );
    expect(r.code).toBe(7);
    const uid = Number(/UID (\d+)/.exec(r.output)?.[1]);
    expect(uid).toBeGreaterThanOrEqual(DEFAULT_DYNAMIC_RANGE.first);
    expect(uid).toBeLessThan(DEFAULT_DYNAMIC_RANGE.first + DEFAULT_DYNAMIC_RANGE.count);
    expect(r.output).toContain(`GID ${uid} GROUPS []`); // no supplementary group (docker, disk, ...)
    expect(r.output).toMatch(new RegExp(`WORKDIR ${agentData}/work/\\S+ 0o700 ${uid} True`));
    expect(r.output).toContain('OWN-SOURCE True');
    expect(r.output).toContain('CHECKPOINT epoch 3');
    const runId = /run (\w+) failed/.exec(r.output)?.[1] as string;
    const run = await server.client.getRun(runId);
    expect(run.status).toBe('failed');
    expect(run.exit_code).toBe(7);
    expect(run.error_stage).toBe('run');
  });

  it("cannot read the agent's secrets, files, Docker socket, or another run's work dir and environment", async () => {
    // The victim: another run holding a file and an environment secret of its own.
    const victimDir = codeDir({
      'victim.py':
        'import os, time\nopen("private.txt", "w").write("victim data")\nprint("VICTIM", os.getpid(), os.environ["LIFTOFF_RUN_ID"], flush=True)\ntime.sleep(60)\n',
    });
    const victimItem = await push(server, [
      '--code',
      victimDir,
      '-E',
      'python3 victim.py',
      '--env',
      'VICTIM_SECRET=v1',
    ]);
    const victimRun = await runOf(server, victimItem);
    const victimLog = await logsUntil(server, victimRun, /VICTIM \d+/);
    const victimPid = Number(/VICTIM (\d+)/.exec(victimLog)?.[1]);

    const probes: Probe[] = [
      { name: 'credentials', kind: 'read', path: join(server.home, '.config', 'liftoff', 'credentials') },
      { name: 'agent-environ', kind: 'read', path: `/proc/${agent.proc.pid}/environ` },
      { name: 'docker-config', kind: 'read', path: join(server.home, '.docker', 'config.json') },
      { name: 'other-workdir-list', kind: 'list', path: join(agentData, 'work', victimRun) },
      { name: 'other-workdir-file', kind: 'read', path: join(agentData, 'work', victimRun, 'private.txt') },
      { name: 'other-environ', kind: 'read', path: `/proc/${victimPid}/environ` },
      { name: 'work-root-list', kind: 'list', path: join(agentData, 'work') },
      { name: 'state-dirs', kind: 'list', path: join(agentData, 'runs') },
    ];
    const dockerSocket = '/var/run/docker.sock';
    if (existsSync(dockerSocket)) probes.push({ name: 'docker-socket', kind: 'connect', path: dockerSocket });
    const dir = codeDir({ 'probe.py': PROBE_SCRIPT });
    const r = await cli(
      ['launch', '--code', dir, '-E', 'python3 probe.py', '--env', `PROBES=${JSON.stringify(probes)}`, '--wait'],
      server.env,
    );
    expect(r.code).toBe(0);
    const results = probeResults(r.output);
    expect(Object.keys(results).sort()).toEqual(probes.map((p) => p.name).sort());
    for (const p of probes) expect(`${p.name}: ${results[p.name]}`).toBe(`${p.name}: DENIED`);
    expect(ids(r.output)?.groups).toEqual([]);
    // The same files and processes are there and readable for the agent's user: the probes above were real.
    expect(readFileSync(join(agentData, 'work', victimRun, 'private.txt'), 'utf8')).toBe('victim data');
    expect(readFileSync(`/proc/${victimPid}/environ`, 'utf8')).toContain('VICTIM_SECRET=v1');
    expect(readFileSync(`/proc/${agent.proc.pid}/environ`, 'utf8')).toContain('AWS_SECRET_ACCESS_KEY=agent-aws-secret');
    await server.client.cancelRun(victimRun);
    await ended(server, victimItem);
  });

  it('kills whatever still runs under the uid of an ended run, even outside its process group', async () => {
    const dir = codeDir({
      'escape.py':
        'import os, subprocess\np = subprocess.Popen(["sleep", "120"], start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\nprint("ESCAPED", p.pid, flush=True)\n',
    });
    const r = await cli(['launch', '--code', dir, '-E', 'python3 escape.py', '--wait'], server.env);
    expect(r.code).toBe(0);
    const pid = Number(/ESCAPED (\d+)/.exec(r.output)?.[1]);
    expect(pid).toBeGreaterThan(0);
    await until(async () => (alive(pid) ? undefined : true), 5_000);
  });
});

describe.skipIf(!isRoot())('the pid record a restarted agent acts on', () => {
  afterAll(cleanupAll);

  it('is agent-owned: a job forging one cannot make a restarted agent kill another process', async () => {
    const server = await startServer();
    const agentData = join(server.home, 'agents', 'phoenix');
    // Some process on the host (its own process group), which a forged record names.
    const victim = spawn('sleep', ['300'], { detached: true, stdio: 'ignore' });
    onCleanup(() => {
      try {
        process.kill(-(victim.pid as number), 'SIGKILL');
      } catch {
        // Gone.
      }
    });
    const victimPid = victim.pid as number;
    const stat = readFileSync(`/proc/${victimPid}/stat`, 'utf8');
    const start = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
    // The supervisor's record names the process group the agent signals on cancel.
    const forged = JSON.stringify({ supervisor: { pid: victimPid, start }, job: { pid: victimPid, start } });
    const dir = codeDir({
      'forge.py': [
        'import json, os, sys, time',
        'forged = sys.argv[1]',
        'time.sleep(0.5)  # after the agent wrote its own record',
        'for name in (".liftoff-process.json", "process.json"):',
        '    if os.path.exists(name): os.remove(name)  # the job owns its work dir, whoever wrote the file',
        '    open(name, "w").write(forged)',
        'state = os.path.join(os.environ["STATE_ROOT"], os.environ["LIFTOFF_RUN_ID"], "process.json")',
        'try:',
        '    open(state, "w").write(forged); print("STATE-WRITE OK", flush=True)',
        'except PermissionError:',
        '    print("STATE-WRITE DENIED", flush=True)',
        'print("FORGED", flush=True)',
        'time.sleep(120)',
      ].join('\n'),
    });
    const agent = await startAgent(server, { name: 'phoenix', dataDir: agentData });
    const itemId = await push(server, [
      '--code',
      dir,
      '-E',
      'python3 forge.py',
      '--env',
      `STATE_ROOT=${join(agentData, 'runs')}`,
      '--',
      forged,
    ]);
    const runId = await runOf(server, itemId);
    const log = await logsUntil(server, runId, /FORGED/);
    expect(log).toContain('STATE-WRITE DENIED');
    agent.proc.kill('SIGKILL');
    await agent.proc.exited;

    // The restarted agent goes by its own record only: it re-attaches to the job, then stops it on cancel.
    const back = await startAgent(server, { name: 'phoenix', dataDir: agentData });
    await back.proc.waitFor(new RegExp(`re-adopted run ${runId}`));
    await server.client.cancelRun(runId);
    const item = await ended(server, itemId);
    expect(item.state).toBe('stopped');
    await sleep(300);
    expect(alive(victimPid)).toBe(true);
    await until(async () => (existsSync(join(agentData, 'runs', runId)) ? undefined : true));
  });
});

describe.skipIf(!isRoot())('liftoff up as root', () => {
  afterAll(cleanupAll);

  it("gives jobs their own users: they cannot read the admin key, the server's database, or its environment", async () => {
    const home = tempDir('liftoff-up-home-');
    // An operator's HOME that others may enter: the credentials must then hold by their own modes.
    const { chmodSync } = await import('node:fs');
    chmodSync(home, 0o711);
    const dataDir = join(home, 'data');
    const up: Proc = liftoff(['up', '--port', '0', '--data-dir', dataDir], {
      HOME: home,
      AWS_SECRET_ACCESS_KEY: 'up-aws-secret',
    });
    const [, url] = (await up.waitFor(/Liftoff is up at (http:\/\/\S+)/, 30_000)) as unknown as [string, string];
    expect(up.output).toContain('local-process jobs run as a uid of their own');
    const credentials = join(home, '.config', 'liftoff', 'credentials');
    expect(statSync(credentials).mode & 0o777).toBe(0o600);
    expect(statSync(join(home, '.config', 'liftoff')).mode & 0o777).toBe(0o700);
    const env = { HOME: home, LIFTOFF_BASE_URL: url };
    const probes: Probe[] = [
      { name: 'credentials', kind: 'read', path: credentials },
      { name: 'credentials-dir', kind: 'list', path: join(home, '.config', 'liftoff') },
      { name: 'up-environ', kind: 'read', path: `/proc/${up.pid}/environ` },
      { name: 'database', kind: 'read', path: join(dataDir, 'liftoff.db') },
      { name: 'archives', kind: 'list', path: join(dataDir, 'archives') },
      // 0711: job users pass through the data dir to their work dirs but cannot list it.
      { name: 'data-dir', kind: 'list', path: dataDir },
    ];
    const dir = codeDir({ 'probe.py': PROBE_SCRIPT });
    const r = await cli(
      ['launch', '--code', dir, '-E', 'python3 probe.py', '--env', `PROBES=${JSON.stringify(probes)}`, '--wait'],
      env,
    );
    expect(r.code).toBe(0);
    const results = probeResults(r.output);
    for (const p of probes) expect(`${p.name}: ${results[p.name]}`).toBe(`${p.name}: DENIED`);
    expect(ids(r.output)?.uid).toBeGreaterThanOrEqual(DEFAULT_DYNAMIC_RANGE.first);
    expect(r.output).not.toContain('AWS_SECRET_ACCESS_KEY');
    up.kill('SIGTERM');
    await up.exited;
  });
});

describe.skipIf(!isRoot())('run-as: {user, group} on a root agent', () => {
  afterAll(cleanupAll);

  it('runs jobs as that user with no supplementary groups, and refuses root or an unknown user at start', async () => {
    const user = ensureOrdinaryUser();
    const server = await startServer();
    await startAgent(server, { config: agentConfig(tempDir(), `run-as: {user: ${ORDINARY_USER}}\n`) });
    const dir = codeDir({ 'probe.py': PROBE_SCRIPT });
    const r = await cli(['launch', '--code', dir, '-E', 'python3 probe.py', '--wait'], server.env);
    expect(r.code).toBe(0);
    expect(ids(r.output)).toEqual({ uid: user.uid, gid: user.gid, groups: [] });

    for (const [config, message] of [
      ['run-as: {user: root}\n', "is uid 0, root: jobs would keep the agent's powers"],
      ['run-as: {user: no-such-user-here}\n', 'user "no-such-user-here" does not exist on this host'],
    ] as const) {
      const refused = await cli(
        ['launch-agent', '-q', 'default', '-c', agentConfig(tempDir(), config), '--data-dir', join(server.home, 'x')],
        { ...server.env, LIFTOFF_API_KEY: await agentKey(server) },
      );
      expect(refused.code).toBe(2);
      expect(refused.output).toContain(message);
    }
  });
});
