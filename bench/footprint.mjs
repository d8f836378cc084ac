// Footprint: start-up time of quick CLI commands next to bare node, idle RSS of agents next to an idle bare node,
// and one agent's RSS and CPU while it supervises 100 concurrent local jobs. Targets are issue 20's.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { packDirectory } from '@liftoff/cli';
import { BIN, ROOT, fmtMs, percentiles, sampleProcess, sleep, startAgent, startServer, tempDir } from './lib.mjs';

const RECORDER = join(ROOT, 'bench', 'loadedModules.mjs');

/**
 * Wall time of one process from spawn to exit. The environment is PATH plus `env` only: NODE_EXTRA_CA_CERTS and
 * NODE_OPTIONS of the calling shell would make every start (bare node's too) read and parse a CA bundle or more.
 */
function timed(args, env = {}) {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const child = spawn(process.execPath, args, {
      cwd: ROOT,
      env: { PATH: process.env.PATH, ...env },
      stdio: 'ignore',
    });
    child.once('error', reject);
    child.once('exit', (code) =>
      code === 0
        ? resolve(Number(process.hrtime.bigint() - t0) / 1e6)
        : reject(new Error(`node ${args.join(' ')} exited ${code}`)),
    );
  });
}

/** Modules a run loads (ES modules and CommonJS, see loadedModules.mjs), deduplicated. */
function moduleCount(logFile) {
  if (!existsSync(logFile)) return 0;
  const lines = readFileSync(logFile, 'utf8').split('\n').filter(Boolean);
  return new Set(lines.map((l) => (l.startsWith('file:') ? fileURLToPath(l) : l))).size;
}

async function recordedRun(args, env) {
  const log = join(tempDir(), 'modules.txt');
  await timed(['--import', RECORDER, ...args], { ...env, LIFTOFF_MODULE_LOG: log });
  return moduleCount(log);
}

