import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import {
  BadRequestError,
  LiftoffError,
  RunConfigSchemaError,
  isTerminal,
  type SweepConfig,
  type SweepTrialTemplate,
} from '@liftoff/core';
import type { SweepsTopic } from '../bus.js';
import type { AppContext } from '../context.js';
import { prepareItemAs } from '../routes/push.js';
import { Sweeps, type SweepRow, type TrialRow } from '../store/sweeps.js';
import { proposeBayes, type ObservedTrial } from './bayes.js';
import { proposeRandom } from './distributions.js';
import { gridSize, proposeGrid } from './grid.js';
import { hyperbandStops } from './hyperband.js';
import { seededRandom, trialSeed } from './random.js';
import { trialPush } from './trialPush.js';

/** The lease's name in controller_leases. */
const LEASE = 'sweeps';
/** Trials that failed (or were lost) in a row before a sweep gives up: a broken script must not loop for ever. */
export const MAX_FAILURES_IN_A_ROW = 5;

export interface SweepControllerOptions {
  /**
   * How often the leader looks at its sweeps unasked: the fallback, as a trial's end and a sweep's change wake it
   * at once through the bus (`sweeps:ended`, `sweeps:changed`), from any replica. @default 250
   */
  tickMs?: number;
  /** How long the lease lasts unrenewed: a replica that dies is replaced after at most this. @default 10_000 */
  leaseMs?: number;
}

/** A trial's state seen by the controller: in flight, or ended and how. */
const inFlight = (t: TrialRow): boolean => !isTerminal(t.state);
/** Ended without a result that counts (W&B: lost or failed runs do not count toward run_cap). */
const wasted = (t: TrialRow): boolean =>
  !t.early_terminated && !t.pruned && (t.state === 'failed' || t.state === 'lost' || t.state === 'preempted');

/**
 * The sweep controller: one per server process, acting only while its process holds the database lease, so among
 * replicas one drives every sweep. Each tick it renews the lease, then per running sweep: stops hyperband's losers,
 * ends the sweep when its grid is exhausted, its run_cap or target reached, and otherwise pushes trials until
 * `parallel` are in flight. Trials are numbered 0, 1, 2, … and a number is pushed at most once (store/sweeps.ts),
 * and each number's parameters come from the number (grid index, per-trial seed), so a restart, or a new leader
 * after a replica died, goes on where the sweep stood without duplicating a trial.
 */
export class SweepController {
  private readonly sweeps: Sweeps;
  private readonly holder = randomUUID();
  private readonly tickMs: number;
  private readonly leaseMs: number;
  private timer: NodeJS.Timeout | undefined;
  private ticking: Promise<void> | undefined;
  /** The tick queued behind the one in progress (a wake that came while it ran), shared by every later ask. */
  private queued: Promise<void> | undefined;
  /** Sweeps the last tick drove: a run's end matters only while some sweep runs. */
  private activeCount = 0;
  private readonly stopListening = new AbortController();
  private listening: Promise<unknown> | undefined;
  private leader = false;
  private leaseCheckedAt = -Infinity;

  constructor(
    private readonly ctx: AppContext,
    private readonly logger: Logger,
    opts: SweepControllerOptions = {},
  ) {
    this.sweeps = new Sweeps(ctx.store.db);
    this.tickMs = opts.tickMs ?? 250;
    this.leaseMs = opts.leaseMs ?? 10_000;
  }

  start(): void {
    this.timer = setInterval(() => void this.tick(), this.tickMs);
    this.timer.unref();
    const signal = this.stopListening.signal;
    this.listening = Promise.all([
      // Any run's end (the bus cannot say which are trials without a read): only worth a look while sweeps run.
      this.listen('sweeps:ended', signal, () => this.leader && this.activeCount > 0),
      // A sweep created, paused, resumed or stopped, on this replica or another: always a look.
      this.listen('sweeps:changed', signal, () => true),
    ]);
    void this.tick();
  }

  /** Ticks each time `topic` is published (on any replica) and `worth()` says so, until `signal` aborts. */
  private async listen(topic: SweepsTopic, signal: AbortSignal, worth: () => boolean): Promise<void> {
    const sub = this.ctx.bus.subscribe([topic], signal);
    try {
      while (!signal.aborted) if ((await sub.wait(60_000)) && worth()) void this.tick();
    } finally {
      sub.close();
    }
  }

