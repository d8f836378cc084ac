// Throughput: trivial jobs pushed → finished per second with 10 agents × max_jobs 8; and the raw claim rate of the
// API (push, pop, ack and report per item, no job run) next to graphile-worker's jobs per second.
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { graphileThroughput } from './graphile.mjs';
import {
  ROOT,
  archiveOf,
  median,
  ratio,
  sleep,
  startAgent,
  startServer,
  tmpfsDir,
  registerProtocolAgent,
} from './lib.mjs';

/** The last recorded run of this benchmark (bench/results.json), for the rows an API-only run does not measure. */
function previousRun() {
  const file = join(process.env.LIFTOFF_BENCH_OUT ?? join(ROOT, 'bench'), 'results.json');
  return existsSync(file) ? JSON.parse(readFileSync(file, 'utf8')).benchmarks?.throughput : undefined;
}

/** Pushes `count` items of `spec` from `parallel` clients, one per request or `batch` per request (pushBatch). */
async function pushAll(client, queue, spec, count, parallel = 16, batch = 1) {
  let next = 0;
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      while (next < count) {
        const n = Math.min(batch, count - next);
        next += n;
        if (batch === 1) await client.push('default', queue, { spec });
        else await client.pushBatch('default', queue, { items: Array.from({ length: n }, () => ({ spec })) });
      }
    }),
  );
}

/**
 * CPU ticks (user + system, with the waited-for children's: a supervisor's jobs and kill calls) of the liftoff
 * processes under `home`, by kind: the server, the agents, their job supervisors (whose argv names their data dir).
 */
function cpuTicksUnder(home) {
  const ticks = { server: 0, agents: 0, supervisors: 0 };
  for (const pid of readdirSync('/proc').filter((e) => /^\d+$/.test(e))) {
    try {
      const argv = readFileSync(`/proc/${pid}/cmdline`, 'latin1').split('\0');
      if (!argv.some((a) => a.startsWith(home))) continue;
      const kind = argv.includes('server') ? 'server' : argv.includes('launch-agent') ? 'agents' : 'supervisors';
      const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks[kind] += Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
    } catch {
      // Gone meanwhile.
    }
  }
  return ticks;
}

/** Trivial jobs per second, and the CPU milliseconds each cost the server, the agents and the supervisors. */
export async function jobsPerSecond({ database, agents, maxJobs, jobs, home, pushBatch = 1 }) {
  const server = await startServer({ database, home });
  const spec = { source: { type: 'code', archive_id: await archiveOf(server.client) }, entry_point: ['true'] };
  const started = await Promise.all(Array.from({ length: agents }, () => startAgent(server, { maxJobs })));
  // Warm-up: rounds of as many jobs as the agents have slots, pushed at once, until every slot has run a job (a root
  // agent mounts a slot's output tmpfs once, then reuses it: outputs/outputDirs.ts), so that the timed part is steady
  // state. One round was not enough: the agents do not claim a round evenly, and a perf profile of the timed part
  // then still found slots being mounted. Not longer than that: more warm-up let V8 finish compiling (its optimizing
  // compiler took ~9% of all CPU in the timed part, perf) but left more recently deleted inodes for this host's
  // journal-less ext4 to skip at every file creation (RESULTS.md says more), and the two came out even.
  const slotsOf = (agent) =>
    readdirSync(join(server.home, 'agents', agent.id, 'job-outputs')).filter((n) => n.startsWith('slot-')).length;
  const pooled = process.getuid?.() === 0;
  let warmUp = 0;
  for (let round = 0; round < 10 && (round === 0 || (pooled && started.some((a) => slotsOf(a) < maxJobs))); round++) {
    await pushAll(server.client, 'default', spec, agents * maxJobs, agents * maxJobs);
    warmUp += agents * maxJobs;
    await waitDrained(server.client, warmUp);
  }
  const before = cpuTicksUnder(server.home);
  const t0 = Date.now();
  await pushAll(server.client, 'default', spec, jobs, 16, pushBatch);
  await waitDrained(server.client, jobs + warmUp);
  const rate = jobs / ((Date.now() - t0) / 1000);
  const after = cpuTicksUnder(server.home);
  // Ticks are 10 ms (USER_HZ 100).
  const cpuMsPerJob = Object.fromEntries(
    Object.keys(after).map((k) => [k, Number((((after[k] - before[k]) * 10) / jobs).toFixed(2))]),
  );
  return { rate, cpuMsPerJob };
}

