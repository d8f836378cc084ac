// The global runs page (issue 18): pages of 100k runs spread over 8 queues and 16 agents, across every queue of the
// entity, unfiltered side by side with each filter the page offers (state, queue, agent, time range, search), on
// SQLite and PostgreSQL. Runs are written straight into the database; each page's query plan is recorded, and
// whether it is read off an index (the issue's bar: a filtered page at p50 <= 20 ms with an index in the plan).
import { createRequire } from 'node:module';
import { pgPlans, sqlitePlans } from './plans.mjs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { parseColumns, parseSort } from '../packages/server/dist/store/runColumns.js';
import { runsQuery } from '../packages/server/dist/store/runQuery.js';
import { candidatesQuery, searchCandidates } from '../packages/server/dist/store/runSearch.js';
import { fmtMs, percentiles, startServer } from './lib.mjs';

const require = createRequire(import.meta.url);
const STATES = ['finished', 'failed', 'running', 'stopped'];
const QUEUES = Array.from({ length: 8 }, (_, i) => `q${i}`);
const AGENTS = Array.from({ length: 16 }, (_, i) => `agent-${String(i).padStart(2, '0')}`);
/** Runs are one second apart, the newest now: the window is an hour of runs in the middle of the history. */
const windowOf = (now, n) => ({
  since: now - Math.floor(n / 2) * 1000,
  until: now - Math.floor(n / 2) * 1000 + 3_600_000,
});

/** The pages measured; `filter` is the same page as runsQuery's filter, for its plan. */
function pages(now, n) {
  const w = windowOf(now, n);
  return [
    { label: 'no filter (newest first)', query: {} },
    { label: 'state=failed', query: { state: 'failed' } },
    { label: 'queue=q3', query: { queue: 'q3' } },
    { label: 'agent=agent-07', query: { agent: 'agent-07' } },
    { label: 'created in a 1-hour window (since/until)', query: { since: w.since, until: w.until } },
    { label: 'agent=agent-07, state=failed', query: { agent: 'agent-07', state: 'failed' } },
    { label: 'queue=q3, state=stopped, 1-hour window', query: { queue: 'q3', state: 'stopped', ...w } },
    {
      label: 'search by id prefix (the newest 100 runs share it)',
      query: {
        q: `run${String(n - 1)
          .padStart(8, '0')
          .slice(0, 6)}`,
      },
    },
    { label: 'search q=run-4242 (a rare name substring)', query: { q: 'run-4242' } },
    { label: 'search q=run-4242, state=failed', query: { q: 'run-4242', state: 'failed' } },
    { label: 'search q=un-9 (a common name substring: 11% of runs)', query: { q: 'un-9' } },
  ];
}

function row(i, now, n) {
  const created = now - (n - i) * 1000;
  return {
    id: `run${String(i).padStart(8, '0')}`,
    queue: QUEUES[i % QUEUES.length],
    agent: AGENTS[(i * 7) % AGENTS.length],
    status: STATES[i % 4],
    created,
    name: `run-${i}`,
    spec: JSON.stringify({
      source: { type: 'git', url: 'https://example.com/r.git' },
      entry_point: ['python', 'train.py'],
      run_config: { lr: ((i * 7919) % 1000) / 1e5 },
      name: `run-${i}`,
    }),
  };
}

function seedSqlite(file, n, now) {
  const Database = require('better-sqlite3');
  const db = new Database(file);
  const ids = Object.fromEntries(
    db
      .prepare('select name, id from queues')
      .all()
      .map((q) => [q.name, q.id]),
  );
  const item = db.prepare(
    'insert into items (id, queue_id, priority, state, spec, created_at, run_id) values (?, ?, 2, ?, ?, ?, ?)',
  );
  const run = db.prepare(
    'insert into runs (id, item_id, queue_id, agent_id, status, created_at, started_at, ended_at, name) values (?, ?, ?, ?, ?, ?, ?, ?, ?)',
  );
  db.transaction(() => {
    for (let i = 0; i < n; i++) {
      const r = row(i, now, n);
      item.run(`i-${r.id}`, ids[r.queue], r.status, r.spec, r.created - 2000, r.id);
      run.run(r.id, `i-${r.id}`, ids[r.queue], r.agent, r.status, r.created, r.created + 5, r.created + 900, r.name);
    }
  })();
  db.exec('ANALYZE');
  db.close();
}

async function seedPg(url, n, now) {
  const { default: pg } = await import('pg');
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    for (let from = 0; from < n; from += 5000) {
      const batch = Array.from({ length: Math.min(5000, n - from) }, (_, k) => row(from + k, now, n));
      const json = JSON.stringify(batch.map((r) => ({ ...r, q: r.queue })));
      const src = `json_to_recordset($1::json) AS x(id text, q text, agent text, status text, created bigint, spec text, name text)
        JOIN queues ON queues.name = x.q`;
      await c.query(
        `INSERT INTO items (id, queue_id, priority, state, spec, created_at, run_id)
         SELECT 'i-' || x.id, queues.id, 2, x.status, x.spec, x.created - 2000, x.id FROM ${src}`,
        [json],
      );
      await c.query(
        `INSERT INTO runs (id, item_id, queue_id, agent_id, status, created_at, started_at, ended_at, name)
         SELECT x.id, 'i-' || x.id, queues.id, x.agent, x.status, x.created, x.created + 5, x.created + 900, x.name FROM ${src}`,
        [json],
      );
    }
    await c.query('ANALYZE');
  } finally {
    await c.end();
  }
}