  /** Whether this process held the lease at its last tick. */
  get isLeader(): boolean {
    return this.leader;
  }

  /**
   * One look at every sweep (what the timer and the wakes run). A call while a tick is in progress gets one more
   * tick after it, shared by every call meanwhile: the tick in progress may have read a trial before it ended.
   */
  tick(): Promise<void> {
    if (this.ticking) {
      this.queued ??= this.ticking.then(() => {
        this.queued = undefined;
        return this.tick();
      });
      return this.queued;
    }
    this.ticking = this.tickOnce()
      .catch((err: unknown) => this.logger.error({ err }, 'sweep controller tick failed'))
      .finally(() => (this.ticking = undefined));
    return this.ticking;
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    this.stopListening.abort();
    await this.listening;
    await this.queued;
    await this.ticking;
    if (this.leader) await this.sweeps.releaseLease(LEASE, this.holder).catch(() => undefined);
    this.leader = false;
    this.leaseCheckedAt = -Infinity;
  }

  private async tickOnce(): Promise<void> {
    // The lease is written a quarter of its length apart, not every tick: a leader is sure of it for that long
    // (three quarters of the lease remain), and an idle server then writes a row every few seconds, not 4 a second.
    const now = this.ctx.now();
    if (now - this.leaseCheckedAt >= this.leaseMs / 4) {
      this.leader = await this.sweeps.acquireLease(LEASE, this.holder, now, this.leaseMs);
      this.leaseCheckedAt = now;
    }
    if (!this.leader) return;
    const active = await this.sweeps.active();
    this.activeCount = active.length;
    for (const sweep of active) {
      try {
        await this.drive(sweep);
      } catch (err) {
        // A sweep whose trials cannot be pushed any more (its archive or queue is gone, a secret was deleted) ends
        // failed with the reason; other errors (the database) are logged and retried at the next tick, and never
        // hold up the other sweeps.
        if (err instanceof LiftoffError && err.code !== 'INTERNAL') {
          await this.sweeps.end(sweep.id, 'failed', `a trial could not be pushed: ${err.message}`, this.ctx.now());
          this.logger.warn({ sweep: sweep.id, err }, 'sweep failed');
        } else this.logger.error({ sweep: sweep.id, err }, 'driving a sweep failed; retrying at the next tick');
      }
    }
  }

  private async drive(sweep: SweepRow): Promise<void> {
    const config = JSON.parse(sweep.config) as SweepConfig;
    let trials = await this.sweeps.trials(sweep.id);
    const metric = config.metric;
    const runIds = trials.flatMap((t) => (t.run_id ? [t.run_id] : []));

    if (metric && config.early_terminate) {
      const histories = await this.sweeps.histories(runIds, metric.name);
      const stops = hyperbandStops(
        trials.flatMap((t) =>
          t.run_id
            ? [{ id: String(t.number), running: t.state === 'running', history: histories.get(t.run_id) ?? [] }]
            : [],
        ),
        config.early_terminate,
        metric.goal,
      );
      for (const number of stops.map(Number)) await this.earlyTerminate(sweep, trials, number);
      if (stops.length) trials = await this.sweeps.trials(sweep.id);
    }

    const values = metric ? await this.sweeps.lastValues(runIds, metric.name) : new Map<string, number>();
    const valueOf = (t: TrialRow): number | undefined => (t.run_id ? values.get(t.run_id) : undefined);
    const now = this.ctx.now();

    const target = metric?.target;
    if (metric && target !== undefined) {
      const hit = trials.find((t) => {
        const v = valueOf(t);
        return v !== undefined && (metric.goal === 'maximize' ? v >= target : v <= target);
      });
      if (hit) return this.sweeps.end(sweep.id, 'finished', `target reached by trial ${hit.number}`, now);
    }

    let failedInARow = 0;
    for (const t of trials) failedInARow = wasted(t) ? failedInARow + 1 : isTerminal(t.state) ? 0 : failedInARow;
    if (failedInARow >= MAX_FAILURES_IN_A_ROW)
      return this.sweeps.end(sweep.id, 'failed', `the last ${failedInARow} trials failed or were lost`, now);

    const flying = trials.filter(inFlight).length;
    const counted = trials.filter((t) => !wasted(t)).length;
    const capped = config.run_cap !== undefined && counted >= config.run_cap;
    const exhausted = config.method === 'grid' && trials.length >= gridSize(config);
    if (capped || exhausted) {
      if (!flying)
        await this.sweeps.end(
          sweep.id,
          'finished',
          capped ? `run_cap ${config.run_cap} reached` : 'grid exhausted',
          now,
        );
      return;
    }
    if (sweep.state !== 'running') return;
    // Trials are pushed on the creator's behalf: not once its key is revoked.
    if (!(await this.ctx.store.keys.exists(sweep.author_key_id)))
      return this.sweeps.end(sweep.id, 'failed', `the key that created it (${sweep.author}) was revoked`, now);

    const free = Math.min(
      sweep.parallel - flying,
      config.run_cap !== undefined ? config.run_cap - counted : Infinity,
      config.method === 'grid' ? gridSize(config) - trials.length : Infinity,
    );
    const observed: ObservedTrial[] = trials.flatMap((t) => {
      const v = valueOf(t);
      return v === undefined ? [] : [{ config: t.params, value: v }];
    });
    let next = trials.length ? Math.max(...trials.map((t) => t.number)) + 1 : 0;
    for (let i = 0; i < free; i++, next++) {
      const params = this.propose(config, sweep, next, observed);
      if (!params) break;
      await this.push(sweep, config, next, params);
    }
  }