/**
 * Spawns `true` `count` times, `concurrency` at a time, from a fresh node process. Not from this one: a spawn forks
 * the spawning process, whose cost grows with its resident size, and this process holds every earlier benchmark's
 * clients and results (measured here, the baseline halved after a few runs, which flattered Liftoff's ratio).
 */
async function spawnTrueLoop({ concurrency, count, isolateAs, cgroupsModule }) {
  let next = 0;
  const run = (cmd, args, opts) =>
    new Promise((resolve, reject) =>
      spawn(cmd, args, { stdio: 'ignore', ...opts })
        .once('error', reject)
        .once('exit', resolve),
    );
  // What isolation adds to a job of a root agent at the least, done as its supervisor does it: `true` as a uid of its
  // own (an unused one) in a cgroup of its own, ended and removed after the exit (runners/jobCgroups.ts); where the
  // host has no usable cgroup v2, a second spawn instead, kill(-1) made as the uid.
  const cgroups =
    isolateAs !== undefined ? (await import(cgroupsModule)).JobCgroups.detect(process.pid).cgroups : undefined;
  const ids = { uid: isolateAs, gid: isolateAs };
  const t0 = Date.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count) {
        next++;
        if (isolateAs === undefined) {
          await run('true', []);
        } else if (cgroups) {
          let exited;
          const placed = cgroups.spawnInside(() => {
            const child = spawn('true', [], { stdio: 'ignore', ...ids });
            exited = new Promise((resolve) => child.once('exit', resolve));
            return child;
          });
          await exited;
          if (placed.cgroup) await cgroups.end(placed.cgroup);
        } else {
          await run('true', [], ids);
          await run('/usr/bin/kill', ['-9', '--', '-1'], ids);
        }
      }
    }),
  );
  const floor = isolateAs === undefined ? 'none' : cgroups ? 'cgroup' : 'kill';
  return { rate: count / ((Date.now() - t0) / 1000), floor };
}

/**
 * The ceiling for trivial jobs: a fresh node spawning `true` and waiting for it, `concurrency` at a time (issue 20's
 * yardstick). With `isolateAs`, each `true` runs as that uid and is isolated as a root agent's supervisor isolates a
 * job (see spawnTrueLoop): the floor that isolation costs before any bookkeeping. Resolves with the rate and which
 * floor was measured (`cgroup`, `kill`, or `none`).
 */
export async function spawnTruePerSecond({ concurrency, count, isolateAs }) {
  const cgroupsModule = join(ROOT, 'packages/agent/dist/runners/jobCgroups.js');
  const opts = JSON.stringify({ concurrency, count, ...(isolateAs !== undefined ? { isolateAs, cgroupsModule } : {}) });
  const code = `const { spawn } = await import('node:child_process');\n${spawnTrueLoop.toString()}\nconsole.log(JSON.stringify(await spawnTrueLoop(${opts})));`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  const status = await new Promise((resolve) => child.once('exit', resolve));
  let result;
  try {
    result = JSON.parse(out.trim());
  } catch {
    result = undefined;
  }
  if (status !== 0 || !Number.isFinite(result?.rate))
    throw new Error(`the spawn-true baseline failed (exit ${status}): ${out}`);
  return result;
}

