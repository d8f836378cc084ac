import type { Kysely, Selectable } from 'kysely';
import { v7 as uuidv7 } from 'uuid';
import {
  ConflictError,
  NotFoundError,
  type ItemState,
  type LaunchSpec,
  type PushBody,
  type SweepConfig,
  type SweepState,
  type SweepTrialTemplate,
} from '@liftoff/core';
import { json } from './db.js';
import type { EntityRef } from './entities.js';
import { pendingItemRow } from './items.js';
import type { Database } from './schema.js';
import type { SweepsDatabase, SweepsTable } from './sweepsSchema.js';

export type SweepRow = Selectable<SweepsTable> & { queue_name: string; entity_name: string };

/** A trial row with its item's state and run (a pruned item reads as `lost`, without a run). */
export interface TrialRow {
  number: number;
  item_id: string;
  run_id: string | null;
  state: ItemState;
  params: Record<string, unknown>;
  early_terminated: boolean;
  created_at: number;
  /** Its item is gone (pruned by retention): shown as lost, but not counted as a failure. */
  pruned: boolean;
}

export interface NewSweep {
  entity: EntityRef;
  queueId: string;
  name: string;
  config: SweepConfig;
  trial: SweepTrialTemplate;
  notes: string[];
  parallel: number;
  seed: number;
  author: string;
  authorKeyId: string;
}

/** What a new trial pushes: its item (spec and priority as prepareItem made them) and its parameters. */
export interface NewTrial {
  number: number;
  params: Record<string, unknown>;
  spec: LaunchSpec;
  priority: number;
  pushed: PushBody;
}

/** The states a user may move a sweep between, and from where. */
const TRANSITIONS: Record<'pause' | 'resume' | 'stop', { from: SweepState[]; to: SweepState }> = {
  pause: { from: ['running'], to: 'paused' },
  resume: { from: ['paused'], to: 'running' },
  stop: { from: ['running', 'paused'], to: 'stopped' },
};

/** Sweeps and their trials (docs/sweeps.md); the controller (sweeps/controller.ts) is their only writer of trials. */
export class Sweeps {
  private readonly db: Kysely<SweepsDatabase>;
  constructor(db: Kysely<Database>) {
    this.db = db as unknown as Kysely<SweepsDatabase>;
  }

  private query() {
    return this.db
      .selectFrom('sweeps')
      .innerJoin('queues', 'queues.id', 'sweeps.queue_id')
      .innerJoin('entities', 'entities.id', 'sweeps.entity_id')
      .selectAll('sweeps')
      .select(['queues.name as queue_name', 'entities.name as entity_name']);
  }

  async create(s: NewSweep, now: number): Promise<SweepRow> {
    const id = uuidv7();
    await this.db
      .insertInto('sweeps')
      .values({
        id,
        entity_id: s.entity.id,
        queue_id: s.queueId,
        name: s.name,
        state: 'running',
        config: json(s.config),
        trial: json(s.trial),
        notes: json(s.notes),
        parallel: s.parallel,
        seed: s.seed,
        author: s.author,
        author_key_id: s.authorKeyId,
        created_at: now,
        ended_at: null,
        reason: null,
      })
      .execute();
    return this.require(s.entity, id);
  }

  async list(entity: EntityRef): Promise<SweepRow[]> {
    return this.query().where('sweeps.entity_id', '=', entity.id).orderBy('sweeps.created_at', 'desc').execute();
  }

  /** A sweep of the entity; another entity's looks like an unknown one. */
  async require(entity: EntityRef, id: string): Promise<SweepRow> {
    const row = await this.query()
      .where('sweeps.id', '=', id)
      .where('sweeps.entity_id', '=', entity.id)
      .executeTakeFirst();
    if (!row) throw new NotFoundError(`Sweep "${id}" not found; "liftoff sweep list" shows the entity's sweeps.`);
    return row;
  }

  /** Sweeps the controller drives: running ones (new trials) and paused ones (their trials still get hyperband). */
  async active(): Promise<SweepRow[]> {
    return this.query().where('sweeps.state', 'in', ['running', 'paused']).orderBy('sweeps.created_at').execute();
  }

  /** A user's pause, resume or stop; refused from a state it does not apply to. */
  async transition(entity: EntityRef, id: string, action: keyof typeof TRANSITIONS, now: number): Promise<SweepRow> {
    const { from, to } = TRANSITIONS[action];
    const res = await this.db
      .updateTable('sweeps')
      .set({
        state: to,
        ...(to === 'stopped' ? { ended_at: now, reason: 'stopped by a user' } : {}),
        ...(to === 'paused' ? { reason: 'paused by a user' } : {}),
        ...(to === 'running' ? { reason: null } : {}),
      })
      .where('id', '=', id)
      .where('entity_id', '=', entity.id)
      .where('state', 'in', from)
      .executeTakeFirst();
    const row = await this.require(entity, id);
    if (Number(res.numUpdatedRows) === 0)
      throw new ConflictError(`Sweep "${id}" is ${row.state}; ${action} applies to a ${from.join(' or ')} sweep.`);
    return row;
  }

  /** The controller ends a sweep (only while it is still running or paused: a user's stop wins). */
  async end(id: string, state: 'finished' | 'failed', reason: string, now: number): Promise<void> {
    await this.db
      .updateTable('sweeps')
      .set({ state, reason, ended_at: now })
      .where('id', '=', id)
      .where('state', 'in', ['running', 'paused'])
      .execute();
  }