/** An agent started under the module recorder, stopped once it polls: what it loads to start and idle. */
async function recordedAgent(server, queue) {
  const log = join(tempDir(), 'modules.txt');
  const name = `rec-${Math.random().toString(36).slice(2, 8)}`;
  const child = spawn(
    process.execPath,
    [
      '--import',
      RECORDER,
      BIN,
      'launch-agent',
      '--name',
      name,
      '--data-dir',
      join(server.home, 'agents', name),
      '-q',
      queue,
    ],
    {
      cwd: ROOT,
      env: { PATH: process.env.PATH, ...server.env, LIFTOFF_MODULE_LOG: log },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let out = '';
  child.stdout.on('data', (b) => (out += b));
  const exited = new Promise((r) => child.once('exit', r));
  const until = Date.now() + 60_000;
  while (!/polling /.test(out) && child.exitCode === null && Date.now() < until) await sleep(50);
  child.kill('SIGTERM');
  await exited;
  return moduleCount(log);
}

function dockerAvailable() {
  try {
    execFileSync('docker', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

const mb = (s) => `${s.rssMb.toFixed(0)} MB (${s.peakRssMb.toFixed(0)} MB)`;
const x = (a, b) => `${(a / b).toFixed(1)}×`;

export default {
  name: 'footprint',
  title: 'Footprint',
  async run({ quick }) {
    const rounds = quick ? 3 : 25;
    const jobs = quick ? 5 : 100;
    const idleMs = quick ? 3_000 : 20_000;
    const load = loadavg()[0];
    const server = await startServer();

    // Start-up: the three commands interleaved round by round, so that load from elsewhere hits them alike.
    const commands = [
      { what: 'bare `node -e 0`', args: ['-e', '0'], env: {} },
      { what: '`liftoff --help`', args: [BIN, '--help'], env: { HOME: tempDir() }, target: 5 },
      { what: '`liftoff queue list` (server on loopback)', args: [BIN, 'queue', 'list'], env: server.env, target: 8 },
    ];
    const samples = commands.map(() => []);
    for (let i = 0; i < rounds + 2; i++) {
      for (const [j, c] of commands.entries()) {
        const ms = await timed(c.args, c.env);
        if (i >= 2) samples[j].push(ms); // two warm-up rounds (page cache, the server's first requests)
      }
    }
    const stats = samples.map(percentiles);
    const modules = await Promise.all(commands.map((c) => recordedRun(c.args, c.env)));
    const bare = stats[0].p50;
    const startupRows = commands.map((c, j) => [
      c.what,
      `${fmtMs(stats[j].p50)} / ${fmtMs(stats[j].p95)}`,
      j === 0 ? '1×' : x(stats[j].p50, bare),
      c.target ? `≤ ${c.target}× ${stats[j].p50 / bare <= c.target ? '(met)' : '(not met)'}` : '-',
      String(modules[j]),
    ]);

    // Idle RSS: a bare node process with a timer, an agent on a local-process queue, one on a container queue.
    const docker = dockerAvailable();
    if (docker) await server.client.createQueue('default', { name: 'boxes', resource: 'local-container' });
    const bareChild = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], {
      env: { PATH: process.env.PATH },
      stdio: 'ignore',
    });
    const bareExit = new Promise((r) => bareChild.once('exit', r));
    const agent = await startAgent(server, { maxJobs: jobs });
    const boxAgent = docker ? await startAgent(server, { queues: ['boxes'] }) : undefined;
    await sleep(2_000);
    const [bareIdle, idle, boxIdle] = await Promise.all([
      sampleProcess(bareChild.pid, idleMs),
      sampleProcess(agent.pid, idleMs),
      boxAgent ? sampleProcess(boxAgent.pid, idleMs) : undefined,
    ]);
    bareChild.kill();
    await bareExit;
    if (boxAgent) {
      boxAgent.proc.child.kill('SIGTERM');
      await boxAgent.proc.exited;
    }
    const agentModules = await recordedAgent(server, 'default');
    const boxModules = docker ? await recordedAgent(server, 'boxes') : undefined;
    const idleRows = [
      ['bare node (a timer, nothing loaded)', mb(bareIdle), '1×', '-', '-'],
      [
        'agent, local-process queue',
        mb(idle),
        x(idle.rssMb, bareIdle.rssMb),
        `≤ 60 MB ${idle.rssMb <= 60 ? '(met)' : '(not met)'}`,
        String(agentModules),
      ],
      boxIdle
        ? [
            'agent, local-container queue',
            mb(boxIdle),
            x(boxIdle.rssMb, bareIdle.rssMb),
            `≤ 80 MB ${boxIdle.rssMb <= 80 ? '(met)' : '(not met)'}`,
            String(boxModules),
          ]
        : ['agent, local-container queue', 'no Docker engine', '-', '≤ 80 MB', '-'],
    ];

    // Busy: the local-process agent supervising `jobs` jobs that each print a line a second.
    const dir = join(tempDir(), 'code');
    mkdirSync(dir);
    writeFileSync(join(dir, 'job.sh'), 'i=0; while [ $i -lt 20 ]; do echo "tick $i"; i=$((i+1)); sleep 1; done\n');
    const archive = await server.client.uploadArchive(await packDirectory(dir));
    for (let i = 0; i < jobs; i++) {
      await server.client.push('default', 'default', {
        spec: { source: { type: 'code', archive_id: archive.id }, entry_point: ['sh', 'job.sh'] },
      });
    }
    while ((await server.client.getQueue('default', 'default')).pending > 0) await sleep(200);
    await sleep(2_000);
    const busy = await sampleProcess(agent.pid, quick ? 3_000 : 10_000);
    return {
      tables: [
        {
          title: 'Start-up of quick commands',
          how: `Wall time from spawn to exit, ${rounds} rounds after 2 of warm-up, the three commands interleaved in each round; environment PATH and HOME (and the server's URL and key) only, so no NODE_EXTRA_CA_CERTS. Modules: every ES and CommonJS module the process loads, counted in one more run under bench/loadedModules.mjs (before issue 20 every command loaded ~1,000, the server stack included).`,
          columns: ['command', 'p50 / p95', 'vs bare node (p50)', 'target', 'modules loaded'],
          rows: startupRows,
          notes: [
            `Load average (1 min) when the run started: ${load.toFixed(1)} on ${cpus().length} cores; other processes shared the machine, which slows every row (bare node's too), so read the ratios more than the milliseconds.`,
          ],
        },
        {
          title: 'Agent footprint',
          how: `RSS from /proc, sampled over ${idleMs / 1000} s (the last value, peak in brackets) after a 2 s settle, for all three at once: a bare node process, a \`liftoff launch-agent\` (max_jobs ${jobs}) on a local-process queue and one on a local-container queue, each parked in its long-poll. Then CPU and RSS of the local-process agent over ${quick ? 3 : 10} s while ${jobs} local-process jobs each print a line a second (their output streamed to the server).`,
          columns: ['process', 'RSS (peak)', 'vs bare node', 'target', 'modules loaded'],
          rows: [
            ...idleRows,
            [
              `agent supervising ${jobs} running jobs (${(busy.cpuCores * 100).toFixed(1)} % of a core)`,
              mb(busy),
              x(busy.rssMb, bareIdle.rssMb),
              '-',
              '-',
            ],
          ],
          notes: [
            `Idle CPU: the local-process agent ${(idle.cpuCores * 100).toFixed(2)} % of a core${boxIdle ? `, the container agent ${(boxIdle.cpuCores * 100).toFixed(2)} %` : ''}.`,
          ],
        },
      ],
      charts: [],
      json: {
        loadAverage: load,
        startup: commands.map((c, j) => ({ what: c.what, ...stats[j], modules: modules[j], target: c.target })),
        bareIdle,
        idle,
        containerIdle: boxIdle,
        modules: { agent: agentModules, containerAgent: boxModules },
        agentIdleCpuCores: idle.cpuCores,
        busy,
        jobs,
      },
    };
  },
};
