/**
 * Runs seeded by bulk SQL for the runs list tests (runList.test.ts): one multi-row INSERT per table instead of one
 * push, claim and ack per run, so hundreds of runs cost one statement. The same SQL runs on SQLite and PostgreSQL.
 */
export interface FixtureRun {
  id: string;
  queue: string;
  status: string;
  created_at: number;
  started_at: number | null;
  ended_at: number | null;
  name?: string;
  run_config: Record<string, unknown>;
  /** Metric summaries by key: last, min, max. */
  metrics: Record<string, { last: number; min: number; max: number }>;
}

const q = (s: string) => `'${s.replace(/'/g, "''")}'`;
const n = (v: number | null) => (v === null ? 'NULL' : String(v));
const queueId = (entity: string, queue: string) =>
  `(SELECT qq.id FROM queues qq JOIN entities ee ON ee.id = qq.entity_id WHERE ee.name = ${q(entity)} AND qq.name = ${q(queue)})`;

/** INSERT statements for `runs` of `entity` (their items, runs and metric summaries). */
export function insertRunsSql(entity: string, runs: FixtureRun[]): string {
  if (!runs.length) return '';
  const items = runs.map((r) => {
    const spec = {
      source: { type: 'git', url: 'https://git.example.com/x.git' },
      entry_point: ['true'],
      run_config: r.run_config,
      ...(r.name === undefined ? {} : { name: r.name }),
    };
    return `(${q(`i-${r.id}`)}, ${queueId(entity, r.queue)}, 2, ${q(r.status)}, ${q(JSON.stringify(spec))}, ${r.created_at}, ${q(r.id)})`;
  });
  const rows = runs.map(
    (r) =>
      `(${q(r.id)}, ${q(`i-${r.id}`)}, ${queueId(entity, r.queue)}, 'bulk-agent', ${q(r.status)}, ${r.created_at}, ${n(r.started_at)}, ${n(r.ended_at)}, ${r.name === undefined ? 'NULL' : q(r.name)})`,
  );
  const keys = runs.flatMap((r) =>
    Object.entries(r.metrics).map(
      ([k, m]) => `(${q(r.id)}, ${q(k)}, 1, 1, 1, 0, ${m.last}, ${r.created_at}, ${m.min}, ${m.max})`,
    ),
  );
  return [
    `INSERT INTO items (id, queue_id, priority, state, spec, created_at, run_id) VALUES ${items.join(', ')};`,
    `INSERT INTO runs (id, item_id, queue_id, agent_id, status, created_at, started_at, ended_at, name) VALUES ${rows.join(', ')};`,
    keys.length
      ? `INSERT INTO run_metric_keys (run_id, key, seen, stored, stride, last_step, last_value, last_time, min_value, max_value) VALUES ${keys.join(', ')};`
      : '',
  ].join('\n');
}

const STATES = ['finished', 'failed', 'running', 'stopped'] as const;
const OPTS = ['adam', 'sgd', 'Adam', 'rmsprop', 'adamw'];

/** Run `i` of the standard fixture: every kind of config value, missing ones, ties on created_at. */
export function fixtureRun(i: number, queue = 'default'): FixtureRun {
  const status = STATES[i % STATES.length] as string;
  const created = 1_000_000 + Math.floor(i / 2) * 1000; // pairs share created_at: the id breaks the tie
  const run_config: Record<string, unknown> = {
    opt: OPTS[i % OPTS.length],
    model: { depth: (i * 7) % 10 },
    flag: i % 2 === 0,
  };
  if (i % 7 !== 0) run_config.lr = ((i * 13) % 100) / 1000;
  if (i % 3 === 0) run_config.mixed = (i * 11) % 17;
  else if (i % 3 === 1) run_config.mixed = `s${(i * 5) % 13}`;
  if (i % 11 === 0) run_config.nulled = null;
  const metrics: FixtureRun['metrics'] = {};
  if (i % 6 !== 0) {
    const last = ((i * 7) % 50) / 10;
    metrics.loss = { last, min: last - 0.5, max: last + 1 + (i % 4) };
  }
  return {
    id: `r${String(i).padStart(4, '0')}`,
    queue,
    status,
    created_at: created,
    started_at: created + 10,
    ended_at: status === 'running' ? null : created + 10 + ((i * 37) % 500),
    name: i % 5 === 0 ? undefined : `Run-${i}`,
    run_config,
    metrics,
  };
}

