import type { FastifyRequest } from 'fastify';
import type { Kysely } from 'kysely';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { App } from './context.js';
import type { Database } from './store/schema.js';

/**
 * Prometheus metrics through prom-client. Each server instance has its own registry (tests start several servers in
 * one process, and a counter of one must not move with another's events). Gauges are read from the database at
 * scrape time, so every replica reports the same totals; counters and the dispatch-latency histogram are per
 * process (each replica counts what it served), which is how Prometheus expects them to be summed across instances.
 */
const BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800];

/**
 * Process metrics (CPU, memory, file descriptors, event-loop lag, GC pauses, heap spaces) describe the process, not
 * a server instance, and prom-client's collectors install process-wide observers: one registry of them per process,
 * made on first use and shared by every server instance in it.
 */
let processRegistry: Registry | undefined;
function processMetrics(): Registry {
  if (!processRegistry) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry, eventLoopMonitoringPrecision: 10 });
  }
  return processRegistry;
}

export class Metrics {
  readonly registry = new Registry();
  private db: Kysely<Database> | undefined;
  private readonly preemptions: Counter<'outcome'>;
  private readonly dispatch: Histogram;
  private readonly refusedBodies: Counter<'reason'>;
  private readonly rateLimited: Counter;
  private readonly lostRuns: Counter;
  private readonly logResyncs: Counter;

  constructor() {
    processMetrics();
    const registers = [this.registry];
    const query = () => {
      if (!this.db) throw new Error('metrics are collected through render(db)');
      return this.db;
    };
    new Gauge({
      name: 'liftoff_queue_depth',
      help: 'Pending items per queue.',
      labelNames: ['entity', 'queue'],
      registers,
      async collect() {
        const rows = await query()
          .selectFrom('queues')
          .innerJoin('entities', 'entities.id', 'queues.entity_id')
          .leftJoin('items', (j) => j.onRef('items.queue_id', '=', 'queues.id').on('items.state', '=', 'pending'))
          .select(['entities.name as entity', 'queues.name as queue', (eb) => eb.fn.count<number>('items.id').as('n')])
          .groupBy(['entities.name', 'queues.name'])
          .execute();
        this.reset();
        for (const r of rows) this.set({ entity: r.entity, queue: r.queue }, Number(r.n));
      },
    });
    new Gauge({
      name: 'liftoff_items',
      help: 'Items by state (ended ones until retention prunes them).',
      labelNames: ['state'],
      registers,
      async collect() {
        const rows = await query()
          .selectFrom('items')
          .select(['state', (eb) => eb.fn.countAll<number>().as('n')])
          .groupBy('state')
          .execute();
        this.reset();
        for (const r of rows) this.set({ state: r.state }, Number(r.n));
      },
    });
    new Gauge({
      name: 'liftoff_agents',
      help: 'Agents by status.',
      labelNames: ['status'],
      registers,
      async collect() {
        const rows = await query()
          .selectFrom('agents')
          .select(['status', (eb) => eb.fn.countAll<number>().as('n')])
          .groupBy('status')
          .execute();
        this.reset();
        for (const r of rows) this.set({ status: r.status }, Number(r.n));
      },
    });
    new Gauge({
      name: 'liftoff_run_outcomes',
      help: 'Ended runs by outcome (until retention prunes them).',
      labelNames: ['status'],
      registers,
      async collect() {
        const rows = await query()
          .selectFrom('runs')
          .select(['status', (eb) => eb.fn.countAll<number>().as('n')])
          .where('status', 'in', ['finished', 'failed', 'stopped', 'preempted', 'lost'])
          .groupBy('status')
          .execute();
        this.reset();
        for (const r of rows) this.set({ status: r.status }, Number(r.n));
      },
    });
    this.preemptions = new Counter({
      name: 'liftoff_preemptions_total',
      help: 'Runs reported preempted on this server process, by what became of their item.',
      labelNames: ['outcome'],
      registers,
    });
    // Both outcomes are exported from the start (at 0), as the hand-written exposition did.
    this.preemptions.inc({ outcome: 'requeued' }, 0);
    this.preemptions.inc({ outcome: 'exhausted' }, 0);
    this.dispatch = new Histogram({
      name: 'liftoff_dispatch_latency_seconds',
      help: "Time from an item's push to its claim by an agent, on this server process.",
      buckets: BUCKETS,
      registers,
    });
    this.refusedBodies = new Counter({
      name: 'liftoff_refused_bodies_total',
      help: 'Requests refused for their body on this server process, by reason.',
      labelNames: ['reason'],
      registers,
    });
    for (const reason of REFUSAL_REASONS) this.refusedBodies.inc({ reason }, 0);
    this.rateLimited = new Counter({
      name: 'liftoff_auth_rate_limited_total',
      help: 'Requests refused with 429 because their key prefix or client address failed authentication too often.',
      registers,
    });
    this.lostRuns = new Counter({
      name: 'liftoff_runs_lost_total',
      help: 'Runs this server process ended "lost" because their agent was silent past the run lease.',
      registers,
    });
    this.logResyncs = new Counter({
      name: 'liftoff_log_resyncs_total',
      help: 'Log uploads answered 409 (offset refused); each makes the agent resync to the stored size.',
      registers,
    });
  }

