import type { Kysely } from 'kysely';
import type { Database } from './store/schema.js';

/**
 * Prometheus text exposition (format 0.0.4), written by hand: prom-client is not a dependency and the format is a
 * few lines of text. Gauges are read from the database at scrape time, so every replica reports the same totals;
 * the dispatch-latency histogram is per process (each replica observes the claims it served), which is how
 * Prometheus expects histograms to be summed across instances.
 */
const BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800];

export class Metrics {
  private readonly counts = new Array<number>(BUCKETS.length).fill(0);
  private sum = 0;
  private total = 0;
  private readonly preemptions = { requeued: 0, exhausted: 0 };
  private lostRuns = 0;

  /** The reaper declared a run lost (its agent silent past the run lost timeout). */
  runLost(): void {
    this.lostRuns += 1;
  }

  private authLimited = 0;

  /** A failed authentication was answered 429 (too many failures from its address or key prefix). */
  authRateLimited(): void {
    this.authLimited += 1;
  }

  /** A run reported preempted: its item was requeued, or failed with its retries used up. */
  countPreemption(requeued: boolean): void {
    this.preemptions[requeued ? 'requeued' : 'exhausted'] += 1;
  }

  /** Seconds from an item's push to its claim. */
  observeDispatch(seconds: number): void {
    const s = Math.max(0, seconds);
    this.sum += s;
    this.total += 1;
    for (let i = 0; i < BUCKETS.length; i++) if (s <= (BUCKETS[i] as number)) (this.counts[i] as number)++;
  }

  async render(db: Kysely<Database>): Promise<string> {
    const out: string[] = [];
    const label = (v: string) => v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
    const gauge = (name: string, help: string, rows: Array<[Record<string, string>, number]>) => {
      out.push(`# HELP ${name} ${help}`, `# TYPE ${name} gauge`);
      for (const [labels, v] of rows) {
        const l = Object.entries(labels)
          .map(([k, x]) => `${k}="${label(x)}"`)
          .join(',');
        out.push(`${name}${l ? `{${l}}` : ''} ${v}`);
      }
    };

    const depth = await db
      .selectFrom('queues')
      .innerJoin('entities', 'entities.id', 'queues.entity_id')
      .leftJoin('items', (j) => j.onRef('items.queue_id', '=', 'queues.id').on('items.state', '=', 'pending'))
      .select(['entities.name as entity', 'queues.name as queue', (eb) => eb.fn.count<number>('items.id').as('n')])
      .groupBy(['entities.name', 'queues.name'])
      .execute();
    gauge(
      'liftoff_queue_depth',
      'Pending items per queue.',
      depth.map((r) => [{ entity: r.entity, queue: r.queue }, Number(r.n)]),
    );
    const items = await db
      .selectFrom('items')
      .select(['state', (eb) => eb.fn.countAll<number>().as('n')])
      .groupBy('state')
      .execute();
    gauge(
      'liftoff_items',
      'Items by state (ended ones until retention prunes them).',
      items.map((r) => [{ state: r.state }, Number(r.n)]),
    );
    const agents = await db
      .selectFrom('agents')
      .select(['status', (eb) => eb.fn.countAll<number>().as('n')])
      .groupBy('status')
      .execute();
    gauge(
      'liftoff_agents',
      'Agents by status.',
      agents.map((r) => [{ status: r.status }, Number(r.n)]),
    );
    const runs = await db
      .selectFrom('runs')
      .select(['status', (eb) => eb.fn.countAll<number>().as('n')])
      .where('status', 'in', ['finished', 'failed', 'stopped', 'preempted', 'lost'])
      .groupBy('status')
      .execute();
    gauge(
      'liftoff_run_outcomes',
      'Ended runs by outcome (until retention prunes them).',
      runs.map((r) => [{ status: r.status }, Number(r.n)]),
    );

    const p = 'liftoff_preemptions_total';
    out.push(`# HELP ${p} Runs reported preempted on this server process, by what became of their item.`);
    out.push(`# TYPE ${p} counter`);
    for (const [outcome, n] of Object.entries(this.preemptions)) out.push(`${p}{outcome="${outcome}"} ${n}`);

    const l = 'liftoff_runs_lost_total';
    out.push(`# HELP ${l} Runs this server process declared lost (their agent silent past the run lost timeout).`);
    out.push(`# TYPE ${l} counter`, `${l} ${this.lostRuns}`);
    const rl = 'liftoff_auth_rate_limited_total';
    out.push(`# HELP ${rl} Failed authentications answered 429 on this server process.`, `# TYPE ${rl} counter`);
    out.push(`${rl} ${this.authLimited}`);

    const h = 'liftoff_dispatch_latency_seconds';
    out.push(`# HELP ${h} Time from an item's push to its claim by an agent, on this server process.`);
    out.push(`# TYPE ${h} histogram`);
    BUCKETS.forEach((b, i) => out.push(`${h}_bucket{le="${b}"} ${this.counts[i]}`));
    out.push(`${h}_bucket{le="+Inf"} ${this.total}`, `${h}_sum ${this.sum}`, `${h}_count ${this.total}`);
    return `${out.join('\n')}\n`;
  }
}