/** The floors a root agent's isolation of a job can cost (spawnTrueLoop), by which the host allowed. */
const FLOORS = {
  cgroup: {
    short: 'one spawn in a cgroup',
    backend: 'node spawning true as a uid in a cgroup of its own',
    row: 'a fresh node spawning `true` as an unused uid in a cgroup of its own, ended and removed after it exits',
    note: "The isolation floor: a root agent's job runs as a uid of its own in a cgroup of its own, which its supervisor makes around the spawn and ends with one write to cgroup.kill once the job exits (runners/jobCgroups.ts, since 2026-12-04). A fresh node doing only that per job is the most any uid-isolated trivial job could reach; on hosts without a usable cgroup v2 a job ends with a second spawn instead, kill(-1) made as its uid, a floor of about half a spawn's rate (measured before: 463 jobs/s, 0.50×). The CPU row shows what the server, the agent and the supervisor's bookkeeping add.",
  },
  kill: {
    short: 'two spawns',
    backend: 'node spawning true then kill as a uid',
    row: 'a fresh node spawning `true` and then `kill -9 -- -1` as an unused uid',
    note: "The isolation floor on this host, which has no usable cgroup v2: a root agent's job ends with a second spawn, the kill(-1) made as the job's uid that ends whatever the job left behind (issue 11's isolation). A fresh node doing only these two spawns per job reaches about half the rate of one spawn, so issue 20's target for trivial jobs (>= 0.5x of node spawning `true`) cannot be met here by uid-isolated jobs even if the server, the agent and the supervisor's bookkeeping cost nothing. With a writable cgroup v2 the supervisor puts each job in a cgroup of its own instead and needs no second spawn.",
  },
  none: { short: '', backend: '', row: '', note: '' },
};

/** For the floor above: a uid no job has, the first past the agent's range of dynamic job uids (jobUsers.ts). */
async function unusedUid() {
  const { DEFAULT_DYNAMIC_RANGE } = await import(join(ROOT, 'packages/agent/dist/jobUsers.js'));
  return DEFAULT_DYNAMIC_RANGE.first + DEFAULT_DYNAMIC_RANGE.count;
}

async function waitDrained(client, total) {
  for (;;) {
    const q = await client.getQueue('default', 'default');
    const runs = (await client.listRuns('default', { limit: 1 })).runs;
    if (q.pending === 0 && q.running === 0 && runs.length) {
      const finished = (await client.listRuns('default', { limit: 1000 })).runs.filter((r) => r.ended_at).length;
      if (finished >= Math.min(total, 1000)) return;
    }
    await sleep(50);
  }
}

/**
 * Push + pop + ack + report per item through the API, by `workers` concurrent protocol clients. `batched` (agent
 * protocol 2, as the real agent speaks it): a poll claims up to `claim` items, one sync acks them all, one more
 * reports them all finished. Otherwise protocol 1: one item per poll, one ack and one report request per item.
 * 4 pushers push `pushBatch` items per request: 1 as a user pushing one at a time, more through the batched push
 * (`liftoff launch --sweep`, the items/batch API).
 */
export async function claimsPerSecond({ database, items, workers, batched = false, claim = 8, pushBatch = 1 }) {
  const server = await startServer({ database });
  const { client } = server;
  const spec = { source: { type: 'code', archive_id: await archiveOf(client) }, entry_point: ['true'] };
  const ids = [];
  for (let w = 0; w < workers; w++) {
    const id = `raw-${w}`;
    await registerProtocolAgent(client, id);
    ids.push(id);
  }
  const t0 = Date.now();
  let pushed = 0;
  let done = 0;
  await Promise.all([
    ...Array.from({ length: 4 }, async () => {
      while (pushed < items) {
        const n = Math.min(pushBatch, items - pushed);
        pushed += n;
        if (pushBatch === 1) await client.push('default', 'default', { spec });
        else await client.pushBatch('default', 'default', { items: Array.from({ length: n }, () => ({ spec })) });
      }
    }),
    ...ids.map(async (id) => {
      while (done < items) {
        const max_items = batched ? claim : 1;
        const { items: got } = await client.poll(id, { queues: ['default'], max_items, wait_ms: 200 });
        if (batched) {
          if (!got.length) continue;
          const { acks } = await client.sync(id, { acks: got.map((it) => ({ item_id: it.item_id })) });
          const reports = acks.map((a) => ({ run_id: a.run.id, state: 'finished', exit_code: 0 }));
          await client.sync(id, { reports });
          done += got.length;
          continue;
        }
        for (const it of got) {
          const run = await client.ackItem(it.item_id, id);
          await client.reportRun(run.id, { agent_id: id, state: 'finished', exit_code: 0 });
          done++;
        }
      }
    }),
  ]);
  return items / ((Date.now() - t0) / 1000);
}

