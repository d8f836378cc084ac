import { sql, type Kysely, type Selectable } from 'kysely';
import {
  AgentKeyMismatchError,
  ConflictError,
  NotFoundError,
  redactConfig,
  type Agent,
  type AgentStopMode,
} from '@liftoff/core';
import { json, type Db } from './db.js';
import type { AgentsTable, Database } from './schema.js';
import type { DialectName } from './database.js';
import { retryDeadlocks } from './deadlocks.js';
import { beyond, decodeKeyCursor, pageOf, type KeyPart } from './cursor.js';

export interface RegisterAgentInput {
  id: string;
  name: string;
  entityId: string;
  hostname: string;
  queues: string[];
  version: string;
  maxJobs: number;
  config: Record<string, unknown>;
  /** The registering key; the agent id is bound to it. */
  keyId: string;
}

/** `key_id`: the key the agent is bound to (null: registered before migration 0007 and not used since). */
export type AgentView = Agent & { entity_id: string; key_id: string | null };

/** What an unknown agent id gets; a foreign one gets exactly the same (routes/agents.ts). */
export const agentNotFound = (id: string): NotFoundError =>
  new NotFoundError(`Agent "${id}" is not registered; restart it.`);

/** The status_reason of an agent the reaper marked KILLED for silence; its next poll or heartbeat revives it. */
export const HEARTBEAT_LOST = 'heartbeat lost';

function agentQuery(db: Db) {
  return db
    .selectFrom('agents')
    .innerJoin('entities', 'entities.id', 'agents.entity_id')
    .selectAll('agents')
    .select('entities.name as entity_name');
}

function toAgent(r: Selectable<AgentsTable> & { entity_name: string }): Agent {
  return {
    id: r.id,
    name: r.name,
    entity: r.entity_name,
    hostname: r.hostname,
    queues: JSON.parse(r.queues) as string[],
    version: r.version,
    // Stored redacted already (routes/agents.ts, migration 0008); redacted again on the way out, whatever wrote it.
    config: redactConfig(JSON.parse(r.config) as Record<string, unknown>),
    max_jobs: Number(r.max_jobs),
    status: r.status as Agent['status'],
    status_reason: r.status_reason,
    started_at: Number(r.started_at),
    last_heartbeat_at: Number(r.last_heartbeat_at),
    current_jobs: Number(r.current_jobs),
    stop_requested: r.stop_mode as Agent['stop_requested'],
  };
}

async function getAgentIn(db: Db, id: string): Promise<AgentView> {
  const r = await agentQuery(db).where('agents.id', '=', id).executeTakeFirst();
  if (!r) throw agentNotFound(id);
  return { ...toAgent(r), entity_id: r.entity_id, key_id: r.key_id };
}

/**
 * Hands the items these agents claimed but never started back to their queues; returns the queues, whose pollers
 * should be woken. Used when an agent re-registers, stops, or is declared dead.
 */
export async function requeueClaimsOf(db: Db, agentIds: string[]): Promise<string[]> {
  if (!agentIds.length) return [];
  const rows = await db
    .updateTable('items')
    .set({ state: 'pending', claimed_by: null, claimed_at: null, lease_expires_at: null })
    .where('state', '=', 'claimed')
    .where('claimed_by', 'in', agentIds)
    .returning('queue_id')
    .execute();
  return [...new Set(rows.map((r) => r.queue_id))];
}

/** Launch agents: their registration, liveness and remote stop. Declaring silent ones dead is reaper.ts. */
export class Agents {
  /** When this process last wrote each agent's touch (see touch). */
  private readonly touchedAt = new Map<string, number>();

  /**
   * `touchSkipMs`: a touch within this long of the last one this process wrote for the agent is not written again.
   * An agent polls and syncs many times a second under load, and liveness is judged in tens of seconds; server.ts
   * keeps the window far below the silence that kills an agent, so a skipped touch can never let one be declared
   * dead.
   */
  constructor(
    private readonly db: Kysely<Database>,
    private readonly dialect: DialectName = 'sqlite',
    private readonly touchSkipMs = 0,
  ) {}

