// What the server spends on the agent protocol: CPU per request of each kind a trivial job causes, and per job when
// agents speak the protocol with no processes behind it, at full speed and at about the rate of the trivial-jobs
// benchmark. Issue 20's trivial-jobs target is short by a factor of 3 and more; these figures say how much of the
// server's share is per request (and so shrinks with bigger batches) rather than per item. The agents are protocol
// loops in this process (as in idle.mjs): the server cannot tell them from real agents, and no job process or agent
// process competes with it for the two cores.
import { archiveOf, procStats, registerProtocolAgent, sleep, startServer } from './lib.mjs';

/** What a trivial job's final sync carries besides its report: its notes, about as long as a real run's. */
const NOTES = Buffer.from(
  '[liftoff] a line of the agent about the run, as long as its real notes\n'.repeat(5),
).toString('base64');
const running = (runs) => runs.map((run_id) => ({ run_id, state: 'running' }));
const finished = (runs) => runs.map((run_id) => ({ run_id, state: 'finished', exit_code: 0 }));
const notes = (runs) => runs.map((run_id) => ({ run_id, offset: 0, kind: 'note', data_base64: NOTES }));
const beat = (status, current_jobs) => ({ status, current_jobs, run_ids: [] });

/** Server CPU (user + system) in microseconds, from /proc: 10 ms ticks, so counts are kept large. */
const cpuMicros = (pid) => procStats(pid).cpuSeconds * 1e6;

/** A poll that claims up to `max` items and does not wait. */
const poll = (client, id, max) => client.poll(id, { queues: ['default'], max_items: max, wait_ms: 0, run_ids: [] });

/** `calls` requests of each kind one after another, as one agent with one job at a time makes them. */
async function perRequest(server, spec, calls) {
  const { client } = server;
  const id = 'cost-single';
  await registerProtocolAgent(client, id);
  const steps = [
    ['push (one item)', () => client.push('default', 'default', { spec })],
    ['poll claiming 1', async (s) => s.items.push(...(await poll(client, id, 1)).items)],
    [
      'sync: heartbeat + 1 ack',
      async (s, i) => {
        const r = await client.sync(id, { heartbeat: beat('RUNNING', 1), acks: [{ item_id: s.items[i].item_id }] });
        s.runs.push(r.acks[0].run.id);
      },
    ],
    ['sync: 1 running report', (s, i) => client.sync(id, { reports: running([s.runs[i]]) })],
    [
      'sync: 1 finished report + its notes + heartbeat',
      (s, i) =>
        client.sync(id, {
          heartbeat: beat('POLLING', 0),
          reports: finished([s.runs[i]]),
          logs: notes([s.runs[i]]),
        }),
    ],
    ['sync: heartbeat only', () => client.sync(id, { heartbeat: beat('POLLING', 0) })],
    ['poll finding nothing (no wait)', () => poll(client, id, 1)],
    ['GET of the queue (for comparison)', () => client.getQueue('default', 'default')],
  ];
  const micros = new Map();
  // The first pass warms the server up (JIT, caches); the second is measured.
  for (const measured of [false, true]) {
    const state = { items: [], runs: [] };
    for (const [name, fn] of steps) {
      const before = cpuMicros(server.pid);
      for (let i = 0; i < calls; i++) await fn(state, i);
      if (measured) micros.set(name, (cpuMicros(server.pid) - before) / calls);
    }
  }
  return micros;
}

/**
 * `agents` protocol agents of `slots` each run trivial "jobs" as the real agent does, minus the process: a poll
 * claiming up to the free slots, a sync acking them with a heartbeat, one reporting them running, one reporting
 * them finished with their notes and a heartbeat. 16 clients push the items one per request, as fast as they can
 * or at `rate` per second in all. Server CPU per job and the jobs' rate.
 */
