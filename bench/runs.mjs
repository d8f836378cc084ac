// The runs list (issue 17's runs table; issue 18's global runs page): a page of runs from 100k, newest first as the
// queue page opens it, against filtered pages with config and metric columns and sorts on them, on SQLite and
// PostgreSQL. The runs are written straight into the database (100k runs through the agent protocol would be the
// whole benchmark); the query plans of the pages are printed with the figures.
import { createRequire } from 'node:module';
import { pgPlans, sqlitePlans } from './plans.mjs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { parseColumns, parseSort } from '../packages/server/dist/store/runColumns.js';
import { runsQuery } from '../packages/server/dist/store/runQuery.js';
import { fmtMs, percentiles, startServer } from './lib.mjs';

const require = createRequire(import.meta.url);
const STATES = ['finished', 'failed', 'running', 'stopped'];
const OPTS = ['adam', 'sgd', 'rmsprop', 'adamw'];

/** The pages measured: what the UI and CLI ask for. */
const PAGES = [
  { label: 'newest first, no filter, no columns', query: {} },
  {
    label: 'state=failed, newest first, 3 columns',
    query: { state: 'failed', columns: 'config.lr,config.opt,metric.loss' },
  },
  {
    label: 'state=failed, sort -metric.loss, 3 columns',
    query: { state: 'failed', sort: '-metric.loss', columns: 'config.lr,config.opt,metric.loss' },
  },
  { label: 'no filter, sort config.lr, 1 column', query: { sort: 'config.lr', columns: 'config.lr' } },
  { label: 'search q=run-4242 (name substring)', query: { q: 'run-4242' } },
];

/** One run's rows, the same values on both databases. */
function row(i, queueId, now) {
  const created = now - (100_000 - i) * 1000;
  const status = STATES[i % 4];
  const spec = JSON.stringify({
    source: { type: 'git', url: 'https://example.com/r.git' },
    entry_point: ['python', 'train.py'],
    run_config: { lr: ((i * 7919) % 1000) / 1e5, opt: OPTS[i % 4], depth: i % 12 },
    name: `run-${i}`,
  });
  const loss = ((i * 104729) % 10_000) / 1000;
  return { id: `run${String(i).padStart(8, '0')}`, queueId, status, created, spec, loss, name: `run-${i}` };
}

function seedSqlite(file, n) {
  const Database = require('better-sqlite3');
  const db = new Database(file);
  const queue = db.prepare("select id from queues where name = 'default'").get();
  const item = db.prepare(
    'insert into items (id, queue_id, priority, state, spec, created_at) values (?, ?, 2, ?, ?, ?)',
  );
  const run = db.prepare(
    "insert into runs (id, item_id, queue_id, agent_id, status, created_at, started_at, ended_at, name) values (?, ?, ?, 'bench', ?, ?, ?, ?, ?)",
  );
  const key = db.prepare(
    "insert into run_metric_keys (run_id, key, seen, stored, stride, last_step, last_value, last_time, min_value, max_value) values (?, 'loss', 1, 1, 1, 0, ?, ?, ?, ?)",
  );
  const now = Date.now();
  db.transaction(() => {
    for (let i = 0; i < n; i++) {
      const r = row(i, queue.id, now);
      item.run(`i-${r.id}`, r.queueId, r.status, r.spec, r.created);
      run.run(r.id, `i-${r.id}`, r.queueId, r.status, r.created, r.created + 5, r.created + 900, r.name);
      key.run(r.id, r.loss, r.created, r.loss, r.loss);
    }
  })();
  db.exec('ANALYZE');
  db.close();
}

async function seedPg(url, n) {
  const { default: pg } = await import('pg');
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    const { rows } = await c.query("select id from queues where name = 'default'");
    const now = Date.now();
    // In batches of 5,000 rows: one statement per table and batch, the values as JSON arrays unnested by the server.
    for (let from = 0; from < n; from += 5000) {
      const batch = Array.from({ length: Math.min(5000, n - from) }, (_, k) => row(from + k, rows[0].id, now));
      const cols = (f) => JSON.stringify(batch.map(f));
      await c.query(
        `INSERT INTO items (id, queue_id, priority, state, spec, created_at)
         SELECT 'i-' || id, $1, 2, st, spec, cr FROM json_to_recordset($2::json) AS x(id text, st text, spec text, cr bigint)`,
        [rows[0].id, cols((r) => ({ id: r.id, st: r.status, spec: r.spec, cr: r.created }))],
      );
      await c.query(
        `INSERT INTO runs (id, item_id, queue_id, agent_id, status, created_at, started_at, ended_at, name)
         SELECT id, 'i-' || id, $1, 'bench', st, cr, cr + 5, cr + 900, nm FROM json_to_recordset($2::json) AS x(id text, st text, cr bigint, nm text)`,
        [rows[0].id, cols((r) => ({ id: r.id, st: r.status, cr: r.created, nm: r.name }))],
      );
      await c.query(
        `INSERT INTO run_metric_keys (run_id, key, seen, stored, stride, last_step, last_value, last_time, min_value, max_value)
         SELECT id, 'loss', 1, 1, 1, 0, v, cr, v, v FROM json_to_recordset($1::json) AS x(id text, v float8, cr bigint)`,
        [cols((r) => ({ id: r.id, v: r.loss, cr: r.created }))],
      );
    }
    await c.query('ANALYZE');
  } finally {
    await c.end();
  }
}

