// Dispatch latency: push accepted → an agent holds the item, and push → the job's process has started, with 1, 10
// and 100 idle agents on one queue; next to Liftoff's own agent polling every 10 s (what W&B Launch does) and
// graphile-worker (LISTEN/NOTIFY on PostgreSQL) when a PostgreSQL is available.
import { packDirectory } from '@liftoff/cli';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fmtMs, percentiles, ratio, sleep, startAgent, startServer, tempDir } from './lib.mjs';
import { graphileLatency } from './graphile.mjs';

/** The job prints its own start time (ns since the epoch) first thing. */
const SPEC = (archiveId) => ({ source: { type: 'code', archive_id: archiveId }, entry_point: ['date', '+%s%N'] });

async function waitEnded(client, itemId, timeoutMs = 60_000) {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const item = await client.getItem(itemId);
    if (item.state === 'finished' || item.state === 'failed') return item;
    if (Date.now() > until) throw new Error(`item ${itemId} did not finish`);
    await sleep(10);
  }
}

async function liftoffLatency({ backend, agents, samples, pollInterval, database }) {
  const server = await startServer({ database });
  const { client } = server;
  const dir = tempDir();
  mkdirSync(join(dir, 'code'));
  writeFileSync(join(dir, 'code', 'README'), 'dispatch benchmark');
  const archive = await client.uploadArchive(await packDirectory(join(dir, 'code')));
  const started = [];
  for (let i = 0; i < agents; i += 10) {
    const batch = Array.from({ length: Math.min(10, agents - i) }, () => startAgent(server, { pollInterval }));
    started.push(...(await Promise.all(batch)));
  }
  await sleep(pollInterval ? 1_000 : 2_000); // every agent is parked in its poll (or sleeping between polls)
  const claim = [];
  const start = [];
  const warmup = pollInterval ? 0 : 3;
  for (let i = 0; i < samples + warmup; i++) {
    const item = await client.push('default', 'default', { spec: SPEC(archive.id) });
    const ended = await waitEnded(client, item.id, pollInterval ? 60_000 : 30_000);
    const logs = await client.readLogs(ended.run_id);
    const ns = /^(\d{19})$/m.exec(logs.data)?.[1];
    if (i >= warmup && ns) {
      claim.push(ended.claimed_at - item.created_at);
      start.push(Number(BigInt(ns) / 1_000_000n) - item.created_at);
    }
    // Random spacing, so that a polling agent's phase does not line up with the pushes.
    await sleep(pollInterval ? 500 + Math.random() * 2_000 : 20 + Math.random() * 80);
  }
  return { backend, agents, claim: percentiles(claim), start: percentiles(start) };
}

/** A note for every Liftoff configuration whose median claim is slower than graphile-worker's, saying why. */
export function slowerThanGraphile(rows, graphile) {
  if (!graphile) return [];
  return rows
    .filter((r) => !r.baseline && r.claim.p50 > graphile.p50)
    .map(
      (r) =>
        `Slower than graphile-worker (p50 ${fmtMs(r.claim.p50)} vs ${fmtMs(graphile.p50)}): ${r.label}. A push wakes one poller per server (each replica wakes its own on a NOTIFY), which claims over HTTP in a transaction (a round-trip on PostgreSQL) and answers the agent; graphile-worker claims with one SQL function inside the worker process.`,
    );
}

export default {
  name: 'dispatch',
  title: 'Dispatch latency',
  async run({ pgUrl, quick }) {
    const samples = quick ? 3 : 30;
    const backends = [['sqlite', undefined], ...(pgUrl ? [['postgres', pgUrl]] : [])];
    const rows = [];
    for (const [backend, database] of backends) {
      for (const agents of quick ? [1] : [1, 10, 100]) {
        rows.push({
          label: `Liftoff long-poll, ${backend}, ${agents} agent${agents > 1 ? 's' : ''}`,
          ...(await liftoffLatency({ backend, agents, samples, database })),
        });
      }
    }
    const poll = await liftoffLatency({ backend: 'sqlite', agents: 1, samples: quick ? 1 : 10, pollInterval: 10 });
    rows.push({
      label: 'Liftoff agent polling every 10 s (W&B Launch style), sqlite, 1 agent',
      baseline: true,
      ...poll,
    });
    let graphile;
    if (pgUrl) {
      graphile = await graphileLatency(pgUrl, quick ? 5 : 200);
      rows.push({
        label: 'graphile-worker (LISTEN/NOTIFY), postgres',
        baseline: true,
        backend: 'postgres',
        agents: 1,
        claim: graphile,
        start: undefined,
      });
    }
    const base = rows.find((r) => r.label.startsWith('Liftoff long-poll, sqlite, 1 agent'));
    const table = {
      title: 'Dispatch latency',
      how: `${samples} pushes per configuration, one at a time onto an idle queue, after a warm-up. "Push → claimed" is the server's claim time minus its accept time; "push → process started" is the time the job's first instruction (\`date +%s%N\`) printed minus the accept time. The polling baseline is Liftoff's own agent with \`--poll-interval 10\`, pushes spaced randomly. graphile-worker: job added → handler called.`,
      columns: [
        'configuration',
        'push → claimed p50 / p95 / p99',
        'push → process started p50 / p95 / p99',
        'p50 vs long-poll (1 agent, sqlite)',
      ],
      rows: rows.map((r) => [
        r.label,
        `${fmtMs(r.claim.p50)} / ${fmtMs(r.claim.p95)} / ${fmtMs(r.claim.p99)}`,
        r.start ? `${fmtMs(r.start.p50)} / ${fmtMs(r.start.p95)} / ${fmtMs(r.start.p99)}` : '-',
        base && r !== base ? ratio(r.claim.p50, base.claim.p50) : '1×',
      ]),
      notes: [
        ...(pgUrl
          ? []
          : ['No PostgreSQL was available to this run: the postgres rows and graphile-worker are missing.']),
        ...slowerThanGraphile(rows, graphile),
      ],
    };
    const chartRows = rows.map((r) => ({ label: r.label.replace('Liftoff ', ''), baseline: r.baseline, ...r.claim }));
    return {
      tables: [table],
      charts: [{ file: 'dispatch-latency.svg', title: 'Push → claimed latency', rows: chartRows }],
      json: rows,
    };
  },
};
