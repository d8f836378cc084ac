// Sweep dispatch: the time from a trial's end to the next trial running, Liftoff's server-side sweep controller
// (woken by the run's end) next to W&B's sweep scheduler, which checks its runs every 5 s and then pushes the next
// trial; modelled as the dispatch benchmark models W&B Launch's agent: the same Liftoff server and agent, with the
// polling loop the baseline adds (here the scheduler's, in this script; in the second baseline row also the agent's
// own 10 s poll).
import { packDirectory } from '@liftoff/cli';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fmtMs, percentiles, ratio, sleep, startAgent, startServer, tempDir } from './lib.mjs';

/** W&B's scheduler sleeps `DEFAULT_POLLING_SLEEP` (5 s) between looks at its runs (`scheduler.py`; wandb-launch.md §8). */
const WANDB_SCHEDULER_POLL_MS = 5_000;
/**
 * Each trial sleeps a random 0 to `maxSleep` ms (its run config's `sleep_ms`; 5 s in a full run), so trial ends fall
 * at every phase of the scheduler's poll.
 */
const TRIAL = `console.log('START ' + Date.now());
const { sleep_ms } = JSON.parse(process.env.LIFTOFF_RUN_CONFIG);
setTimeout(() => undefined, sleep_ms);
`;
const TERMINAL = ['finished', 'failed', 'stopped', 'preempted', 'lost'];

async function setup({ database, pollInterval }) {
  const server = await startServer({ database });
  const dir = tempDir();
  mkdirSync(join(dir, 'code'));
  writeFileSync(join(dir, 'code', 'trial.mjs'), TRIAL);
  const archive = await server.client.uploadArchive(await packDirectory(join(dir, 'code')));
  await startAgent(server, { pollInterval });
  await sleep(1_000); // the agent is parked in its poll
  const spec = { source: { type: 'code', archive_id: archive.id }, entry_point: ['node', 'trial.mjs'] };
  return { server, spec };
}

/** Gaps between consecutive trials' runs: end → next started (the agent's report), end → next process start. */
async function gaps(client, runIds) {
  const running = [];
  const started = [];
  let prev;
  for (const id of runIds) {
    const run = await client.getRun(id);
    const ms = Number(/^START (\d+)$/m.exec((await client.readLogs(id)).data)?.[1]);
    if (prev?.ended_at != null && run.started_at != null && Number.isFinite(ms)) {
      running.push(run.started_at - prev.ended_at);
      started.push(ms - prev.ended_at);
    }
    prev = run;
  }
  return { running: percentiles(running), started: percentiles(started), samples: running.length };
}

/** A Liftoff sweep of `samples + 1` trials, one at a time. */
async function liftoffSweep({ database, samples, maxSleep }) {
  const { server, spec } = await setup({ database });
  const { client } = server;
  const sweep = await client.createSweep('default', {
    queue: 'default',
    parallel: 1,
    config: {
      method: 'random',
      run_cap: samples + 1,
      parameters: { sleep_ms: { distribution: 'int_uniform', min: 0, max: maxSleep } },
    },
    trial: { spec },
  });
  let done;
  for (const until = Date.now() + (samples + 1) * 15_000; Date.now() < until; await sleep(200)) {
    done = await client.getSweep('default', sweep.id);
    if (done.state !== 'running') break;
  }
  if (done?.state !== 'finished') throw new Error(`sweep ${sweep.id} did not finish: ${done?.state} ${done?.reason}`);
  return gaps(
    client,
    (done.trials ?? []).map((t) => t.run_id),
  );
}

/** W&B's scheduler over the same server and agent: every 5 s it looks at its trial; once ended, it pushes the next. */
async function pollingScheduler({ samples, agentPollInterval, maxSleep }) {
  const { server, spec } = await setup({ pollInterval: agentPollInterval });
  const { client } = server;
  const push = () =>
    client.push('default', 'default', {
      spec: { ...spec, run_config: { sleep_ms: Math.floor(Math.random() * (maxSleep + 1)) } },
    });
  const items = [await push()];
  let next = Date.now() + WANDB_SCHEDULER_POLL_MS;
  while (items.length < samples + 1) {
    await sleep(Math.max(0, next - Date.now()));
    next += WANDB_SCHEDULER_POLL_MS;
    const item = await client.getItem(items.at(-1).id);
    if (TERMINAL.includes(item.state)) items.push(await push());
  }
  for (const until = Date.now() + 60_000; Date.now() < until; await sleep(200)) {
    const last = await client.getItem(items.at(-1).id);
    if (TERMINAL.includes(last.state)) break;
  }
  const runIds = [];
  for (const it of items) runIds.push((await client.getItem(it.id)).run_id);
  return gaps(client, runIds);
}

export default {
  name: 'sweepDispatch',
  title: 'Sweep dispatch: trial end → next trial running',
  async run({ pgUrl, quick }) {
    const samples = quick ? 2 : 20;
    const baseline = quick ? 1 : 10;
    const maxSleep = quick ? 500 : 5_000;
    const rows = [{ label: 'Liftoff sweep controller, sqlite', ...(await liftoffSweep({ samples, maxSleep })) }];
    if (pgUrl)
      rows.push({
        label: 'Liftoff sweep controller, postgres',
        ...(await liftoffSweep({ database: pgUrl, samples, maxSleep })),
      });
    rows.push({
      label: 'W&B-style scheduler polling every 5 s, long-poll agent, sqlite',
      baseline: true,
      ...(await pollingScheduler({ samples: baseline, maxSleep })),
    });
    rows.push({
      label: 'W&B-style scheduler polling every 5 s, agent polling every 10 s, sqlite',
      baseline: true,
      ...(await pollingScheduler({ samples: baseline, agentPollInterval: 10, maxSleep })),
    });
    const base = rows[0];
    const table = {
      title: 'Sweep dispatch: trial end → next trial running',
      how: `A sweep of one trial at a time (\`parallel: 1\`), each trial a node script sleeping a random 0 to ${maxSleep / 1000} s, one agent. "Trial end → next running" is the next trial's run start (the agent's report) minus the previous run's end (its report), both on the server's clock; "→ process started" uses the time the next trial's script printed first thing. ${samples} gaps per Liftoff row, ${baseline} per baseline row. The baselines model W&B Launch's sweep scheduler (\`DEFAULT_POLLING_SLEEP\`, 5 s): a loop in the benchmark looks at the trial every 5 s and pushes the next trial once it has ended, on the same Liftoff server and agent; the last row's agent also polls every 10 s (\`--poll-interval 10\`, as W&B Launch's agent does in the dispatch benchmark).`,
      columns: [
        'configuration',
        'trial end → next running p50 / p95 / p99',
        'trial end → next process started p50 / p95 / p99',
        'p50 vs Liftoff (sqlite)',
      ],
      rows: rows.map((r) => [
        r.label,
        `${fmtMs(r.running.p50)} / ${fmtMs(r.running.p95)} / ${fmtMs(r.running.p99)}`,
        `${fmtMs(r.started.p50)} / ${fmtMs(r.started.p95)} / ${fmtMs(r.started.p99)}`,
        r === base ? '1×' : ratio(r.running.p50, base.running.p50),
      ]),
      notes: pgUrl ? [] : ['No PostgreSQL was available to this run: the postgres row is missing.'],
    };
    return {
      tables: [table],
      charts: [
        {
          file: 'sweep-dispatch.svg',
          title: 'Trial end → next trial running',
          rows: rows.map((r) => ({ label: r.label, baseline: r.baseline, ...r.running })),
        },
      ],
      json: rows,
    };
  },
};
