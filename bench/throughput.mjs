// Throughput: trivial jobs pushed → finished per second with 10 agents × max_jobs 8; and the raw claim rate of the
// API (push, pop, ack and report per item, no job run) next to graphile-worker's jobs per second.
import { packDirectory } from '@liftoff/cli';
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { graphileThroughput } from './graphile.mjs';
import { median, ratio, sleep, startAgent, startServer, tempDir, registerProtocolAgent } from './lib.mjs';

async function archiveOf(client) {
  const dir = join(tempDir(), 'code');
  mkdirSync(dir);
  writeFileSync(join(dir, 'README'), 'throughput benchmark');
  return (await client.uploadArchive(await packDirectory(dir))).id;
}

async function pushAll(client, queue, spec, count, parallel = 16) {
  let next = 0;
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      while (next < count) {
        next++;
        await client.push('default', queue, { spec });
      }
    }),
  );
}

export async function jobsPerSecond({ database, agents, maxJobs, jobs }) {
  const server = await startServer({ database });
  const spec = { source: { type: 'code', archive_id: await archiveOf(server.client) }, entry_point: ['true'] };
  await Promise.all(Array.from({ length: agents }, () => startAgent(server, { maxJobs })));
  await pushAll(server.client, 'default', spec, 20); // warm-up
  await waitDrained(server.client, 20);
  const t0 = Date.now();
  await pushAll(server.client, 'default', spec, jobs);
  await waitDrained(server.client, jobs + 20);
  return jobs / ((Date.now() - t0) / 1000);
}

/** The ceiling for trivial jobs: node spawning `true` and waiting for it, `concurrency` at a time (issue 20's yardstick). */
export async function spawnTruePerSecond({ concurrency, count }) {
  let next = 0;
  const t0 = Date.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count) {
        next++;
        await new Promise((resolve, reject) =>
          spawn('true', [], { stdio: 'ignore' }).once('error', reject).once('exit', resolve),
        );
      }
    }),
  );
  return count / ((Date.now() - t0) / 1000);
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