  /** A run reported preempted: its item was requeued, or failed with its retries used up. */
  countPreemption(requeued: boolean): void {
    this.preemptions.inc({ outcome: requeued ? 'requeued' : 'exhausted' });
  }

  /** Seconds from an item's push to its claim. */
  observeDispatch(seconds: number): void {
    this.dispatch.observe(Math.max(0, seconds));
  }

  /** A request refused with 429 by the failed-auth rate limit. */
  authRateLimited(): void {
    this.rateLimited.inc();
  }

  /** A run ended `lost` (its agent was silent past the lease). */
  runLost(): void {
    this.lostRuns.inc();
  }

  /** A log upload answered 409: the agent resyncs to the server's stored size. */
  logResync(): void {
    this.logResyncs.inc();
  }

  /** A request refused for its body. */
  refusedBody(reason: RefusalReason): void {
    this.refusedBodies.inc({ reason });
  }

  readonly contentType = Registry.PROMETHEUS_CONTENT_TYPE;

  /** The exposition text: this process's metrics, then this server instance's, its gauges read from `db`. */
  async render(db: Kysely<Database>): Promise<string> {
    this.db = db;
    return `${await processMetrics().metrics()}\n${await this.registry.metrics()}`;
  }
}

/**
 * Why a body was refused: too large (413: fastify's body limit, the archive cap, SPEC_TOO_LARGE), a binary body where
 * JSON is taken (415), JSON nested too deep (400 JSON_TOO_DEEP), or a code archive its check refused (400
 * SOURCE_REFUSED: an escaping entry, too many entries, too large unpacked: a gzip bomb).
 */
export const REFUSAL_REASONS = ['too_large', 'unsupported_type', 'too_deep', 'archive_refused'] as const;
export type RefusalReason = (typeof REFUSAL_REASONS)[number];

function refusalReason(err: unknown, req: FastifyRequest): RefusalReason | undefined {
  const code = (err as { code?: string }).code;
  if (code === 'FST_ERR_CTP_BODY_TOO_LARGE' || code === 'PAYLOAD_TOO_LARGE' || code === 'SPEC_TOO_LARGE')
    return 'too_large';
  if (code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') return 'unsupported_type';
  if (code === 'JSON_TOO_DEEP') return 'too_deep';
  if (code === 'SOURCE_REFUSED' && req.method === 'POST' && req.routeOptions.url === '/api/code-archives')
    return 'archive_refused';
  return undefined;
}

/**
 * Counts refusals where they surface, whichever part of the server refused: every error that ends a request passes
 * fastify's onError hook (body parsers, the archive route, the spec limits), and every 409 to a log upload.
 */
export function countAnswers(app: App, metrics: Metrics): void {
  app.addHook('onError', async (req, _reply, err) => {
    const reason = refusalReason(err, req);
    if (reason) metrics.refusedBody(reason);
  });
  app.addHook('onResponse', async (req, reply) => {
    if (reply.statusCode === 409 && req.method === 'POST' && req.routeOptions.url === '/api/runs/:id/logs')
      metrics.logResync();
  });
}