/** `samples` requests of each page after 10 warm-up ones, timed at the client over HTTP on loopback. */
async function timePages(client, samples) {
  const out = [];
  for (const page of PAGES) {
    const times = [];
    let got = 0;
    for (let i = 0; i < samples + 10; i++) {
      const t = performance.now();
      const r = await client.listRuns('default', { queue: 'default', ...page.query, limit: 50 });
      if (i >= 10) times.push(performance.now() - t);
      got = r.runs.length;
    }
    out.push({ label: page.label, got, ...percentiles(times) });
  }
  return out;
}

/** The plan of each page's query on the server's database, one line. */
async function plans(db, dialect, explain) {
  const ids = await db
    .selectFrom('queues')
    .select(['id', 'entity_id'])
    .where('name', '=', 'default')
    .executeTakeFirst();
  const out = [];
  for (const page of PAGES) {
    const { query } = runsQuery(
      db,
      dialect,
      {
        entityId: ids.entity_id,
        queueId: ids.id,
        states: page.query.state ? [page.query.state] : undefined,
        q: page.query.q,
      },
      { columns: parseColumns(page.query.columns), sort: parseSort(page.query.sort), limit: 50 },
    );
    out.push(await explain(query.compile()));
  }
  return out;
}

async function measure(n, samples, pgUrl) {
  let server = await startServer({ database: pgUrl });
  const dbFile = join(server.home, 'data', 'liftoff.db');
  let db;
  let explain;
  if (pgUrl) {
    const url = server.databaseUrl;
    await seedPg(url, n);
    ({ db, explain } = await pgPlans(url));
  } else {
    server.proc.child.kill('SIGTERM');
    await server.proc.exited;
    seedSqlite(dbFile, n);
    server = await startServer({ home: server.home });
    ({ db, explain } = sqlitePlans(dbFile));
  }
  const pages = await timePages(server.client, samples);
  const plan = await plans(db, pgUrl ? 'postgres' : 'sqlite', explain);
  await db.destroy();
  return { pages, plan };
}

export default {
  name: 'runs',
  title: 'Runs list: pages of 100k runs',
  async run({ quick, pgUrl }) {
    const n = quick ? 5_000 : 100_000;
    const samples = quick ? 20 : 100;
    const sqlite = await measure(n, samples);
    const postgres = pgUrl ? await measure(n, samples, pgUrl) : undefined;
    const cell = (p) => `${fmtMs(p.p50)} / ${fmtMs(p.p95)}`;
    const load = loadavg()
      .map((l) => l.toFixed(1))
      .join(', ');
    return {
      tables: [
        {
          title: 'Runs list: pages of 100k runs',
          how: `${n.toLocaleString('en')} runs in one queue (a quarter of them failed; each with a run config and a "loss" metric) written into the database, ANALYZEd; then ${samples} GET /api/entities/default/runs?limit=50 per page after 10 warm-up requests, timed at the client over HTTP on loopback.`,
          columns: ['page', 'SQLite p50 / p95', 'PostgreSQL p50 / p95'],
          rows: sqlite.pages.map((p, i) => [p.label, cell(p), postgres ? cell(postgres.pages[i]) : '-']),
          notes: [
            'Target (issue 18): a filtered page of the global runs page over 100k runs at p50 <= 20 ms on both databases.',
            'Every page is of queue "default" (the queue page). Newest first is served by the (queue_id, created_at, id) index and stops after the page; a sort on a config or metric value reads every run the filter keeps, so its cost grows with them (see the plans); a name search looks its candidates up in the trigram index of migration 0023 first (docs/runs.md, "Search").',
            ...PAGES.map(
              (p, i) =>
                `Plan of "${p.label}": SQLite: ${sqlite.plan[i]}${postgres ? `; PostgreSQL: ${postgres.plan[i]}` : ''}`,
            ),
            ...(pgUrl ? [] : ['No PostgreSQL was reachable: its column is empty.']),
            `Load average when the run ended: ${load} (on ${cpus().length} cores, shared with other work).`,
          ],
        },
      ],
      charts: [],
      json: { sqlite, postgres },
    };
  },
};
