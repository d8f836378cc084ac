// Queue depth: push and pop latency with 0, 10k and 100k items pending in the queue, and the queue view (GET queue,
// backlog counters since issue 20) and an item's position at those depths on SQLite and PostgreSQL. The backlog is
// written straight into the database (pushing 100k items through the API would dominate the run).
import { createRequire } from 'node:module';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { readCredentials, LiftoffClient } from '@liftoff/core';
import {
  fmtMs,
  freshPgDatabase,
  percentiles,
  ratio,
  sleep,
  spawnLiftoff,
  startServer,
  registerProtocolAgent,
  tempDir,
} from './lib.mjs';

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
  return {
    n,
    pending: q.pending,
    push: percentiles(push.slice(10)),
    pop: percentiles(pop.slice(10)),
    ...(await views(client, samples)),
    sql: await sqlTimes(samples, (text) => {
      const Database = require('better-sqlite3');
      const db = new Database(join(dataDir, 'liftoff.db'), { readonly: true });
      const stmt = db.prepare(text);
      return { run: async () => stmt.all(), close: async () => db.close() };
    }),
  };
}

/**
 * The two reads themselves, in this process on the server's database: the counter read the queue view makes now,
 * and the count over the backlog it made before (issue 20), each `samples` times. Under a loaded machine the HTTP
 * figures above carry the load's noise; these two compare like for like.
 */
async function sqlTimes(samples, open) {
  const out = {};
  for (const [name, text] of Object.entries(READS)) {
    const q = await open(text);
    const times = [];
    for (let i = 0; i < samples; i++) {
      const t = performance.now();
      await q.run();
      times.push(performance.now() - t);
    }
    await q.close();
    out[name] = percentiles(times.slice(10));
  }
  return out;
}

const QUEUE = `(SELECT id FROM queues WHERE name = 'default')`;
const READS = {
  counters: `SELECT queue_id, priority, SUM(pending) AS pending, SUM(active) AS active FROM (
      SELECT queue_id, priority, pending, active FROM queue_backlog WHERE queue_id IN ${QUEUE}
      UNION ALL
      SELECT queue_id, priority, pending, active FROM queue_backlog_deltas WHERE queue_id IN ${QUEUE}
    ) AS b GROUP BY queue_id, priority`,
  count: `SELECT queue_id, state, COUNT(*) AS n FROM items WHERE queue_id IN ${QUEUE}
      AND state IN ('pending', 'claimed', 'starting', 'running', 'cancelling') GROUP BY queue_id, state`,
};

/**
 * GET queue (pending and running counts), then GET of an item just pushed (its position: the back of the line,
 * what a user looks at after pushing), timed at the client; the first 10 of each are warm-up.
 */
async function views(client, samples) {
  const view = [];
  for (let i = 0; i < samples; i++) {
    const t = performance.now();
    await client.getQueue('default', 'default');
    view.push(performance.now() - t);
  }
  const spec = { source: { type: 'git', url: 'https://example.com/r.git' }, entry_point: ['true'] };
  const last = await client.push('default', 'default', { spec });
  const position = [];
  let at = 0;
  for (let i = 0; i < samples; i++) {
    const t = performance.now();
    at = (await client.getItem(last.id)).position;
    position.push(performance.now() - t);
  }
  await client.cancelItem(last.id);
  return { view: percentiles(view.slice(10)), position: percentiles(position.slice(10)), at };
}