  /**
   * Registers (or re-registers, after a restart) an agent identity. Items the previous incarnation claimed but
   * never started go back to their queues; the queue ids are returned so pollers can be woken.
   */
  async register(a: RegisterAgentInput, now: number): Promise<{ agent: AgentView; requeued: string[] }> {
    return retryDeadlocks(this.dialect, () =>
      this.db.transaction().execute(async (trx) => {
        const existing = await trx
          .selectFrom('agents')
          .leftJoin('api_keys', 'api_keys.id', 'agents.key_id')
          .select(['agents.entity_id', 'agents.key_id', 'api_keys.id as live_key'])
          .where('agents.id', '=', a.id)
          .executeTakeFirst();
        // The id is taken by another key: refused the same way whether that agent is in the caller's entity or not,
        // so the answer does not tell which. An id in the same entity whose key was revoked (or that predates key
        // binding) may be taken over by another key of that entity.
        if (
          existing &&
          (existing.entity_id !== a.entityId || (existing.key_id !== a.keyId && existing.live_key !== null))
        )
          throw new AgentKeyMismatchError(a.id);
        const values = {
          key_id: a.keyId,
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
        const requeued = await requeueClaimsOf(trx, [a.id]);
        return { agent: await getAgentIn(trx, a.id), requeued };
      }),
    );
  }

  /**
   * An open poll is proof of life: it keeps an agent from being declared dead, and brings back one that was KILLED
   * only for missing heartbeats (a network cut that healed), as POLLING or RUNNING by the jobs it last reported. An
   * agent that stopped (KILLED with another reason) stays KILLED: a poll still in flight as it shut down says nothing.
   */
  async touch(agentId: string, now: number): Promise<void> {
    if (this.touchDue(agentId, now)) await touchIn(this.db, agentId, now);
  }

  /**
   * Whether a touch of `agentId` at `now` says anything new (none was written for it within `touchSkipMs`), noting
   * it as written when so: for callers that write the touch inside a transaction of their own (store/sync.ts).
   */
  touchDue(agentId: string, now: number): boolean {
    const last = this.touchedAt.get(agentId);
    if (last !== undefined && now >= last && now - last < this.touchSkipMs) return false;
    if (this.touchSkipMs > 0) {
      // Bounded: a server that saw many agents come and go forgets the oldest first.
      if (this.touchedAt.size >= 10_000) this.touchedAt.delete(this.touchedAt.keys().next().value as string);
      this.touchedAt.set(agentId, now);
    }
    return true;
  }

  async heartbeat(
    agentId: string,
    status: 'POLLING' | 'RUNNING',
    currentJobs: number,
    now: number,
  ): Promise<AgentView> {
    await heartbeatIn(this.db, agentId, status, currentJobs, now);
    return this.get(agentId);
  }

  /** Asks a live agent to stop; it learns it on its poll (woken at once) and winds down per `mode`. */
  async requestStop(agentId: string, mode: AgentStopMode): Promise<AgentView> {
    const agent = await this.get(agentId);
    if (agent.status === 'KILLED') {
      throw new ConflictError(
        `Agent "${agentId}" is not running (KILLED, ${agent.status_reason ?? 'no reason'}); there is nothing to stop.`,
      );
    }
    await this.db.updateTable('agents').set({ stop_mode: mode }).where('id', '=', agentId).execute();
    return this.get(agentId);
  }

  /** The agent shut down cleanly (on a signal, or as asked through the API); returns queues that got items back. */
  async stopped(agentId: string, now: number): Promise<string[]> {
    return retryDeadlocks(this.dialect, () =>
      this.db.transaction().execute(async (trx) => {
        const row = await trx.selectFrom('agents').select('stop_mode').where('id', '=', agentId).executeTakeFirst();
        const reason = row?.stop_mode ? `stopped by request (${row.stop_mode})` : 'stopped';
        await trx
          .updateTable('agents')
          .set({ status: 'KILLED', status_reason: reason, current_jobs: 0, last_heartbeat_at: now, stop_mode: null })
          .where('id', '=', agentId)
          .execute();
        return requeueClaimsOf(trx, [agentId]);
      }),
    );
  }

  async get(id: string): Promise<AgentView> {
    return getAgentIn(this.db, id);
  }

  /**
   * What a poll tells the agent besides items: a stop it was asked for, and its runs users asked to cancel. One
   * read for both (a poll made two before; the batched API loop polls about once per 30 items).
   */
  async pollState(
    agentId: string,
    heldRunIds: readonly string[] = [],
  ): Promise<{ stop: Agent['stop_requested']; cancel: string[]; lost: string[] }> {
    // Runs.lostAmong's answer in the same statement, for the poll's first look (a poll's run ids are few; past
    // SQLite's parameter bound they are left to lostAmong's slices).
    const held = heldRunIds.length <= 1000 ? heldRunIds : [];
    const rows = await pollStateQuery(this.db, agentId, held).execute();
    const first = rows[0];
    if (!first) throw agentNotFound(agentId);
    const of = (status: string) =>
      rows.flatMap((r) => (r.run_id !== null && r.run_status === status ? [r.run_id] : []));
    return { stop: first.stop_mode as Agent['stop_requested'], cancel: of('cancelling'), lost: of('lost') };
  }

  /**
   * Binds an agent registered before key binding (key_id null) to the first key that speaks for it; false when it
   * was bound meanwhile (another request won).
   */
  async bindUnbound(agentId: string, keyId: string): Promise<boolean> {
    const r = await this.db
      .updateTable('agents')
      .set({ key_id: keyId })
      .where('id', '=', agentId)
      .where('key_id', 'is', null)
      .executeTakeFirst();
    return Number(r.numUpdatedRows) > 0;
  }

  /** A page of the entity's agents by id: an agent's id is its stable identity (a restart keeps it), so is its place. */
  async list(
    entityId: string,
    opts: { limit: number; cursor?: string },
  ): Promise<{ agents: Agent[]; next_cursor: string | null }> {
    const parts: KeyPart[] = [{ expr: sql`agents.id`, desc: false, type: 'str' }];
    let q = agentQuery(this.db).where('agents.entity_id', '=', entityId);
    if (opts.cursor !== undefined) {
      const { key } = decodeKeyCursor(opts.cursor, AGENT_LIST, ['str']);
      // Forward only: the agents list has no way back but from the first page.
      q = q.where(beyond(this.dialect, parts, key, 'after'));
    }
    const rows = await q
      .orderBy('agents.id', 'asc')
      .limit(opts.limit + 1)
      .execute();
    const { page, next_cursor } = pageOf(rows, {
      limit: opts.limit,
      direction: 'after',
      started: false,
      list: AGENT_LIST,
      keyOf: (r) => [r.id],
    });
    return { agents: page.map(toAgent), next_cursor };
  }
}

const AGENT_LIST = 'agents:id';

/**
 * Agents.touch through `db` (inside the caller's transaction when it passes one), in one statement: a live agent's
 * heartbeat time moves on; one KILLED only for silence comes back as POLLING or RUNNING by the jobs it last
 * reported; one that stopped (KILLED for another reason) is left alone.
 */
export async function touchIn(db: Db, agentId: string, now: number): Promise<void> {
  const revived = sql<boolean>`${sql.ref('status')} = 'KILLED'`;
  await db
    .updateTable('agents')
    .set({
      status: sql<string>`CASE WHEN ${revived} THEN (CASE WHEN current_jobs > 0 THEN 'RUNNING' ELSE 'POLLING' END) ELSE status END`,
      status_reason: sql<string | null>`CASE WHEN ${revived} THEN NULL ELSE status_reason END`,
      last_heartbeat_at: now,
    })
    .where('id', '=', agentId)
    .where((eb) => eb.or([eb('status', '!=', 'KILLED'), eb('status_reason', '=', HEARTBEAT_LOST)]))
    .execute();
}

/** Agents.heartbeat's write through `db` (inside the caller's transaction when it passes one). */
export async function heartbeatIn(
  db: Db,
  agentId: string,
  status: 'POLLING' | 'RUNNING',
  currentJobs: number,
  now: number,
): Promise<void> {
  const r = await db
    .updateTable('agents')
    .set({ status, current_jobs: currentJobs, last_heartbeat_at: now, status_reason: null })
    .where('id', '=', agentId)
    // An agent that said it stopped stays KILLED: a heartbeat it sent just before (still in flight, or batched in
    // a sync that arrives after its `stopped`) must not show it POLLING again. One declared dead for silence
    // comes back with it, as with any other request (touchIn).
    .where((eb) => eb.or([eb('status', '!=', 'KILLED'), eb('status_reason', '=', HEARTBEAT_LOST)]))
    .executeTakeFirst();
  if (Number(r.numUpdatedRows)) return;
  const known = await db.selectFrom('agents').select('id').where('id', '=', agentId).executeTakeFirst();
  if (!known) throw new NotFoundError(`Agent "${agentId}" is not registered; restart it.`);
}

/**
 * pollState's one read: the agent's stop request, joined to its runs being cancelled and, of `held`, those declared
 * lost. Both states are named in one IN, so that the join is an index range over (agent_id, status) or (status,
 * agent_id) whatever the rest says: with the two states only inside an OR, SQLite walked every run the agent ever
 * had (runs_agent_created on agent_id alone), which made each poll cost grow with the agent's history (~0.8 ms per
 * poll after 6,000 runs on 2 cores, the largest statement of a busy agent's polls). Exported for its plan test.
 */
export function pollStateQuery(db: Kysely<Database>, agentId: string, held: readonly string[]) {
  return db
    .selectFrom('agents')
    .leftJoin('runs', (join) =>
      join
        .onRef('runs.agent_id', '=', 'agents.id')
        .on((eb) =>
          held.length
            ? eb.and([
                eb('runs.status', 'in', ['cancelling', 'lost']),
                eb.or([eb('runs.status', '=', 'cancelling'), eb('runs.id', 'in', held)]),
              ])
            : eb('runs.status', '=', 'cancelling'),
        ),
    )
    .select(['agents.stop_mode', 'runs.id as run_id', 'runs.status as run_status'])
    .where('agents.id', '=', agentId);
}