/** The batched end-to-end API loop: pushes of 50 items, polls claiming up to 32 (graphile-worker: the same). */
const WIDE = { pushBatch: 50, claim: 32 };
/** The one-agent rows of the trivial jobs: items per push request in their batched row. */
const ONE_AGENT = { batch: 10 };

/** Says so, and why, when graphile-worker moves jobs faster than Liftoff's API claims items on the same PostgreSQL. */
export function slowerThanGraphile(json) {
  const g = json.find((j) => j.backend === 'graphile-worker');
  const pg = json.find((j) => j.backend === 'postgres');
  if (!g || !pg || median(pg.claimsPerSecond) >= median(g.jobsPerSecond)) return [];
  return [
    `Slower than graphile-worker (${median(pg.claimsPerSecond).toFixed(0)} items/s vs ${median(g.jobsPerSecond).toFixed(0)} jobs/s on PostgreSQL): each Liftoff item is still its own authenticated push request, and the batched poll, ack and report requests carry a run record and the full objects in their answers; graphile-worker adds and completes jobs with SQL functions inside the worker process, with no network hop and no run record.`,
  ];
}

export default {
  name: 'throughput',
  title: 'Throughput',
  async run({ pgUrl, quick }) {
    // LIFTOFF_BENCH_THROUGHPUT=api reruns only the API loop (and graphile-worker); the jobs rows are then the last
    // full run's, carried over from results.json and marked with its date.
    const apiOnly = process.env.LIFTOFF_BENCH_THROUGHPUT === 'api';
    const last = apiOnly ? previousRun() : undefined;
    const backends = [['sqlite', undefined], ...(pgUrl ? [['postgres', pgUrl]] : [])];
    const jobs = quick ? 40 : 600;
    const items = quick ? 50 : 1000;
    const wideItems = quick ? 200 : 4000;
    const reps = quick ? 1 : 3;
    const rows = [];
    const json = [];
    const agents = quick ? 2 : 10;
    const spawnTrue = [];
    const spawnTrueIsolated = [];
    let floorKind = 'none';
    const isolateAs = process.getuid?.() === 0 ? await unusedUid() : undefined;
    for (const [backend, database] of backends) {
      const jps = apiOnly ? (last?.json.find((j) => j.backend === backend)?.jobsPerSecond ?? []) : [];
      const cpu = apiOnly ? (last?.json.find((j) => j.backend === backend)?.cpuMsPerJob ?? []) : [];
      // On SQLite, each run is followed by one with every data dir on a tmpfs: what this host's disk costs (its ext4
      // has no journal, and then allocates each new inode past every one deleted in the last minutes).
      const onTmpfs = { jps: [], cpu: [] };
      // The same concurrency from one agent (max_jobs 80): how one host is run (W&B's launch agent, too: one agent,
      // max_jobs its slots), where a poll and a sync carry many runs. Pushed one item per request, then ONE_AGENT.batch
      // per request (the batched push API). On SQLite only, to keep the benchmark's length, and with every data dir on a
      // tmpfs where one can be mounted (as root): the rows above already show what this host's disk adds.
      const oneAgent = { single: { jps: [], cpu: [] }, batched: { jps: [], cpu: [] }, allOnTmpfs: true };
      const measureOneAgent = backend === 'sqlite' && !apiOnly;
      for (let i = 0; i < reps && !apiOnly; i++) {
        const measured = await jobsPerSecond({ database, agents, maxJobs: 8, jobs });
        jps.push(measured.rate);
        cpu.push(measured.cpuMsPerJob);
        const home = backend === 'sqlite' ? tmpfsDir() : undefined;
        if (home) {
          const inMemory = await jobsPerSecond({ database, agents, maxJobs: 8, jobs, home });
          onTmpfs.jps.push(inMemory.rate);
          onTmpfs.cpu.push(inMemory.cpuMsPerJob);
        }
        if (measureOneAgent) {
          for (const [kind, pushBatch] of [
            ['single', 1],
            ['batched', ONE_AGENT.batch],
          ]) {
            const home = tmpfsDir();
            if (!home) oneAgent.allOnTmpfs = false;
            const m = await jobsPerSecond({ database, agents: 1, maxJobs: agents * 8, jobs, pushBatch, home });
            oneAgent[kind].jps.push(m.rate);
            oneAgent[kind].cpu.push(m.cpuMsPerJob);
          }
        }
        // Right after each Liftoff run, so that both see the same load on the machine.
        spawnTrue.push((await spawnTruePerSecond({ concurrency: agents * 8, count: jobs })).rate);
        if (isolateAs !== undefined) {
          const isolated = await spawnTruePerSecond({ concurrency: agents * 8, count: jobs, isolateAs });
          spawnTrueIsolated.push(isolated.rate);
          floorKind = isolated.floor;
        }
      }
      const cps = [];
      for (let i = 0; i < reps; i++) cps.push(await claimsPerSecond({ database, items, workers: 8, batched: true }));
      const single = [];
      for (let i = 0; i < reps; i++) single.push(await claimsPerSecond({ database, items, workers: 8 }));
      const wide = [];
      for (let i = 0; i < reps; i++)
        wide.push(await claimsPerSecond({ database, items: wideItems, workers: 4, batched: true, ...WIDE }));
      json.push({
        backend,
        jobsPerSecond: jps,
        cpuMsPerJob: cpu,
        ...(onTmpfs.jps.length ? { tmpfsJobsPerSecond: onTmpfs.jps, tmpfsCpuMsPerJob: onTmpfs.cpu } : {}),
        ...(oneAgent.single.jps.length
          ? {
              oneAgentJobsPerSecond: oneAgent.single.jps,
              oneAgentCpuMsPerJob: oneAgent.single.cpu,
              oneAgentBatchedPushJobsPerSecond: oneAgent.batched.jps,
              oneAgentBatchedPushCpuMsPerJob: oneAgent.batched.cpu,
            }
          : {}),
        claimsPerSecond: cps,
        singleCallClaimsPerSecond: single,
        batchedEndToEndClaimsPerSecond: wide,
      });
      rows.push([
        `Liftoff, ${backend}: jobs pushed → finished (${agents} agents × max_jobs 8, \`true\`)`,
        jps.length ? `${median(jps).toFixed(0)} jobs/s${apiOnly ? ` (run of ${last?.ranAt})` : ''}` : 'not run',
        [
          ...(spawnTrue.length ? [`${ratio(median(jps), median(spawnTrue))} of node spawning \`true\``] : []),
          ...(spawnTrueIsolated.length
            ? [`${ratio(median(jps), median(spawnTrueIsolated))} of the isolation floor (${FLOORS[floorKind].short})`]
            : []),
        ].join('; ') || '-',
      ]);
      /** A jobs row's "vs baseline": its median rate against the bare spawn's and the isolation floor's. */
      const versusSpawn = (rates) =>
        [
          `${ratio(median(rates), median(spawnTrue))} of node spawning \`true\``,
          ...(spawnTrueIsolated.length
            ? [`${ratio(median(rates), median(spawnTrueIsolated))} of the isolation floor`]
            : []),
        ].join('; ');
      const cpuRow = (label, runs) => {
        const per = (k) => median(runs.map((c) => c[k])).toFixed(1);
        rows.push([
          `${label}: CPU per trivial job (median of the runs; a supervisor's includes the job's \`true\`)`,
          `server ${per('server')} ms, agents ${per('agents')} ms, supervisors ${per('supervisors')} ms`,
          '-',
        ]);
      };
      if (cpu.length) cpuRow(`Liftoff, ${backend}`, cpu);
      if (onTmpfs.jps.length) {
        const label = `Liftoff, ${backend}, every data dir on a tmpfs`;
        rows.push([
          `${label}: jobs pushed → finished (the same, each run right after one of the above)`,
          `${median(onTmpfs.jps).toFixed(0)} jobs/s`,
          versusSpawn(onTmpfs.jps),
        ]);
        cpuRow(label, onTmpfs.cpu);
      }
      for (const [kind, how] of [
        ['single', 'pushed one per request by 16 clients'],
        ['batched', `pushed ${ONE_AGENT.batch} per request by 16 clients`],
      ]) {
        const runs = oneAgent[kind];
        if (!runs.jps.length) continue;
        const label = `Liftoff, ${backend}, one agent × max_jobs ${agents * 8}${oneAgent.allOnTmpfs ? ', every data dir on a tmpfs' : ''}`;
        rows.push([`${label}: jobs ${how} → finished`, `${median(runs.jps).toFixed(0)} jobs/s`, versusSpawn(runs.jps)]);
        cpuRow(`${label}, ${kind === 'single' ? 'one' : ONE_AGENT.batch} per push`, runs.cpu);
      }
      rows.push([
        `Liftoff, ${backend}: API push + pop + ack + report (8 clients, batched protocol: claim up to 8, one sync acks them, one reports them)`,
        `${median(cps).toFixed(0)} items/s`,
        '-',
      ]);
      rows.push([
        `Liftoff, ${backend}: the same with protocol 1's single-item calls (one item per poll, an ack and a report each)`,
        `${median(single).toFixed(0)} items/s`,
        '-',
      ]);
      rows.push([
        `Liftoff, ${backend}: API loop batched end to end (4 pushers × ${WIDE.pushBatch} items per request, 4 clients claiming up to ${WIDE.claim}, one sync acks them, one reports them)`,
        `${median(wide).toFixed(0)} items/s`,
        '-',
      ]);
    }
    if (spawnTrueIsolated.length) {
      json.push({
        backend: FLOORS[floorKind].backend,
        concurrency: agents * 8,
        jobsPerSecond: spawnTrueIsolated,
      });
      rows.push([
        `${FLOORS[floorKind].row}, ${agents * 8} at a time (the floor of a uid-isolated job)`,
        `${median(spawnTrueIsolated).toFixed(0)} jobs/s`,
        `${ratio(median(spawnTrueIsolated), median(spawnTrue))} of node spawning \`true\``,
      ]);
    }
    if (spawnTrue.length) {
      json.push({ backend: 'node spawning true', concurrency: agents * 8, jobsPerSecond: spawnTrue });
      rows.push([
        `a fresh node spawning \`true\`, ${agents * 8} at a time (the ceiling for trivial jobs)`,
        `${median(spawnTrue).toFixed(0)} processes/s`,
        '1× (baseline for jobs)',
      ]);
    }
    if (pgUrl) {
      const g = [];
      for (let i = 0; i < reps; i++) g.push(await graphileThroughput(pgUrl, items, 8));
      json.push({ backend: 'graphile-worker', jobsPerSecond: g });
      const gw = [];
      for (let i = 0; i < reps; i++) gw.push(await graphileThroughput(pgUrl, wideItems, WIDE.claim, 4, WIDE.pushBatch));
      json.push({ backend: 'graphile-worker batched', jobsPerSecond: gw });
      const liftoffPg = json.find((j) => j.backend === 'postgres');
      rows.push([
        'graphile-worker, postgres: jobs added (4 clients, one job per call) → handled (concurrency 8)',
        `${median(g).toFixed(0)} jobs/s`,
        '1× (baseline)',
      ]);
      rows.push([
        `graphile-worker, postgres: jobs added ${WIDE.pushBatch} per addJobs call by 4 clients → handled (concurrency ${WIDE.claim})`,
        `${median(gw).toFixed(0)} jobs/s`,
        '1× (baseline of the batched row)',
      ]);
      for (const r of rows)
        if (r[0].includes('postgres: API loop batched'))
          r[2] = ratio(median(liftoffPg.batchedEndToEndClaimsPerSecond), median(gw));
      for (const r of rows)
        if (r[0].includes('postgres: API push')) r[2] = ratio(median(liftoffPg.claimsPerSecond), median(g));
        else if (r[0].includes('postgres: the same'))
          r[2] = ratio(median(liftoffPg.singleCallClaimsPerSecond), median(g));
    }
    return {
      tables: [
        {
          title: 'Throughput',
          how: `Median of ${reps} runs. Jobs: ${jobs} trivial jobs (\`true\` from a tiny code archive) pushed by 16 concurrent clients after a warm-up of rounds of as many jobs as the agents have slots until each agent has mounted every slot's output tmpfs (mounted by a slot's first job, then reused), timed from the first push to the last run ending; on SQLite, also by one agent with as many slots as all the agents (one agent per host, as W&B's launch agent is run too), with the jobs pushed one per request and then ${ONE_AGENT.batch} per request (the batched push API), every data dir on a tmpfs; after each such run, a fresh node process spawns \`true\` ${jobs} times, as many at a time as the agents run jobs (fresh: a fork's cost grows with the spawning process's size, and the benchmark's own process had grown enough to halve the rate). API: ${items} items, each pushed (one per request, 4 pushers), claimed by one of 8 protocol clients (long-poll), acknowledged and reported finished, with no process started: batched as the agent does since issue 20 (a poll claims up to 8, one sync acks them, one reports them), and with protocol 1's single-item calls. graphile-worker: ${items} jobs added one at a time by 4 concurrent clients (as Liftoff's 4 pushers) while one worker with concurrency 8 handles them, timed until its completions are written. Batched end to end: ${wideItems} items pushed ${WIDE.pushBatch} per request by 4 pushers (the batched push of \`liftoff launch --sweep\`) and claimed up to ${WIDE.claim} per poll by 4 protocol clients, next to graphile-worker adding ${WIDE.pushBatch} jobs per addJobs call from 4 clients to one worker of concurrency ${WIDE.claim}.`,
          columns: ['what', 'rate', 'vs baseline'],
          rows,
          notes: [
            ...(apiOnly
              ? [
                  `This run measured the API loop and graphile-worker only; the jobs rows are from the full run of ${last?.ranAt}, before the agent used the batched protocol.`,
                ]
              : []),
            ...(pgUrl
              ? []
              : ['No PostgreSQL was available to this run: the postgres rows and graphile-worker are missing.']),
            ...slowerThanGraphile(json),
            ...(spawnTrueIsolated.length ? [FLOORS[floorKind].note] : []),
            ...(json.some((j) => j.tmpfsJobsPerSecond)
              ? [
                  "The tmpfs rows: this host's disk is ext4 without a journal, whose inode allocator then passes over every inode deleted in the last one to six minutes at each file or directory it creates (ext4's recently_deleted check, made only without a journal). A trivial job creates 8 (its work dir and code copy; its state dir, uid and output-slot records, output file, process record and exit status) and deletes them at its end, so what a creation costs grows with how many jobs ran in the last minutes, earlier benchmarks' included: in a perf profile of the timed part of one run (2026-12-04), __ext4_new_inode took 13% of all CPU, more than the jobs' fork and exec together. A journaled ext4 or XFS makes no such check; the tmpfs rows show what Liftoff costs without it.",
                ]
              : []),
            "Where a trivial job's time goes since issue 11: when the agent runs as root (as here) each local-process job gets a uid of its own, its fetched code is handed over entry by entry (lchown), its run record is written to the agent's state dir, and when it ends every process still holding its uid is swept (a pass over /proc); the agent's [liftoff] notes are now log chunks of their own, a few more log requests per run until the batched protocol of issue 20.",
            "Since issue 20, an agent's local-process jobs share one supervisor per data dir instead of a node process each (docs/agent-restarts.md), the /proc passes that find a run's uid processes read each status file synchronously into one buffer (fs/promises' readFile per file was a third of the agent's CPU), a uid pick reuses a pass at most a second old and jobs ending together share one, and a root agent reuses an emptied output tmpfs instead of spawning mount and umount per run (half of what was left). Then fewer statements per item and per job: PostgreSQL NOTIFYs published together go as one statement (they were more than half of all statements), access is checked on rows the store reads anyway, a report's or ack's writes and a log append are one statement each on PostgreSQL, and a short run's notes go with its final report in one sync. Counted in the batched loop on PostgreSQL, 7,233 → 2,221 statements for 4,000 items; measured, 916 → 1,575 items/s there and 2,004 → 2,719 on SQLite between the runs of 2026-12-02T07:57 and this one (both on an idle machine). Then a run's uid is ended by one kill(-1) made as the uid, spawned by the job supervisor (a spawn forks the spawning process, and the supervisor is a fraction of the agent's size), instead of a /proc pass per run end; a released uid is picked again only after a later pass shows it free. And fewer statements: a push's code archive comes from an LRU of the (immutable) archive records, a sync's log appends share its one transaction, the heartbeat and the lost-run check are one statement on PostgreSQL, and a poll reads lost runs with its state: 18.8 → 13 PostgreSQL statements per trivial job, counted. Then half the agent's file-system calls per job (2026-12-03): a run's copy of a cached code archive is made, and handed over to the job's uid, in one pass from a listing the agent keeps in memory (fs.cp stated every parent of the destination and each entry twice, and the hand-over walk stated and listed it all again), a reused output slot only gets its new owner, and run state and work dirs are removed with one listing and one unlink per file: an strace of one agent counted 43.6k → 19.9k syscalls for 40 jobs (futex 15.4k → 6.0k), and five interleaved runs against the previous build put the agent's CPU per job at a median of 9.0 ms against 12.5 ms (on a machine then about a third slower than in the idle runs above). Then a job under a uid of its own runs in a cgroup of its own, ended by one write to cgroup.kill, instead of ending with a kill(-1) spawn (2026-12-04): over four interleaved runs each against the previous build, the supervisors' CPU per job had a median of 4.7 ms against 5.7 ms. Then a run's small bookkeeping with synchronous calls (2026-12-04): its state dir and records, the output slot's record and hand-back, a code copy of at most 32 small entries, the removal of a flat dir, the output tail's reads, the supervisor's output file and records, each formerly an fs/promises call, a thread-pool round trip that cost about three times the CPU of the call itself; four interleaved runs against the previous build with every data dir on a tmpfs put the agents' CPU per job at a median of 3.03 ms against 3.55 ms, the supervisors' at 2.72 ms against 2.97 ms. Then (2026-12-06) the supervisor runs with one V8 worker thread instead of four (a fork and its exit cost more the more threads the forking process has; interleaved runs put the supervisors' CPU per job at 1.91 and 1.88 ms against 2.06 and 1.95), a poll's state read reaches the agent's runs by agent and state instead of walking every run the agent ever had (~0.8 ms per poll after 6,000 runs, growing with the agent's history), and a busy agent tells a new job count at most once a second instead of with every job start and end (scratch runs of 6,000 jobs, one agent × 80 on a tmpfs: 430–435 → 445–452 jobs/s). The CPU per job row above is measured in every run from /proc (a supervisor's includes the job's own `true`, and where there is no cgroup the kill).",
          ],
        },
      ],
      charts: [],
      json,
    };
  },
};
