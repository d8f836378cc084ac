// Queue depth: push and pop latency with 0, 10k and 100k items pending in the queue. The backlog is written
// straight into the database before the server starts (pushing 100k items through the API would dominate the run).
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fmtMs, percentiles, ratio, startServer, registerProtocolAgent } from './lib.mjs';

const require = createRequire(import.meta.url);

function preload(dbFile, n) {
  const Database = require('better-sqlite3');
  const db = new Database(dbFile);
  const queue = db.prepare("select id from queues where name = 'default'").get();
  const insert = db.prepare(
    "insert into items (id, queue_id, priority, state, spec, created_at) values (?, ?, 2, 'pending', ?, ?)",
  );
  const spec = JSON.stringify({
    source: { type: 'git', url: 'https://example.com/r.git' },
    entry_point: ['true'],
    args: [],
    run_config: {},
    env: {},
    resource_args: {},
  });
  const now = Date.now();
  db.transaction(() => {
    for (let i = 0; i < n; i++) insert.run(`0000${String(i).padStart(12, '0')}-backlog`, queue.id, spec, now);
  })();
  db.close();
}

async function measure(n, samples) {
  let server = await startServer();
  const dataDir = join(server.home, 'data');
  server.proc.child.kill('SIGTERM');
  await server.proc.exited;
  preload(join(dataDir, 'liftoff.db'), n);
  server = await startServer({ home: server.home });
  const { client } = server;
  await registerProtocolAgent(client, 'depth');
  const spec = { source: { type: 'git', url: 'https://example.com/r.git' }, entry_point: ['true'] };
  const push = [];
  const pop = [];
  for (let i = 0; i < samples; i++) {
    let t = performance.now();
    await client.push('default', 'default', { spec });
    push.push(performance.now() - t);
    t = performance.now();
    const got = await client.poll('depth', { queues: ['default'], max_items: 1, wait_ms: 0 });
    pop.push(performance.now() - t);
    if (got.items[0]) await client.releaseItem(got.items[0].item_id, 'depth');
  }
  const q = await client.getQueue('default', 'default');
  return { n, pending: q.pending, push: percentiles(push.slice(10)), pop: percentiles(pop.slice(10)) };
}

export default {
  name: 'depth',
  title: 'Queue depth',
  async run({ quick }) {
    const rows = [];
    for (const n of quick ? [0, 1000] : [0, 10_000, 100_000]) rows.push(await measure(n, quick ? 20 : 210));
    const base = rows[0];
    return {
      tables: [
        {
          title: 'Push and pop latency against queue depth (SQLite)',
          how: 'The backlog is inserted into the database before the server starts; then 200 rounds (after 10 warm-up rounds) of one push and one pop (a poll claiming one item without waiting, released again), timed at the client over HTTP on loopback.',
          columns: ['pending items', 'push p50 / p95 / p99', 'pop p50 / p95 / p99', 'pop p50 vs empty queue'],
          rows: rows.map((r) => [
            r.n.toLocaleString('en'),
            `${fmtMs(r.push.p50)} / ${fmtMs(r.push.p95)} / ${fmtMs(r.push.p99)}`,
            `${fmtMs(r.pop.p50)} / ${fmtMs(r.pop.p95)} / ${fmtMs(r.pop.p99)}`,
            ratio(r.pop.p50, base.pop.p50),
          ]),
          notes: [],
        },
      ],
      charts: [
        {
          file: 'depth-latency.svg',
          title: 'Pop latency by queue depth',
          rows: rows.map((r) => ({ label: `pop with ${r.n.toLocaleString('en')} pending`, ...r.pop })),
        },
      ],
      json: rows,
    };
  },
};
