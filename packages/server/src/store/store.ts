import { sql, type Kysely, type Selectable, type Transaction } from 'kysely';
import { randomBytes } from 'node:crypto';
import { v7 as uuidv7 } from 'uuid';
import {
  ConflictError,
  ForbiddenError,
  NotFoundError,
  isTerminal,
  type Agent,
  type AgentStopMode,
  type Item,
  type PendingReason,
  type ItemState,
  type LaunchSpec,
  type PrioritizationMode,
  type Queue,
  type QueueSettings,
  type SecurityAllowance,
  type TemplateVariables,
  type UpdateQueueBody,
  type ReportRunBody,
  type Run,
} from '@liftoff/core';
import type { DialectName } from './database.js';
import { Accounts } from './accounts.js';
import { SLOT_STATES, lockForClaim, slotsInUse } from './limits.js';
import { backoffReason, explainPending, type DispatchSituation, type ServingAgent } from './pending.js';
import { preemptRun, releaseDueBackoffs, type PreemptionOutcome } from './preemption.js';
import { effectivePriority, effectivePriorityOf } from './ordering.js';
import type { AgentsTable, ApiKeysTable, Database, ItemsTable, QueuesTable, RunsTable } from './schema.js';

type Db = Kysely<Database> | Transaction<Database>;
type RunRow = Selectable<RunsTable>;

export interface EntityRef {
  id: string;
  name: string;
}
export type ApiKeyRow = Selectable<ApiKeysTable>;

export interface RegisterAgentInput {
  id: string;
  name: string;
  entityId: string;
  hostname: string;
  queues: string[];
  version: string;
  maxJobs: number;
  config: Record<string, unknown>;
}

export interface ReapResult {
  /** Queues that got items back (expired leases, dead agents' claims, ended backoffs) and should wake their pollers. */
  queueIds: string[];
  killedAgents: string[];
}

const newRunId = (): string =>
  randomBytes(6)
    .toString('base64url')
    .toLowerCase()
    .replace(/[^a-z0-9]/g, 'x');
const json = (v: unknown): string => JSON.stringify(v);
/** Advisory lock key of the reaper ("LIFT" in ASCII). */
const REAPER_LOCK = 0x4c494654;
const ACTIVE_RUN_STATES: ItemState[] = ['starting', 'running', 'cancelling'];

function queueSettingsOf(r: Pick<Selectable<QueuesTable>, 'start_timeout_seconds' | 'allow'>): QueueSettings {
  return {
    start_timeout_seconds: r.start_timeout_seconds === null ? null : Number(r.start_timeout_seconds),
    allow: JSON.parse(r.allow) as SecurityAllowance[],
  };
}

/** The queue switches stored as they are sent (the others are converted in createQueue and updateQueue). */
type PlainQueueSwitches = Pick<
  UpdateQueueBody,
  'start_timeout_seconds' | 'preemption_retries' | 'preemption_backoff_seconds' | 'allow'
>;
function plainSwitches(u: PlainQueueSwitches) {
  const set: Partial<{
    start_timeout_seconds: number | null;
    preemption_retries: number;
    preemption_backoff_seconds: number;
    allow: string;
  }> = {};
  if (u.start_timeout_seconds !== undefined) set.start_timeout_seconds = u.start_timeout_seconds;
  if (u.preemption_retries !== undefined) set.preemption_retries = u.preemption_retries;
  if (u.preemption_backoff_seconds !== undefined) set.preemption_backoff_seconds = u.preemption_backoff_seconds;
  if (u.allow !== undefined) set.allow = json(u.allow);
  return set;
}

/**
 * The repository: every read and every state transition of Liftoff's objects. Transitions that must be atomic
 * (claim, ack, cancel, lease expiry) run in one transaction or one conditional statement, so two agents or two
 * server replicas can never both win the same item.
 */
export class Store {
  readonly accounts: Accounts;
  constructor(
    readonly db: Kysely<Database>,
    readonly dialect: DialectName,
  ) {
    this.accounts = new Accounts(db);
  }

  async close(): Promise<void> {
    await this.db.destroy();
  }

  // ---- entities and keys ----------------------------------------------------------------------------------------

  async ensureEntity(name: string, now: number): Promise<EntityRef> {
    const found = await this.findEntity(name);
    if (found) return found;
    const row = { id: uuidv7(), name, created_at: now };
    await this.db
      .insertInto('entities')
      .values(row)
      .onConflict((oc) => oc.column('name').doNothing())
      .execute();
    return (await this.findEntity(name)) ?? row;
  }
  async createEntity(name: string, maxConcurrency: number | null, now: number): Promise<EntityRef> {
    if (await this.findEntity(name)) throw new ConflictError(`Entity "${name}" already exists.`);
    const row = { id: uuidv7(), name, created_at: now, max_concurrency: maxConcurrency };
    await this.db.insertInto('entities').values(row).execute();
    return { id: row.id, name };
  }
  async entityLimit(id: string): Promise<number | null> {
    const r = await this.db.selectFrom('entities').select('max_concurrency').where('id', '=', id).executeTakeFirst();
    return r?.max_concurrency == null ? null : Number(r.max_concurrency);
  }
  async setEntityLimit(id: string, maxConcurrency: number | null): Promise<void> {
    await this.db.updateTable('entities').set({ max_concurrency: maxConcurrency }).where('id', '=', id).execute();
  }
  async findEntity(name: string): Promise<EntityRef | undefined> {
    return this.db.selectFrom('entities').select(['id', 'name']).where('name', '=', name).executeTakeFirst();
  }
  async entityById(id: string): Promise<EntityRef> {
    return this.db.selectFrom('entities').select(['id', 'name']).where('id', '=', id).executeTakeFirstOrThrow();
  }
  async countKeys(): Promise<number> {
    const r = await this.db
      .selectFrom('api_keys')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .executeTakeFirst();
    return Number(r?.n ?? 0);
  }
  async createApiKey(k: {
    name: string;
    role: string;
    entityId: string | null;
    keyHash: string;
    now: number;
    userId?: string | null;
  }) {
    await this.db
      .insertInto('api_keys')
      .values({
        id: uuidv7(),
        name: k.name,
        role: k.role,
        entity_id: k.entityId,
        key_hash: k.keyHash,
        created_at: k.now,
        last_used_at: null,
        user_id: k.userId ?? null,
      })
      .execute();
  }
  /** Replaces the key called `name` (used for the embedded agent of "liftoff up", re-minted on every start). */
  async replaceApiKey(k: { name: string; role: string; entityId: string | null; keyHash: string; now: number }) {
    await this.db.deleteFrom('api_keys').where('name', '=', k.name).execute();
    await this.createApiKey(k);
  }
  async findKeyByHash(hash: string): Promise<ApiKeyRow | undefined> {
    return this.db.selectFrom('api_keys').selectAll().where('key_hash', '=', hash).executeTakeFirst();
  }