/** A value's place in the documented order (runQuery.ts): rank (missing last), then number, then string. */
function key(v: unknown, desc: boolean): [number, number, string] {
  if (v === undefined || v === null) return [2, 0, ''];
  if (typeof v === 'number') return [desc ? 1 : 0, v, ''];
  const s = typeof v === 'string' ? v : JSON.stringify(v);
  return [desc ? 0 : 1, 0, s];
}
const cmp = <T extends number | string>(a: T, b: T) => (a < b ? -1 : a > b ? 1 : 0);

/** The order the server must give: `value` picks the sorted value of a run. */
export function expectedOrder(runs: FixtureRun[], value: (r: FixtureRun) => unknown, desc: boolean): string[] {
  const d = desc ? -1 : 1;
  return [...runs]
    .sort((a, b) => {
      const [ra, na, sa] = key(value(a), desc);
      const [rb, nb, sb] = key(value(b), desc);
      return cmp(ra, rb) || d * cmp(na, nb) || d * cmp(sa, sb) || d * cmp(a.id, b.id);
    })
    .map((r) => r.id);
}

/**
 * INSERT statements for `n` pending items of `queue` (ids `${prefix}NNNNNN`, in push order), priorities from
 * `priority(i)`: a deep queue in one statement per 2,000 rows. The backlog counters follow by their triggers.
 */
export function insertPendingItemsSql(
  entity: string,
  queue: string,
  n: number,
  opts: { prefix?: string; priority?: (i: number) => number; createdAt?: (i: number) => number } = {},
): string {
  const { prefix = 'p-', priority = () => 2, createdAt = (i: number) => 1_000_000 + i } = opts;
  const spec = q(JSON.stringify({ source: { type: 'image', image: 'busybox' }, entry_point: ['true'] }));
  const out: string[] = [];
  for (let start = 0; start < n; start += 2000) {
    const rows: string[] = [];
    for (let i = start; i < Math.min(n, start + 2000); i++)
      rows.push(
        `(${q(`${prefix}${String(i).padStart(6, '0')}`)}, ${queueId(entity, queue)}, ${priority(i)}, 'pending', ${spec}, ${createdAt(i)})`,
      );
    out.push(`INSERT INTO items (id, queue_id, priority, state, spec, created_at) VALUES ${rows.join(', ')};`);
  }
  return out.join('\n');
}

/**
 * INSERT statements for agents of `entity` (ids as given), serving `queues`. KILLED by default (the reaper leaves
 * them alone); `aliveUntil` makes them POLLING with a heartbeat at that time, so their runs are not declared lost.
 */
export function insertAgentsSql(
  entity: string,
  ids: string[],
  queues: string[] = ['default'],
  aliveUntil?: number,
): string {
  const entityId = `(SELECT id FROM entities WHERE name = ${q(entity)})`;
  const status = aliveUntil === undefined ? 'KILLED' : 'POLLING';
  const rows = ids.map(
    (id, i) =>
      `(${q(id)}, ${q(id)}, ${entityId}, 'h', ${q(JSON.stringify(queues))}, 't', '{}', 1, '${status}', ${1_000 + i}, ${aliveUntil ?? 1_000 + i}, 0)`,
  );
  return `INSERT INTO agents (id, name, entity_id, hostname, queues, version, config, max_jobs, status, started_at, last_heartbeat_at, current_jobs) VALUES ${rows.join(', ')};`;
}