/** PostgreSQL: a server on a fresh database, the backlog inserted by one INSERT … SELECT generate_series. */
async function measurePg(pgBase, n, samples) {
  const { default: pg } = await import('pg');
  const database = await freshPgDatabase(pgBase);
  const home = tempDir();
  const proc = spawnLiftoff(['server', '--port', '0', '--data-dir', join(home, 'data'), '--database', database], {
    HOME: home,
  });
  const [, url] = await proc.waitFor(/listening on (http:\/\/\S+)/);
  const client = new LiftoffClient({
    baseUrl: url,
    apiKey: readCredentials(join(home, '.config', 'liftoff', 'credentials')).api_key,
  });
  const db = new pg.Client({ connectionString: database });
  await db.connect();
  try {
    await db.query(
      `INSERT INTO items (id, queue_id, priority, state, spec, created_at)
       SELECT '0000' || lpad(i::text, 12, '0') || '-backlog', q.id, 2, 'pending', $1, $2
       FROM generate_series(1, $3::int) AS i, (SELECT id FROM queues WHERE name = 'default') AS q`,
      [SPEC_JSON, Date.now(), n],
    );
    await db.query('ANALYZE');
    // The triggers wrote one delta per row; the server folds them into the counters every second (50k a time).
    // Measured once folded, as in steady state: a fold keeps up with far more than the writes of one server.
    for (;;) {
      const { rows } = await db.query('SELECT COUNT(*)::int AS n FROM queue_backlog_deltas');
      if (rows[0].n === 0) break;
      await sleep(200);
    }
  } finally {
    await db.end();
  }
  const q = await client.getQueue('default', 'default');
  const sql = await sqlTimes(samples, async (text) => {
    const c = new pg.Client({ connectionString: database });
    await c.connect();
    return { run: () => c.query(text), close: () => c.end() };
  });
  return { n, pending: q.pending, ...(await views(client, samples)), sql };
}

const SPEC_JSON = JSON.stringify({
  source: { type: 'git', url: 'https://example.com/r.git' },
  entry_point: ['true'],
  args: [],
  run_config: {},
  env: {},
  resource_args: {},
});

export default {
  name: 'depth',
  title: 'Queue depth',
  async run({ quick, pgUrl }) {
    const rows = [];
    const depths = quick ? [0, 1000] : [0, 10_000, 100_000];
    for (const n of depths) rows.push(await measure(n, quick ? 20 : 210));
    const pgRows = [];
    if (pgUrl) for (const n of depths) pgRows.push(await measurePg(pgUrl, n, quick ? 20 : 210));
    const viewRow = (db, r) => [
      db,
      r.n.toLocaleString('en'),
      String(r.pending),
      `${fmtMs(r.view.p50)} / ${fmtMs(r.view.p95)} / ${fmtMs(r.view.p99)}`,
      `${fmtMs(r.position.p50)} / ${fmtMs(r.position.p95)} / ${fmtMs(r.position.p99)} (position ${r.at})`,
    ];
    const sqlRow = (db, r) => [
      db,
      r.n.toLocaleString('en'),
      `${fmtMs(r.sql.counters.p50)} / ${fmtMs(r.sql.counters.p95)}`,
      `${fmtMs(r.sql.count.p50)} / ${fmtMs(r.sql.count.p95)}`,
    ];
    const load = loadavg()
      .map((l) => l.toFixed(1))
      .join(', ');
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
        {
          title: 'Queue view and item position against queue depth',
          how: 'GET of the queue (its pending and running counts), then GET of an item pushed last (its position at the back of the line), 200 times each after 10 warm-up requests, timed at the client over HTTP on loopback. The backlog is one queue of items at one priority, inserted by SQL (on PostgreSQL after the server started, then measured once the counter deltas were folded).',
          columns: [
            'database',
            'pending items',
            'queue says pending',
            'GET queue p50 / p95 / p99',
            'GET item p50 / p95 / p99',
          ],
          rows: [...rows.map((r) => viewRow('SQLite', r)), ...pgRows.map((r) => viewRow('PostgreSQL', r))],
          notes: [
            'Target (issue 20): queue view with 100k pending <= 5 ms p50 on both databases. Counts come from counters kept by triggers (migration 0012), not a count over the backlog.',
            ...(pgUrl ? [] : ['No PostgreSQL was reachable: its rows are missing.']),
            `Load average when the run ended: ${load} (on ${cpus().length} cores, shared with other work); the HTTP figures include that load.`,
          ],
        },
        {
          title: 'The queue view read itself: counters vs the count it replaced',
          how: 'In the bench process, on the database of the run above: the read the queue view makes now (counter rows plus not yet folded deltas) and the COUNT(*) … GROUP BY state over the backlog it made before, 200 times each after 10 warm-up runs.',
          columns: ['database', 'pending items', 'counters p50 / p95', 'COUNT(*) p50 / p95'],
          rows: [...rows.map((r) => sqlRow('SQLite', r)), ...pgRows.map((r) => sqlRow('PostgreSQL', r))],
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
      json: { sqlite: rows, postgres: pgRows },
    };
  },
};