  async trials(sweepId: string): Promise<TrialRow[]> {
    const rows = await this.db
      .selectFrom('sweep_trials')
      .leftJoin('items', 'items.id', 'sweep_trials.item_id')
      .select([
        'sweep_trials.number',
        'sweep_trials.item_id',
        'sweep_trials.params',
        'sweep_trials.early_terminated',
        'sweep_trials.created_at',
        'items.state',
        'items.run_id',
      ])
      .where('sweep_trials.sweep_id', '=', sweepId)
      .orderBy('sweep_trials.number')
      .execute();
    return rows.map((r) => ({
      number: Number(r.number),
      item_id: r.item_id,
      run_id: r.run_id ?? null,
      state: (r.state ?? 'lost') as ItemState,
      params: JSON.parse(r.params) as Record<string, unknown>,
      early_terminated: Number(r.early_terminated) === 1,
      created_at: Number(r.created_at),
      pruned: r.state === null || r.state === undefined,
    }));
  }

  /**
   * Pushes a trial: its row and its item in one transaction. The row's key is (sweep, number), so a number pushed
   * before (by this replica before a restart, or by another) inserts nothing and pushes nothing: returns null, as
   * for a sweep no longer running.
   */
  async pushTrial(sweep: SweepRow, t: NewTrial, now: number): Promise<string | null> {
    return this.db.transaction().execute(async (trx) => {
      // Still running? The no-op write also takes the sweep's row lock on PostgreSQL, so a user's stop or pause
      // either waits for this push (and then sees the trial to cancel) or is seen by it.
      const live = await trx
        .updateTable('sweeps')
        .set({ state: 'running' })
        .where('id', '=', sweep.id)
        .where('state', '=', 'running')
        .executeTakeFirst();
      if (Number(live.numUpdatedRows) === 0) return null;
      const itemId = uuidv7();
      const res = await trx
        .insertInto('sweep_trials')
        .values({
          sweep_id: sweep.id,
          number: t.number,
          item_id: itemId,
          params: json(t.params),
          early_terminated: 0,
          created_at: now,
        })
        .onConflict((oc) => oc.columns(['sweep_id', 'number']).doNothing())
        .executeTakeFirst();
      if (Number(res.numInsertedOrUpdatedRows ?? 0) === 0) return null;
      await trx
        .insertInto('items')
        .values(pendingItemRow(itemId, sweep.queue_id, t, now))
        .execute();
      return itemId;
    });
  }

  /** Marks the trial and says so on its run (its warning, shown by `runs show` and the run page). */
  async markEarlyTerminated(sweepId: string, number: number, runId: string): Promise<void> {
    await this.db.transaction().execute(async (trx) => {
      await trx
        .updateTable('sweep_trials')
        .set({ early_terminated: 1 })
        .where('sweep_id', '=', sweepId)
        .where('number', '=', number)
        .execute();
      await trx
        .updateTable('runs')
        .set({ warning: `early-terminated: hyperband stopped this trial of sweep ${sweepId}` })
        .where('id', '=', runId)
        .execute();
    });
  }

  /** A metric's points of each run, in step order (what hyperband reads). */
  async histories(runIds: string[], key: string): Promise<Map<string, number[]>> {
    const out = new Map<string, number[]>(runIds.map((id) => [id, []]));
    if (!runIds.length) return out;
    const rows = await this.db
      .selectFrom('run_metric_points')
      .select(['run_id', 'value'])
      .where('run_id', 'in', runIds)
      .where('key', '=', key)
      .orderBy('run_id')
      .orderBy('step')
      .orderBy('seq')
      .execute();
    for (const r of rows) out.get(r.run_id)?.push(r.value);
    return out;
  }

  /** Each run's last reported value of a metric (W&B's summary value). */
  async lastValues(runIds: string[], key: string): Promise<Map<string, number>> {
    if (!runIds.length) return new Map();
    const rows = await this.db
      .selectFrom('run_metric_keys')
      .select(['run_id', 'last_value'])
      .where('run_id', 'in', runIds)
      .where('key', '=', key)
      .execute();
    return new Map(rows.map((r) => [r.run_id, r.last_value]));
  }

  /**
   * Takes or renews the controller lease: the row is this holder's when it already was or has expired. One
   * conditional UPDATE, so two replicas never both hold it (both databases serialise writes to one row).
   */
  async acquireLease(name: string, holder: string, now: number, ttlMs: number): Promise<boolean> {
    const res = await this.db
      .updateTable('controller_leases')
      .set({ holder, expires_at: now + ttlMs })
      .where('name', '=', name)
      .where((eb) => eb.or([eb('holder', '=', holder), eb('expires_at', '<', now)]))
      .executeTakeFirst();
    if (Number(res.numUpdatedRows) === 1) return true;
    // No row yet (the first controller ever): create it free, then take it as above; a racing creator is harmless.
    const row = await this.db
      .selectFrom('controller_leases')
      .select('name')
      .where('name', '=', name)
      .executeTakeFirst();
    if (row) return false;
    await this.db
      .insertInto('controller_leases')
      .values({ name, holder: '', expires_at: 0 })
      .onConflict((oc) => oc.column('name').doNothing())
      .execute();
    return this.acquireLease(name, holder, now, ttlMs);
  }

  /** Gives the lease up (a clean shutdown), so another replica takes over at once instead of after its expiry. */
  async releaseLease(name: string, holder: string): Promise<void> {
    await this.db
      .updateTable('controller_leases')
      .set({ expires_at: 0 })
      .where('name', '=', name)
      .where('holder', '=', holder)
      .execute();
  }
}