  // ---- queues -----------------------------------------------------------------------------------------------------

  async createQueue(
    entity: EntityRef,
    q: {
      name: string;
      resource: string;
      resource_args: unknown;
      prioritization_mode?: PrioritizationMode;
      aging_seconds?: number | null;
      max_concurrency?: number | null;
      template_variables?: TemplateVariables;
    } & PlainQueueSwitches,
    now: number,
  ) {
    if (await this.findQueue(entity.id, q.name)) {
      throw new ConflictError(`Queue "${q.name}" already exists in entity "${entity.name}".`);
    }
    const id = uuidv7();
    await this.db
      .insertInto('queues')
      .values({
        id,
        entity_id: entity.id,
        name: q.name,
        resource: q.resource,
        resource_args: json(q.resource_args),
        created_at: now,
        prioritization_mode: q.prioritization_mode ?? 'DISABLED',
        aging_ms: q.aging_seconds ? q.aging_seconds * 1000 : null,
        max_concurrency: q.max_concurrency ?? null,
        template_variables: json(q.template_variables ?? {}),
        ...plainSwitches(q),
      })
      .execute();
    return this.getQueue(entity, q.name);
  }
  async updateQueue(entity: EntityRef, name: string, u: UpdateQueueBody): Promise<Queue> {
    const q = await this.requireQueue(entity, name);
    const set: Partial<{ prioritization_mode: string; aging_ms: number | null; max_concurrency: number | null }> &
      ReturnType<typeof plainSwitches> = plainSwitches(u);
    if (u.prioritization_mode !== undefined) set.prioritization_mode = u.prioritization_mode;
    if (u.aging_seconds !== undefined) set.aging_ms = u.aging_seconds === null ? null : u.aging_seconds * 1000;
    if (u.max_concurrency !== undefined) set.max_concurrency = u.max_concurrency;
    if (Object.keys(set).length) await this.db.updateTable('queues').set(set).where('id', '=', q.id).execute();
    return this.getQueue(entity, name);
  }
  async findQueue(entityId: string, name: string) {
    return this.db
      .selectFrom('queues')
      .selectAll()
      .where('entity_id', '=', entityId)
      .where('name', '=', name)
      .executeTakeFirst();
  }
  async requireQueue(entity: EntityRef, name: string) {
    const q = await this.findQueue(entity.id, name);
    if (!q) {
      throw new NotFoundError(
        `Queue "${name}" not found in entity "${entity.name}". List queues with "liftoff queue list".`,
      );
    }
    return q;
  }
  async getQueue(entity: EntityRef, name: string): Promise<Queue> {
    const q = await this.requireQueue(entity, name);
    const counts = await this.queueCounts([q.id]);
    return this.toQueue(q, entity.name, counts.get(q.id));
  }
  async listQueues(entity: EntityRef): Promise<Queue[]> {
    const rows = await this.db
      .selectFrom('queues')
      .selectAll()
      .where('entity_id', '=', entity.id)
      .orderBy('name')
      .execute();
    const counts = await this.queueCounts(rows.map((r) => r.id));
    return rows.map((r) => this.toQueue(r, entity.name, counts.get(r.id)));
  }
  private async queueCounts(queueIds: string[]) {
    const out = new Map<string, { pending: number; running: number }>();
    if (!queueIds.length) return out;
    const rows = await this.db
      .selectFrom('items')
      .select(['queue_id', 'state', (eb) => eb.fn.countAll<number>().as('n')])
      .where('queue_id', 'in', queueIds)
      .where('state', 'in', ['pending', 'claimed', 'starting', 'running', 'cancelling'])
      .groupBy(['queue_id', 'state'])
      .execute();
    for (const r of rows) {
      const c = out.get(r.queue_id) ?? { pending: 0, running: 0 };
      if (r.state === 'pending') c.pending += Number(r.n);
      else c.running += Number(r.n);
      out.set(r.queue_id, c);
    }
    return out;
  }
  private toQueue(r: Selectable<QueuesTable>, entity: string, c?: { pending: number; running: number }): Queue {
    return {
      prioritization_mode: r.prioritization_mode as PrioritizationMode,
      aging_seconds: r.aging_ms === null ? null : Math.round(Number(r.aging_ms) / 1000),
      max_concurrency: r.max_concurrency === null ? null : Number(r.max_concurrency),
      template_variables: JSON.parse(r.template_variables) as TemplateVariables,
      ...queueSettingsOf(r),
      preemption_retries: Number(r.preemption_retries),
      preemption_backoff_seconds: Number(r.preemption_backoff_seconds),
      id: r.id,
      entity,
      name: r.name,
      resource: r.resource as Queue['resource'],
      resource_args: JSON.parse(r.resource_args) as Queue['resource_args'],
      created_at: Number(r.created_at),
      pending: c?.pending ?? 0,
      running: c?.running ?? 0,
    };
  }
  /** Deletes a queue with no items in flight; its pending items end as `stopped`. */
  async deleteQueue(entity: EntityRef, name: string, now: number): Promise<void> {
    const q = await this.requireQueue(entity, name);
    await this.db.transaction().execute(async (trx) => {
      const busy = await trx
        .selectFrom('items')
        .select('id')
        .where('queue_id', '=', q.id)
        .where('state', 'in', ['claimed', 'starting', 'running', 'cancelling'])
        .executeTakeFirst();
      if (busy) {
        throw new ConflictError(
          `Queue "${name}" has items in flight; cancel them or wait for them to end before deleting it.`,
        );
      }
      await trx
        .updateTable('items')
        .set({ state: 'stopped', ended_at: now, not_before: null })
        .where('queue_id', '=', q.id)
        .where('state', '=', 'pending')
        .execute();
      await trx.deleteFrom('queues').where('id', '=', q.id).execute();
    });
  }