async function perJob(server, spec, { agents, slots, jobs, rate }) {
  const { client } = server;
  const ids = [];
  for (let a = 0; a < agents; a++) {
    const id = `cost-${rate ?? 'max'}-${a}`;
    await registerProtocolAgent(client, id);
    ids.push(id);
  }
  let pushed = 0;
  let done = 0;
  let end;
  const pushers = 16;
  const t0 = Date.now();
  const before = cpuMicros(server.pid);
  await Promise.all([
    ...Array.from({ length: pushers }, async () => {
      while (pushed < jobs) {
        pushed++;
        await client.push('default', 'default', { spec });
        if (rate) await sleep((pushers * 1000) / rate);
      }
    }),
    ...ids.map(async (id) => {
      while (done < jobs) {
        const { items } = await client.poll(id, {
          queues: ['default'],
          max_items: slots,
          // A long poll, as the real agent's (which waits up to the server's poll timeout): a push wakes it.
          wait_ms: 1_000,
          run_ids: [],
        });
        if (!items.length) continue;
        const { acks } = await client.sync(id, {
          heartbeat: beat('RUNNING', items.length),
          acks: items.map((it) => ({ item_id: it.item_id })),
        });
        const runs = acks.map((a) => a.run.id);
        await client.sync(id, { reports: running(runs) });
        await client.sync(id, { heartbeat: beat('POLLING', 0), reports: finished(runs), logs: notes(runs) });
        done += items.length;
        // Measured when the last job is done, not when the last idle poll returns.
        if (done >= jobs) end ??= { at: Date.now(), cpu: cpuMicros(server.pid) };
      }
    }),
  ]);
  const last = end ?? { at: Date.now(), cpu: cpuMicros(server.pid) };
  return { msPerJob: (last.cpu - before) / 1000 / jobs, rate: jobs / ((last.at - t0) / 1000) };
}

export default {
  name: 'serverCost',
  title: 'Server cost of the agent protocol',
  async run({ pgUrl, quick }) {
    const calls = quick ? 30 : 2000;
    const jobs = quick ? 60 : 3000;
    const capped = quick ? 200 : 180;
    const databases = [['sqlite', undefined], ...(pgUrl ? [['postgres', pgUrl]] : [])];
    const single = [];
    const loops = [];
    const json = {};
    for (const [name, database] of databases) {
      const server = await startServer({ database });
      const spec = { source: { type: 'code', archive_id: await archiveOf(server.client) }, entry_point: ['true'] };
      const micros = await perRequest(server, spec, calls);
      for (const [what, us] of micros) single.push([`${name}: ${what}`, `${us.toFixed(0)} µs`]);
      const shape = { agents: 10, slots: 8 };
      await perJob(server, spec, { ...shape, jobs: Math.min(jobs, 1000) }); // warm-up
      const full = await perJob(server, spec, { ...shape, jobs });
      const slow = await perJob(server, spec, { ...shape, jobs: Math.round(jobs / 2), rate: capped });
      loops.push(
        [
          `${name}: pushes as fast as 16 clients go`,
          `${full.rate.toFixed(0)} jobs/s`,
          `${full.msPerJob.toFixed(2)} ms`,
        ],
        [
          `${name}: pushes capped at ${capped}/s (about the trivial-jobs benchmark's rate)`,
          `${slow.rate.toFixed(0)} jobs/s`,
          `${slow.msPerJob.toFixed(2)} ms`,
        ],
      );
      json[name] = { perRequestMicros: Object.fromEntries(micros), full, capped: { ...slow, pushRate: capped } };
    }
    return {
      tables: [
        {
          title: 'Server CPU per request',
          how: `Each kind of request a trivial job causes, ${calls} times one after another by one protocol agent (one job at a time), after a pass of the same to warm the server up; the server's CPU (user + system) read from /proc around each kind, divided by the calls. A fresh database, its queue nearly empty.`,
          columns: ['request', 'server CPU per request'],
          rows: single,
          notes: [
            "A trivial job of the real agent costs the server one push, a share of a poll and about three sync entries (ack, running, finished with its notes) with heartbeats. When each request carries one job's entries, as here, that adds up to about 2 ms; compare the trivial-jobs benchmark's CPU per job (Throughput), where most requests carry the entries of one or two runs.",
          ],
        },
        {
          title: 'Server CPU per job with emulated agents',
          how: `10 protocol agents with 8 slots each (in this process, no job processes) run ${jobs} trivial jobs as the real agent speaks the protocol: a long poll claiming up to the free slots, a sync acking them with a heartbeat, one reporting them running, one reporting them finished with their notes and a heartbeat. 16 clients push one item per request, as fast as they go, then ${Math.round(jobs / 2)} more at ${capped}/s in all. After a warm-up round; timed until the last job is reported.`,
          columns: ['pushes', 'rate', 'server CPU per job'],
          rows: loops,
          notes: [
            "The gap between the two rows is batching: at full speed a poll claims several items and each sync carries several runs' entries, so a request's statements and its HTTP round trip are shared; at the trivial-jobs rate most requests carry one run's. The store's hot paths are a few statements per request whatever the batch size (issue 20), so the server's cost per job at that rate is mostly the cost of a request.",
          ],
        },
      ],
      charts: [],
      json,
    };
  },
};