async function timePages(client, list, samples) {
  const out = [];
  for (const page of list) {
    const times = [];
    let got = 0;
    for (let i = 0; i < samples + 10; i++) {
      const t = performance.now();
      const r = await client.listRuns('default', { ...page.query, limit: 50 });
      if (i >= 10) times.push(performance.now() - t);
      got = r.runs.length;
    }
    out.push({ label: page.label, got, ...percentiles(times) });
  }
  return out;
}

/** Each page's plan, one line, and whether one of the runs indexes serves it (rather than a scan of runs). */
async function plans(db, dialect, explain, list) {
  const entity = await db.selectFrom('entities').select('id').where('name', '=', 'default').executeTakeFirst();
  const queues = Object.fromEntries(
    (await db.selectFrom('queues').select(['name', 'id']).execute()).map((q) => [q.name, q.id]),
  );
  const out = [];
  for (const page of list) {
    const { state, queue, agent, q, since, until } = page.query;
    const scope = { entityId: entity.id, queueId: queue ? queues[queue] : undefined };
    // A search first asks the trigram index for its candidates (runSearch.ts), and only then builds the page's query.
    const step = q ? candidatesQuery(db, dialect, scope, q) : undefined;
    const stepPlan = step ? await explain(step.compile()) : undefined;
    const candidates = step ? await searchCandidates(db, dialect, scope, q) : undefined;
    const { query } = runsQuery(
      db,
      dialect,
      { ...scope, states: state ? [state] : undefined, agent, q, since, until, candidates },
      { columns: parseColumns(undefined), sort: parseSort(undefined), limit: 50 },
    );
    const plan = await explain(query.compile());
    // Every index of the runs table is named runs_* (SQLite's primary key: sqlite_autoindex_runs_1); the search
    // index is an FTS5 table read by its LIKE index on SQLite, runs_search_trgm on PostgreSQL.
    const pageIndexed = /\bruns_[a-z_]+\b|sqlite_autoindex_runs/.test(plan);
    const stepIndexed = stepPlan === undefined || /VIRTUAL TABLE INDEX 0:L|runs_search_trgm/.test(stepPlan);
    out.push({
      plan: stepPlan
        ? `index step: ${stepPlan}; ${candidates ? `${candidates.length} candidates` : 'too many candidates, walk'}; page: ${plan}`
        : plan,
      index: pageIndexed && stepIndexed,
    });
  }
  return out;
}

async function measure(n, samples, pgUrl) {
  let server = await startServer({ database: pgUrl });
  for (const q of QUEUES) await server.client.createQueue('default', { name: q, resource: 'local-process' });
  const now = Date.now();
  const list = pages(now, n);
  let db;
  let explain;
  if (pgUrl) {
    await seedPg(server.databaseUrl, n, now);
    ({ db, explain } = await pgPlans(server.databaseUrl));
  } else {
    const dbFile = join(server.home, 'data', 'liftoff.db');
    server.proc.child.kill('SIGTERM');
    await server.proc.exited;
    seedSqlite(dbFile, n, now);
    server = await startServer({ home: server.home });
    ({ db, explain } = sqlitePlans(dbFile));
  }
  const timed = await timePages(server.client, list, samples);
  const plan = await plans(db, pgUrl ? 'postgres' : 'sqlite', explain, list);
  await db.destroy();
  return { pages: timed, plan };
}

export default {
  name: 'globalRuns',
  title: 'Global runs page: filtered pages of 100k runs across queues',
  async run({ quick, pgUrl }) {
    const n = quick ? 5_000 : 100_000;
    const samples = quick ? 20 : 100;
    const sqlite = await measure(n, samples);
    const postgres = pgUrl ? await measure(n, samples, pgUrl) : undefined;
    const cell = (p, plan) => `${fmtMs(p.p50)} / ${fmtMs(p.p95)}${plan.index ? '' : ' (no index)'}`;
    const load = loadavg()
      .map((l) => l.toFixed(1))
      .join(', ');
    const labels = sqlite.pages.map((p) => p.label);
    return {
      tables: [
        {
          title: 'Global runs page: filtered pages of 100k runs across queues',
          how: `${n.toLocaleString('en')} runs over ${QUEUES.length} queues and ${AGENTS.length} agents, one second apart (a quarter of them failed), written into the database and ANALYZEd; then ${samples} GET /api/entities/default/runs?limit=50 (no queue: every queue of the entity, newest first) per page after 10 warm-up requests, timed at the client over HTTP on loopback. "(no index)": the plan reads no runs index.`,
          columns: ['page', 'rows', 'SQLite p50 / p95', 'PostgreSQL p50 / p95'],
          rows: labels.map((label, i) => [
            label,
            String(sqlite.pages[i].got),
            cell(sqlite.pages[i], sqlite.plan[i]),
            postgres ? cell(postgres.pages[i], postgres.plan[i]) : '-',
          ]),
          notes: [
            'Target (issue 18): a filtered page at p50 <= 20 ms on both databases, with an index in the query plan.',
            'Filters by state, queue, agent and time are each an index range in newest-first order (runs_status_created, runs_queue_created, runs_agent_created from migration 0019, runs_created); combined filters take one of them and filter the rest. A search (q) first looks up its candidates in the trigram index of migration 0023 (an FTS5 trigram table on SQLite, pg_trgm GIN on PostgreSQL): up to 1,000 of them are read by primary key and sorted; more, and the page walks the newest-first index testing each run as without the index (docs/runs.md, "Search").',
            ...labels.map(
              (l, i) =>
                `Plan of "${l}": SQLite: ${sqlite.plan[i].plan}${postgres ? `; PostgreSQL: ${postgres.plan[i].plan}` : ''}`,
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