  // ---- items ------------------------------------------------------------------------------------------------------

  async pushItem(queueId: string, spec: LaunchSpec, priority: number, now: number): Promise<string> {
    const id = uuidv7();
    await this.db
      .insertInto('items')
      .values({
        id,
        queue_id: queueId,
        priority,
        state: 'pending',
        spec: json(spec),
        created_at: now,
        claimed_by: null,
        claimed_at: null,
        lease_expires_at: null,
        ended_at: null,
        run_id: null,
      })
      .execute();
    return id;
  }

  private itemQuery(db: Db = this.db) {
    return db
      .selectFrom('items')
      .innerJoin('queues', 'queues.id', 'items.queue_id')
      .innerJoin('entities', 'entities.id', 'queues.entity_id')
      .selectAll('items')
      .select(['queues.name as queue_name', 'entities.name as entity_name', 'entities.id as entity_id']);
  }

  /**
   * One item. `explain` (the default) adds a pending item's position and reason, which costs a count over the
   * queue's backlog; the push path skips it so that pushing stays flat however deep the queue is.
   */
  async getItem(
    id: string,
    now = Date.now(),
    { explain = true }: { explain?: boolean } = {},
  ): Promise<Item & { entity_id: string; queue_id: string }> {
    const row = await this.itemQuery().where('items.id', '=', id).executeTakeFirst();
    if (!row) throw new NotFoundError(`Item "${id}" not found.`);
    if (row.state !== 'pending' || !explain)
      return { ...this.toItem(row, null), entity_id: row.entity_id, queue_id: row.queue_id };
    const queue = await this.queueRow(row.queue_id);
    const position = await this.positionOf(row, queue, now);
    const reason =
      row.not_before === null
        ? await this.pendingReason(row.entity_id, queue, position)
        : backoffReason(this.backoffOf(row, queue, await this.requeueTimes([row])));
    return { ...this.toItem(row, position, reason), entity_id: row.entity_id, queue_id: row.queue_id };
  }

  /** When requeued items were requeued: the end of the (preempted) run each still points at. */
  private async requeueTimes(rows: Array<Pick<Selectable<ItemsTable>, 'run_id'>>): Promise<Map<string, number>> {
    const ids = rows.flatMap((r) => (r.run_id ? [r.run_id] : []));
    if (!ids.length) return new Map();
    const runs = await this.db.selectFrom('runs').select(['id', 'ended_at']).where('id', 'in', ids).execute();
    return new Map(runs.flatMap((r) => (r.ended_at === null ? [] : [[r.id, Number(r.ended_at)] as const])));
  }
  private backoffOf(
    row: Pick<Selectable<ItemsTable>, 'run_id' | 'preemptions' | 'not_before'>,
    queue: Pick<Selectable<QueuesTable>, 'preemption_retries'>,
    requeuedAt: Map<string, number>,
  ) {
    return {
      preemptions: Number(row.preemptions),
      retries: Number(queue.preemption_retries),
      notBefore: Number(row.not_before),
      requeuedAt: row.run_id ? (requeuedAt.get(row.run_id) ?? null) : null,
    };
  }

  private async queueRow(id: string): Promise<Selectable<QueuesTable>> {
    return this.db.selectFrom('queues').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
  }

  /** 1-based place in the dispatch order (see ordering.ts), counting aging when the queue has it. */
  private async positionOf(
    row: { queue_id: string; priority: number; id: string; created_at: number },
    queue: { aging_ms: number | null },
    now: number,
  ): Promise<number> {
    const agingMs = queue.aging_ms === null ? null : Number(queue.aging_ms);
    const mine = effectivePriorityOf(
      { priority: Number(row.priority), created_at: Number(row.created_at) },
      now,
      agingMs,
    );
    const eff = effectivePriority(now, agingMs);
    const r = await this.db
      .selectFrom('items')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('queue_id', '=', row.queue_id)
      .where('state', '=', 'pending')
      .where((eb) => eb.or([eb(eff, '<', mine), eb.and([eb(eff, '=', mine), eb('id', '<', row.id)])]))
      .executeTakeFirst();
    return Number(r?.n ?? 0) + 1;
  }