/** Push + pop + ack + report per item through the API, by `workers` concurrent protocol clients. */
async function claimsPerSecond({ database, items, workers }) {
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
        pushed++;
        await client.push('default', 'default', { spec });
      }
    }),
    ...ids.map(async (id) => {
      while (done < items) {
        const { items: got } = await client.poll(id, { queues: ['default'], max_items: 1, wait_ms: 200 });
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

/** Says so, and why, when graphile-worker moves jobs faster than Liftoff's API claims items on the same PostgreSQL. */
export function slowerThanGraphile(json) {
  const g = json.find((j) => j.backend === 'graphile-worker');
  const pg = json.find((j) => j.backend === 'postgres');
  if (!g || !pg || median(pg.claimsPerSecond) >= median(g.jobsPerSecond)) return [];
  return [
    `Slower than graphile-worker (${median(pg.claimsPerSecond).toFixed(0)} items/s vs ${median(g.jobsPerSecond).toFixed(0)} jobs/s on PostgreSQL): each Liftoff item is four authenticated HTTP requests (push, poll, ack, status report), each validated and answered with the full object, plus a run record; graphile-worker adds and completes jobs with SQL functions inside the worker process, with no network hop and no run record.`,
  ];
}

export default {
  name: 'throughput',
  title: 'Throughput',
  async run({ pgUrl, quick }) {
    const backends = [['sqlite', undefined], ...(pgUrl ? [['postgres', pgUrl]] : [])];
    const jobs = quick ? 40 : 600;
    const items = quick ? 50 : 1000;
    const reps = quick ? 1 : 3;
    const rows = [];
    const json = [];
    const agents = quick ? 2 : 10;
    const spawnTrue = [];
    for (const [backend, database] of backends) {
      const jps = [];
      for (let i = 0; i < reps; i++) {
        jps.push(await jobsPerSecond({ database, agents, maxJobs: 8, jobs }));
        // Right after each Liftoff run, so that both see the same load on the machine.
        spawnTrue.push(await spawnTruePerSecond({ concurrency: agents * 8, count: jobs }));
      }
      const cps = [];
      for (let i = 0; i < reps; i++) cps.push(await claimsPerSecond({ database, items, workers: 8 }));
      json.push({ backend, jobsPerSecond: jps, claimsPerSecond: cps });
      rows.push([
        `Liftoff, ${backend}: jobs pushed → finished (${agents} agents × max_jobs 8, \`true\`)`,
        `${median(jps).toFixed(0)} jobs/s`,
        `${ratio(median(jps), median(spawnTrue))} of node spawning \`true\``,
      ]);
      rows.push([
        `Liftoff, ${backend}: API push + pop + ack + report (8 clients)`,
        `${median(cps).toFixed(0)} items/s`,
        '-',
      ]);
    }
    json.push({ backend: 'node spawning true', concurrency: agents * 8, jobsPerSecond: spawnTrue });
    rows.push([
      `node spawning \`true\`, ${agents * 8} at a time (the ceiling for trivial jobs)`,
      `${median(spawnTrue).toFixed(0)} processes/s`,
      '1× (baseline for jobs)',
    ]);
    if (pgUrl) {
      const g = [];
      for (let i = 0; i < reps; i++) g.push(await graphileThroughput(pgUrl, items, 8));
      json.push({ backend: 'graphile-worker', jobsPerSecond: g });
      const liftoffPg = json.find((j) => j.backend === 'postgres');
      rows.push([
        'graphile-worker, postgres: jobs added → handled (concurrency 8)',
        `${median(g).toFixed(0)} jobs/s`,
        '1× (baseline)',
      ]);
      for (const r of rows)
        if (r[0].includes('postgres: API')) r[2] = ratio(median(liftoffPg.claimsPerSecond), median(g));
    }
    return {
      tables: [
        {
          title: 'Throughput',
          how: `Median of ${reps} runs. Jobs: ${jobs} trivial jobs (\`true\` from a tiny code archive) pushed by 16 concurrent clients, timed from the first push to the last run ending; after each such run, node spawns \`true\` ${jobs} times, as many at a time as the agents run jobs. API: ${items} items, each pushed, claimed by one of 8 protocol clients (long-poll, one item per poll), acknowledged and reported finished, with no process started. graphile-worker: ${items} jobs pre-added, drained by one worker with concurrency 8.`,
          columns: ['what', 'rate', 'vs baseline'],
          rows,
          notes: [
            ...(pgUrl
              ? []
              : ['No PostgreSQL was available to this run: the postgres rows and graphile-worker are missing.']),
            ...slowerThanGraphile(json),
            "Where a trivial job's time goes since issue 11: when the agent runs as root (as here) each local-process job gets a uid of its own, its fetched code is handed over entry by entry (lchown), its run record is written to the agent's state dir, and when it ends every process still holding its uid is swept (a pass over /proc); the agent's [liftoff] notes are now log chunks of their own, a few more log requests per run until the batched protocol of issue 20.",
            "Since issue 20, an agent's local-process jobs share one supervisor per data dir instead of a node process each (docs/agent-restarts.md). Profiled with one agent × 8 slots, 100 `true` jobs on SQLite (CPU per job, on this shared machine): before, the agent spent ~21 ms forking each supervisor and the supervisor ~55 ms starting node; now the shared supervisor spends ~3.6 ms per job and the agent forks nothing. What is left in the agent (~60 ms per job): the pass over /proc for the run's uid when it ends (jobUsers.ts, ~11–15 ms: it reads the status file of every process on the host), the HTTP round trips (ack, status reports, heartbeats, log appends, archive download: ~15 ms), log shipping, the archive's extraction; the server spends ~27–40 ms per job.",
          ],
        },
      ],
      charts: [],
      json,
    };
  },
};