  private propose(
    config: SweepConfig,
    sweep: SweepRow,
    number: number,
    observed: readonly ObservedTrial[],
  ): Record<string, unknown> | undefined {
    const random = seededRandom(trialSeed(Number(sweep.seed), number));
    if (config.method === 'grid') return proposeGrid(config, number);
    if (config.method === 'random') return proposeRandom(config, random);
    return proposeBayes(config, observed, random);
  }

  /** Pushes trial `number` as an item of the sweep's queue, on behalf of the sweep's author. */
  private async push(sweep: SweepRow, config: SweepConfig, number: number, params: Record<string, unknown>) {
    const body = trialPush(JSON.parse(sweep.trial) as SweepTrialTemplate, config, sweep, number, params);
    const entity = { id: sweep.entity_id, name: sweep.entity_name };
    const queue = await this.ctx.store.queues.require(entity, sweep.queue_name);
    const prepared = await prepareItemAs(this.ctx, sweep.author, entity, queue, body).catch((e: unknown) => {
      // A job's schema refusing this trial's parameters ends the sweep (tickOnce) with a reason on one line.
      if (e instanceof RunConfigSchemaError && body.spec.job)
        throw new BadRequestError(
          `trial ${number}'s run config does not match the schema of job ${body.spec.job.name}:${body.spec.job.version}: ${e.problems.join('; ')}`,
        );
      throw e;
    });
    const itemId = await this.sweeps.pushTrial(
      sweep,
      { number, params, spec: prepared.spec, priority: prepared.priority, pushed: body },
      this.ctx.now(),
    );
    if (itemId) this.ctx.bus.publish(`queue:${sweep.queue_id}`);
  }

  /** Hyperband's verdict: the trial's run is cancelled (it ends `stopped`) and marked early-terminated. */
  private async earlyTerminate(sweep: SweepRow, trials: readonly TrialRow[], number: number): Promise<void> {
    const trial = trials.find((t) => t.number === number);
    if (!trial?.run_id) return;
    await this.sweeps.markEarlyTerminated(sweep.id, number, trial.run_id);
    try {
      const { notifyAgent } = await this.ctx.store.items.cancel(trial.item_id, this.ctx.now());
      if (notifyAgent) this.ctx.bus.publish(`agent:${notifyAgent}`);
    } catch (e) {
      // It ended meanwhile: nothing to stop.
      if (!(e instanceof LiftoffError && e.code === 'CONFLICT')) throw e;
    }
    this.ctx.bus.publish(`run:${trial.run_id}`);
    this.logger.info({ sweep: sweep.id, trial: number, run: trial.run_id }, 'hyperband stopped a trial');
  }
}