  /**
   * Positions of every pending item of a queue, from one read of the backlog ranked here (by effective priority,
   * then id): one query however many items are listed, instead of a count per item.
   */
  private async pendingRanks(
    queueId: string,
    queue: { aging_ms: number | null },
    now: number,
  ): Promise<Map<string, number>> {
    const agingMs = queue.aging_ms === null ? null : Number(queue.aging_ms);
    const rows = await this.db
      .selectFrom('items')
      .select(['id', 'priority', 'created_at'])
      .where('queue_id', '=', queueId)
      .where('state', '=', 'pending')
      .execute();
    const ranked = rows
      .map((r) => ({
        id: r.id,
        eff: effectivePriorityOf({ priority: Number(r.priority), created_at: Number(r.created_at) }, now, agingMs),
      }))
      .sort((a, b) => a.eff - b.eff || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    return new Map(ranked.map((r, i) => [r.id, i + 1]));
  }

  async listItems(queueId: string, opts: { state?: ItemState; limit: number }, now = Date.now()): Promise<Item[]> {
    let q = this.itemQuery().where('items.queue_id', '=', queueId);
    if (opts.state) q = q.where('items.state', '=', opts.state);
    const rows = await q.orderBy('items.id', 'desc').limit(opts.limit).execute();
    const pending = rows.filter((r) => r.state === 'pending');
    const queue = await this.queueRow(queueId);
    const positions = pending.length ? await this.pendingRanks(queueId, queue, now) : new Map<string, number>();
    const situation = pending[0] ? await this.dispatchSituation(pending[0].entity_id, queue) : undefined;
    const inBackoff = pending.filter((r) => r.not_before !== null);
    const requeuedAt = await this.requeueTimes(inBackoff);
    return rows.map((r) => {
      const position = positions.get(r.id) ?? null;
      const reason =
        position === null || !situation
          ? null
          : r.not_before !== null
            ? backoffReason(this.backoffOf(r, queue, requeuedAt))
            : explainPending(queue.name, position, situation);
      return this.toItem(r, position, reason);
    });
  }

  private toItem(
    r: {
      id: string;
      queue_name: string;
      entity_name: string;
      priority: number;
      state: string;
      spec: string;
      created_at: number;
      claimed_by: string | null;
      claimed_at: number | null;
      ended_at: number | null;
      run_id: string | null;
      preemptions: number;
      not_before: number | null;
    },
    position: number | null,
    pendingReason: PendingReason | null = null,
  ): Item {
    return {
      id: r.id,
      queue: r.queue_name,
      entity: r.entity_name,
      priority: Number(r.priority),
      state: r.state as ItemState,
      spec: JSON.parse(r.spec) as LaunchSpec,
      created_at: Number(r.created_at),
      claimed_by: r.claimed_by,
      claimed_at: r.claimed_at === null ? null : Number(r.claimed_at),
      ended_at: r.ended_at === null ? null : Number(r.ended_at),
      run_id: r.run_id,
      position,
      pending_reason: pendingReason,
      preemptions: Number(r.preemptions),
      not_before: r.not_before === null ? null : Number(r.not_before),
    };
  }

  /** Live and dead agents of the entity whose queue list includes `queueName`. */
  private async agentsServing(entityId: string, queueName: string): Promise<ServingAgent[]> {
    const rows = await this.db
      .selectFrom('agents')
      .select(['queues', 'status', 'max_jobs', 'current_jobs', 'last_heartbeat_at'])
      .where('entity_id', '=', entityId)
      .execute();
    return rows
      .filter((r) => (JSON.parse(r.queues) as string[]).includes(queueName))
      .map((r) => ({
        alive: r.status !== 'KILLED',
        maxJobs: Number(r.max_jobs),
        currentJobs: Number(r.current_jobs),
        lastSeen: Number(r.last_heartbeat_at),
      }));
  }

  private async pendingReason(
    entityId: string,
    queue: Selectable<QueuesTable>,
    position: number,
  ): Promise<PendingReason> {
    return explainPending(queue.name, position, await this.dispatchSituation(entityId, queue));
  }

  /** What decides whether a queue's next item can start: the agents serving it and the limits over it. */
  private async dispatchSituation(entityId: string, queue: Selectable<QueuesTable>): Promise<DispatchSituation> {
    const entity = await this.db
      .selectFrom('entities')
      .select(['name', 'max_concurrency'])
      .where('id', '=', entityId)
      .executeTakeFirstOrThrow();
    const queueLimit = queue.max_concurrency === null ? null : Number(queue.max_concurrency);
    const entityLimit = entity.max_concurrency === null ? null : Number(entity.max_concurrency);
    return {
      agents: await this.agentsServing(entityId, queue.name),
      queueLimit:
        queueLimit === null ? null : { limit: queueLimit, inUse: await slotsInUse(this.db, { queueId: queue.id }) },
      entityLimit:
        entityLimit === null
          ? null
          : { entity: entity.name, limit: entityLimit, inUse: await slotsInUse(this.db, { entityId }) },
    };
  }

  /**
   * Claims up to `max` pending items for an agent, one per queue per round in the given order (round-robin), each
   * with a lease. The conditional UPDATE makes the claim atomic: an item already claimed is skipped, never shared.
   */
  async claim(agentId: string, queueIds: string[], max: number, leaseMs: number, now: number) {
    const claimed: Array<Item & { lease_expires_at: number; queue_settings: QueueSettings }> = [];
    const exhausted = new Set<string>();
    const queues = new Map<string, Selectable<QueuesTable> & { entity_limit: number | null }>();
    const rows = queueIds.length
      ? await this.db
          .selectFrom('queues')
          .innerJoin('entities', 'entities.id', 'queues.entity_id')
          .selectAll('queues')
          .select('entities.max_concurrency as entity_limit')
          .where('queues.id', 'in', queueIds)
          .execute()
      : [];
    for (const q of rows) queues.set(q.id, q);
    while (claimed.length < max && exhausted.size < queueIds.length) {
      for (const queueId of queueIds) {
        if (claimed.length >= max) break;
        if (exhausted.has(queueId)) continue;
        const queue = queues.get(queueId);
        const id = queue ? await this.claimOne(agentId, queue, leaseMs, now) : undefined;
        if (!id || !queue) {
          exhausted.add(queueId);
          continue;
        }
        const row = await this.itemQuery().where('items.id', '=', id).executeTakeFirstOrThrow();
        claimed.push({
          ...this.toItem(row, null),
          lease_expires_at: now + leaseMs,
          queue_settings: queueSettingsOf(queue),
        });
      }
    }
    return claimed;
  }

  private async claimOne(
    agentId: string,
    queue: Selectable<QueuesTable> & { entity_limit: number | null },
    leaseMs: number,
    now: number,
  ): Promise<string | undefined> {
    const queueLimit = queue.max_concurrency === null ? null : Number(queue.max_concurrency);
    const entityLimit = queue.entity_limit === null ? null : Number(queue.entity_limit);
    const take = async (db: Db) => {
      const next = db
        .selectFrom('items')
        .select('id')
        .where('queue_id', '=', queue.id)
        .where('state', '=', 'pending')
        // Requeued items waiting out a backoff; the reaper clears not_before when it has passed.
        .where('not_before', 'is', null)
        .orderBy(effectivePriority(now, queue.aging_ms === null ? null : Number(queue.aging_ms)))
        .orderBy('id')
        .limit(1);
      const row = await db
        .updateTable('items')
        .set({ state: 'claimed', claimed_by: agentId, claimed_at: now, lease_expires_at: now + leaseMs })
        .where('id', '=', this.dialect === 'postgres' ? next.forUpdate().skipLocked() : next)
        .where('state', '=', 'pending')
        .returning('id')
        .executeTakeFirst();
      return row?.id;
    };
    if (queueLimit === null && entityLimit === null) return take(this.db);
    // Under a limit, count and claim in one transaction that holds the limit's lock, so no two claimers (agents
    // or replicas) can both take the last slot.
    return this.db.transaction().execute(async (trx) => {
      await lockForClaim(trx, this.dialect, entityLimit === null ? null : queue.entity_id, queue.id);
      if (queueLimit !== null && (await slotsInUse(trx, { queueId: queue.id })) >= queueLimit) return undefined;
      if (entityLimit !== null && (await slotsInUse(trx, { entityId: queue.entity_id })) >= entityLimit)
        return undefined;
      return take(trx);
    });
  }

  /** Queues whose pollers should re-check after a slot was freed in `queueId` (its entity's when limited). */
  async queuesSharingLimits(queueId: string): Promise<string[]> {
    const q = await this.db
      .selectFrom('queues')
      .innerJoin('entities', 'entities.id', 'queues.entity_id')
      .select(['queues.entity_id', 'entities.max_concurrency as entity_limit'])
      .where('queues.id', '=', queueId)
      .executeTakeFirst();
    if (!q) return [];
    if (q.entity_limit === null) return [queueId];
    const rows = await this.db.selectFrom('queues').select('id').where('entity_id', '=', q.entity_id).execute();
    return rows.map((r) => r.id);
  }

  /** The agent confirms it is starting a claimed item: the run is created and the lease ends. */
  async ackItem(itemId: string, agentId: string, now: number): Promise<Run> {
    return this.db.transaction().execute(async (trx) => {
      const item = await trx.selectFrom('items').selectAll().where('id', '=', itemId).executeTakeFirst();
      if (!item) throw new NotFoundError(`Item "${itemId}" not found.`);
      // A retried ack (the first answer was lost) gets the same run back instead of an error.
      if (item.claimed_by === agentId && item.run_id && item.state === 'starting')
        return this.getRunIn(trx, item.run_id);
      if (item.state !== 'claimed' || item.claimed_by !== agentId) {
        throw new ConflictError(
          `Item "${itemId}" is no longer claimed by this agent (state ${item.state}); it was cancelled or its lease expired.`,
        );
      }
      const runId = newRunId();
      await trx
        .insertInto('runs')
        .values({
          id: runId,
          item_id: itemId,
          queue_id: item.queue_id,
          agent_id: agentId,
          status: 'starting',
          exit_code: null,
          error_stage: null,
          error_message: null,
          created_at: now,
          started_at: null,
          ended_at: null,
        })
        .execute();
      await trx
        .updateTable('items')
        .set({ state: 'starting', run_id: runId, lease_expires_at: null })
        .where('id', '=', itemId)
        .execute();
      return this.getRunIn(trx, runId);
    });
  }

  /** An agent hands back an item it claimed but never started (e.g. it is shutting down). */
  async releaseItem(itemId: string, agentId: string): Promise<string> {
    const r = await this.db
      .updateTable('items')
      .set({ state: 'pending', claimed_by: null, claimed_at: null, lease_expires_at: null })
      .where('id', '=', itemId)
      .where('state', '=', 'claimed')
      .where('claimed_by', '=', agentId)
      .returning('queue_id')
      .executeTakeFirst();
    if (!r) throw new ConflictError(`Item "${itemId}" is not claimed by this agent.`);
    return r.queue_id;
  }

  /**
   * Cancels an item: pending or claimed-but-unstarted items end `stopped` at once; started ones become
   * `cancelling` and the returned agent id must be told to stop the run.
   */
  async cancelItem(itemId: string, now: number): Promise<{ notifyAgent: string | null }> {
    return this.db.transaction().execute(async (trx) => {
      const item = await trx.selectFrom('items').selectAll().where('id', '=', itemId).executeTakeFirst();
      if (!item) throw new NotFoundError(`Item "${itemId}" not found.`);
      const state = item.state as ItemState;
      if (isTerminal(state)) throw new ConflictError(`Item "${itemId}" has already ended (${state}).`);
      if (state === 'pending' || state === 'claimed') {
        await trx
          .updateTable('items')
          .set({ state: 'stopped', ended_at: now, lease_expires_at: null, not_before: null })
          .where('id', '=', itemId)
          .execute();
        return { notifyAgent: null };
      }
      await trx.updateTable('items').set({ state: 'cancelling' }).where('id', '=', itemId).execute();
      if (item.run_id)
        await trx.updateTable('runs').set({ status: 'cancelling' }).where('id', '=', item.run_id).execute();
      return { notifyAgent: item.claimed_by };
    });
  }

  // ---- runs -------------------------------------------------------------------------------------------------------

  private runQuery(db: Db = this.db) {
    return db
      .selectFrom('runs')
      .innerJoin('queues', 'queues.id', 'runs.queue_id')
      .innerJoin('entities', 'entities.id', 'queues.entity_id')
      .selectAll('runs')
      .select(['queues.name as queue_name', 'entities.name as entity_name', 'entities.id as entity_id']);
  }
  private async getRunIn(db: Db, id: string): Promise<Run> {
    const r = await this.runQuery(db).where('runs.id', '=', id).executeTakeFirst();
    if (!r) throw new NotFoundError(`Run "${id}" not found. List runs with "liftoff runs list".`);
    return this.toRun(r);
  }
  async getRun(id: string): Promise<Run & { entity_id: string }> {
    const r = await this.runQuery().where('runs.id', '=', id).executeTakeFirst();
    if (!r) throw new NotFoundError(`Run "${id}" not found. List runs with "liftoff runs list".`);
    return { ...this.toRun(r), entity_id: r.entity_id };
  }
  async listRuns(entityId: string, opts: { queueId?: string; limit: number }): Promise<Run[]> {
    let q = this.runQuery().where('entities.id', '=', entityId);
    if (opts.queueId) q = q.where('runs.queue_id', '=', opts.queueId);
    const rows = await q.orderBy('runs.created_at', 'desc').orderBy('runs.id').limit(opts.limit).execute();
    return rows.map((r) => this.toRun(r));
  }
  private toRun(r: RunRow & { queue_name: string; entity_name: string }): Run {
    const n = (v: number | null) => (v === null ? null : Number(v));
    return {
      id: r.id,
      item_id: r.item_id,
      queue: r.queue_name,
      entity: r.entity_name,
      agent_id: r.agent_id,
      status: r.status as ItemState,
      exit_code: n(r.exit_code),
      error_stage: r.error_stage as Run['error_stage'],
      error_message: r.error_message,
      created_at: Number(r.created_at),
      started_at: n(r.started_at),
      ended_at: n(r.ended_at),
      log_size: Number(r.log_size),
      warning: r.warning,
    };
  }

  /**
   * Applies an agent's status report; terminal states are final and reports from other agents are refused. A
   * `preempted` report may requeue the item (see preemption.ts); `preemption` says what happened to it.
   */
  async reportRun(
    runId: string,
    body: ReportRunBody,
    now: number,
  ): Promise<{ run: Run; preemption: PreemptionOutcome | null }> {
    return this.db.transaction().execute(async (trx) => {
      const run = await trx.selectFrom('runs').selectAll().where('id', '=', runId).executeTakeFirst();
      if (!run) throw new NotFoundError(`Run "${runId}" not found.`);
      if (run.agent_id !== body.agent_id) throw new ForbiddenError(`Run "${runId}" is held by another agent.`);
      const current = run.status as ItemState;
      if (isTerminal(current)) {
        if (current === body.state) return { run: await this.getRunIn(trx, runId), preemption: null };
        throw new ConflictError(`Run "${runId}" has already ended (${current}).`);
      }
      const warning = body.warning === undefined ? run.warning : body.warning;
      if (body.state === 'preempted' && current !== 'cancelling') {
        const preemption = await preemptRun(trx, run, body, warning, now);
        return { run: await this.getRunIn(trx, runId), preemption };
      }
      // A cancel request wins over progress reports: the run stays `cancelling` until it ends, and a run preempted
      // while being cancelled ends `stopped` rather than being tried again.
      const reported: ItemState = body.state === 'preempted' ? 'stopped' : body.state;
      const next: ItemState = current === 'cancelling' && !isTerminal(reported) ? 'cancelling' : reported;
      const terminal = isTerminal(next);
      await trx
        .updateTable('runs')
        .set({
          status: next,
          started_at: body.state === 'running' && run.started_at === null ? now : run.started_at,
          ended_at: terminal ? now : null,
          exit_code: body.exit_code ?? run.exit_code,
          error_stage: body.error_stage ?? run.error_stage,
          error_message: body.error_message ?? run.error_message,
          warning,
        })
        .where('id', '=', runId)
        .execute();
      await trx
        .updateTable('items')
        .set({ state: next, ended_at: terminal ? now : null })
        .where('id', '=', run.item_id)
        .execute();
      return { run: await this.getRunIn(trx, runId), preemption: null };
    });
  }

  /** The switches of the run's queue, for an agent re-adopting the run (RunDetail). */
  async queueSettingsOfRun(runId: string): Promise<QueueSettings> {
    const q = await this.db
      .selectFrom('runs')
      .innerJoin('queues', 'queues.id', 'runs.queue_id')
      .select(['queues.start_timeout_seconds', 'queues.allow'])
      .where('runs.id', '=', runId)
      .executeTakeFirstOrThrow();
    return queueSettingsOf(q);
  }

  async runQueueId(runId: string): Promise<string> {
    const r = await this.db.selectFrom('runs').select('queue_id').where('id', '=', runId).executeTakeFirstOrThrow();
    return r.queue_id;
  }

  /** Runs held by the agent that users asked to cancel. */
  async cancelsFor(agentId: string): Promise<string[]> {
    const rows = await this.db
      .selectFrom('runs')
      .select('id')
      .where('agent_id', '=', agentId)
      .where('status', '=', 'cancelling')
      .execute();
    return rows.map((r) => r.id);
  }
  async activeRunsOf(agentId: string): Promise<Run[]> {
    const rows = await this.runQuery()
      .where('runs.agent_id', '=', agentId)
      .where('runs.status', 'in', ACTIVE_RUN_STATES)
      .execute();
    return rows.map((r) => this.toRun(r));
  }

  // ---- logs -------------------------------------------------------------------------------------------------------

  /**
   * Appends a chunk at byte `offset`. A retried chunk (already stored at that offset) is accepted without storing it
   * twice; a chunk that would leave a gap is refused so the agent resends from the returned size.
   */
  async appendLog(
    runId: string,
    agentId: string,
    offset: number,
    data: string,
  ): Promise<{ size: number; accepted: boolean }> {
    const size = Buffer.byteLength(data);
    return this.db.transaction().execute(async (trx) => {
      const run = await trx
        .selectFrom('runs')
        .select(['log_size', 'agent_id'])
        .where('id', '=', runId)
        .executeTakeFirst();
      if (!run) throw new NotFoundError(`Run "${runId}" not found.`);
      if (run.agent_id !== agentId) throw new ForbiddenError(`Run "${runId}" is held by another agent.`);
      const current = Number(run.log_size);
      if (offset + size <= current) return { size: current, accepted: true };
      if (offset !== current) {
        throw new ConflictError(
          `Log offset ${offset} does not match the stored size ${current}; resend from ${current}.`,
        );
      }
      await trx.insertInto('log_chunks').values({ run_id: runId, offset, size, data }).execute();
      await trx
        .updateTable('runs')
        .set({ log_size: current + size })
        .where('id', '=', runId)
        .execute();
      return { size: current + size, accepted: true };
    });
  }

  /** Reads stored log bytes from `offset`, up to about `maxBytes` (whole chunks). */
  async readLog(runId: string, offset: number, maxBytes = 1 << 20): Promise<{ data: string; next: number }> {
    const rows = await this.db
      .selectFrom('log_chunks')
      .select(['offset', 'size', 'data'])
      .where('run_id', '=', runId)
      .where(sql<boolean>`${sql.ref('offset')} + ${sql.ref('size')} > ${offset}`)
      .orderBy('offset')
      .limit(256)
      .execute();
    const parts: Buffer[] = [];
    let next = offset;
    let total = 0;
    for (const r of rows) {
      const start = Number(r.offset);
      let buf = Buffer.from(r.data);
      if (start < next) buf = buf.subarray(next - start);
      parts.push(buf);
      next = start + Number(r.size);
      total += buf.length;
      if (total >= maxBytes) break;
    }
    return { data: Buffer.concat(parts).toString('utf8'), next };
  }

  // ---- agents -----------------------------------------------------------------------------------------------------

  /**
   * Registers (or re-registers, after a restart) an agent identity. Items the previous incarnation claimed but
   * never started go back to their queues; the queue ids are returned so pollers can be woken.
   */
  async registerAgent(
    a: RegisterAgentInput,
    now: number,
  ): Promise<{ agent: Agent & { entity_id: string }; requeued: string[] }> {
    return this.db.transaction().execute(async (trx) => {
      const existing = await trx.selectFrom('agents').select(['entity_id']).where('id', '=', a.id).executeTakeFirst();
      if (existing && existing.entity_id !== a.entityId) {
        // 403, not 409: another entity's key must not learn more than "not yours".
        throw new ForbiddenError(`Agent id "${a.id}" belongs to another entity; choose another --name.`);
      }
      const values = {
        name: a.name,
        entity_id: a.entityId,
        hostname: a.hostname,
        queues: json(a.queues),
        version: a.version,
        config: json(a.config),
        max_jobs: a.maxJobs,
        status: 'POLLING',
        status_reason: null,
        started_at: now,
        last_heartbeat_at: now,
        current_jobs: 0,
        // A new incarnation starts clean: a stop asked of the previous one was carried out or is moot.
        stop_mode: null,
      };
      if (existing) await trx.updateTable('agents').set(values).where('id', '=', a.id).execute();
      else
        await trx
          .insertInto('agents')
          .values({ id: a.id, ...values })
          .execute();
      const requeued = await this.requeueClaimsOf(trx, [a.id]);
      return { agent: await this.getAgentIn(trx, a.id), requeued };
    });
  }

  private async requeueClaimsOf(trx: Db, agentIds: string[]): Promise<string[]> {
    if (!agentIds.length) return [];
    const rows = await trx
      .updateTable('items')
      .set({ state: 'pending', claimed_by: null, claimed_at: null, lease_expires_at: null })
      .where('state', '=', 'claimed')
      .where('claimed_by', 'in', agentIds)
      .returning('queue_id')
      .execute();
    return [...new Set(rows.map((r) => r.queue_id))];
  }

  /** An open poll is proof of life: it keeps an agent from being declared dead (but does not revive a KILLED one). */
  async touchAgent(agentId: string, now: number): Promise<void> {
    await this.db
      .updateTable('agents')
      .set({ last_heartbeat_at: now })
      .where('id', '=', agentId)
      .where('status', '!=', 'KILLED')
      .execute();
  }

  async heartbeat(
    agentId: string,
    status: 'POLLING' | 'RUNNING',
    currentJobs: number,
    now: number,
  ): Promise<Agent & { entity_id: string }> {
    const r = await this.db
      .updateTable('agents')
      .set({ status, current_jobs: currentJobs, last_heartbeat_at: now, status_reason: null })
      .where('id', '=', agentId)
      .executeTakeFirst();
    if (!Number(r.numUpdatedRows)) throw new NotFoundError(`Agent "${agentId}" is not registered; restart it.`);
    return this.getAgent(agentId);
  }

  /** Asks a live agent to stop; it learns it on its poll (woken at once) and winds down per `mode`. */
  async requestAgentStop(agentId: string, mode: AgentStopMode): Promise<Agent & { entity_id: string }> {
    const agent = await this.getAgent(agentId);
    if (agent.status === 'KILLED') {
      throw new ConflictError(
        `Agent "${agentId}" is not running (KILLED, ${agent.status_reason ?? 'no reason'}); there is nothing to stop.`,
      );
    }
    await this.db.updateTable('agents').set({ stop_mode: mode }).where('id', '=', agentId).execute();
    return this.getAgent(agentId);
  }

  /** The agent shut down cleanly (on a signal, or as asked through the API). */
  async agentStopped(agentId: string, now: number): Promise<string[]> {
    return this.db.transaction().execute(async (trx) => {
      const row = await trx.selectFrom('agents').select('stop_mode').where('id', '=', agentId).executeTakeFirst();
      const reason = row?.stop_mode ? `stopped by request (${row.stop_mode})` : 'stopped';
      await trx
        .updateTable('agents')
        .set({ status: 'KILLED', status_reason: reason, current_jobs: 0, last_heartbeat_at: now, stop_mode: null })
        .where('id', '=', agentId)
        .execute();
      return this.requeueClaimsOf(trx, [agentId]);
    });
  }

  async getAgent(id: string): Promise<Agent & { entity_id: string }> {
    return this.getAgentIn(this.db, id);
  }
  private agentQuery(db: Db = this.db) {
    return db
      .selectFrom('agents')
      .innerJoin('entities', 'entities.id', 'agents.entity_id')
      .selectAll('agents')
      .select('entities.name as entity_name');
  }
  private async getAgentIn(db: Db, id: string): Promise<Agent & { entity_id: string }> {
    const r = await this.agentQuery(db).where('agents.id', '=', id).executeTakeFirst();
    if (!r) throw new NotFoundError(`Agent "${id}" is not registered; restart it.`);
    return { ...this.toAgent(r), entity_id: r.entity_id };
  }
  async listAgents(entityId: string): Promise<Agent[]> {
    const rows = await this.agentQuery()
      .where('agents.entity_id', '=', entityId)
      .orderBy('agents.started_at', 'desc')
      .execute();
    return rows.map((r) => this.toAgent(r));
  }
  private toAgent(r: Selectable<AgentsTable> & { entity_name: string }): Agent {
    return {
      id: r.id,
      name: r.name,
      entity: r.entity_name,
      hostname: r.hostname,
      queues: JSON.parse(r.queues) as string[],
      version: r.version,
      config: JSON.parse(r.config) as Record<string, unknown>,
      max_jobs: Number(r.max_jobs),
      status: r.status as Agent['status'],
      status_reason: r.status_reason,
      started_at: Number(r.started_at),
      last_heartbeat_at: Number(r.last_heartbeat_at),
      current_jobs: Number(r.current_jobs),
      stop_requested: r.stop_mode as Agent['stop_requested'],
    };
  }

  // ---- reaper -----------------------------------------------------------------------------------------------------

  /**
   * Returns expired leases to their queues, makes requeued items whose backoff has passed claimable, and marks
   * agents silent since `deadAfter` as KILLED (heartbeat lost), handing their unstarted claims back. Every statement
   * is conditional, so replicas may run it concurrently.
   */
  async reap(now: number, silentSince: number): Promise<ReapResult> {
    return this.db.transaction().execute(async (trx) => {
      // Replicas reap on the same tick; one at a time avoids lock waits and deadlocks between their UPDATEs (the
      // statements would stay correct without it). The lock ends with the transaction.
      if (this.dialect === 'postgres') {
        const { rows } = await sql<{ ok: boolean }>`SELECT pg_try_advisory_xact_lock(${REAPER_LOCK}) AS ok`.execute(
          trx,
        );
        if (!rows[0]?.ok) return { queueIds: [], killedAgents: [] };
      }
      const expired = await trx
        .updateTable('items')
        .set({ state: 'pending', claimed_by: null, claimed_at: null, lease_expires_at: null })
        .where('state', '=', 'claimed')
        .where('lease_expires_at', '<', now)
        .returning('queue_id')
        .execute();
      const dead = await trx
        .updateTable('agents')
        .set({ status: 'KILLED', status_reason: 'heartbeat lost' })
        .where('status', '!=', 'KILLED')
        .where('last_heartbeat_at', '<', silentSince)
        .returning('id')
        .execute();
      const deadIds = dead.map((d) => d.id);
      const requeued = await this.requeueClaimsOf(trx, deadIds);
      const dueBackoffs = await releaseDueBackoffs(trx, now);
      // Runs of a dead agent stop holding concurrency slots (limits.ts), so queues they held may dispatch again.
      const freed = deadIds.length
        ? await trx
            .selectFrom('items')
            .select('queue_id')
            .distinct()
            .where('claimed_by', 'in', deadIds)
            .where('state', 'in', SLOT_STATES)
            .execute()
        : [];
      return {
        queueIds: [
          ...new Set([...expired.map((e) => e.queue_id), ...requeued, ...dueBackoffs, ...freed.map((f) => f.queue_id)]),
        ],
        killedAgents: dead.map((d) => d.id),
      };
    });
  }

  // ---- code archives ----------------------------------------------------------------------------------------------

  async upsertArchive(
    entityId: string,
    sha256: string,
    size: number,
    now: number,
  ): Promise<{ id: string; sha256: string; size: number }> {
    const found = await this.db
      .selectFrom('code_archives')
      .select(['id', 'sha256', 'size'])
      .where('entity_id', '=', entityId)
      .where('sha256', '=', sha256)
      .executeTakeFirst();
    if (found) return { ...found, size: Number(found.size) };
    const id = uuidv7();
    await this.db
      .insertInto('code_archives')
      .values({ id, entity_id: entityId, sha256, size, created_at: now })
      .onConflict((oc) => oc.columns(['entity_id', 'sha256']).doNothing())
      .execute();
    return this.upsertArchive(entityId, sha256, size, now);
  }
  /** PostgreSQL only: the archive's bytes, stored once per content hash (see migration 0002). */
  async putArchiveBlob(sha256: string, data: Buffer): Promise<void> {
    await this.db
      .insertInto('archive_blobs')
      .values({ sha256, data })
      .onConflict((oc) => oc.column('sha256').doNothing())
      .execute();
  }
  async hasArchiveBlob(sha256: string): Promise<boolean> {
    return !!(await this.db
      .selectFrom('archive_blobs')
      .select('sha256')
      .where('sha256', '=', sha256)
      .executeTakeFirst());
  }
  async getArchiveBlob(sha256: string): Promise<Buffer> {
    const r = await this.db.selectFrom('archive_blobs').select('data').where('sha256', '=', sha256).executeTakeFirst();
    if (!r) throw new NotFoundError(`Code archive ${sha256} has no stored content; upload it again.`);
    return r.data;
  }
  async getArchive(id: string) {
    const r = await this.db.selectFrom('code_archives').selectAll().where('id', '=', id).executeTakeFirst();
    if (!r) throw new NotFoundError(`Code archive "${id}" not found.`);
    return r;
  }
}
