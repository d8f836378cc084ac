import { sql, type Transaction } from 'kysely';
import type { Db } from './db.js';
import type { Database } from './schema.js';

/**
 * States that hold a concurrency slot: from the claim (so two agents cannot both claim the last slot) until the
 * run ends.
 */
export const SLOT_STATES = ['claimed', 'starting', 'running', 'cancelling'] as const;

/**
 * Items holding a slot in a queue or in all of an entity's queues. An item whose agent was declared dead (KILLED)
 * holds none: its slot is freed the moment its heartbeat is lost, even though its run keeps its last state until
 * the agent identity comes back and reconciles it.
 */
export async function slotsInUse(db: Db, scope: { queueId: string } | { entityId: string }): Promise<number> {
  let q = db
    .selectFrom('items')
    .leftJoin('agents', 'agents.id', 'items.claimed_by')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('items.state', 'in', SLOT_STATES)
    .where((eb) => eb.or([eb('agents.status', 'is', null), eb('agents.status', '!=', 'KILLED')]));
  if ('queueId' in scope) q = q.where('items.queue_id', '=', scope.queueId);
  else
    q = q.where(
      'items.queue_id',
      'in',
      db.selectFrom('queues').select('queues.id').where('queues.entity_id', '=', scope.entityId),
    );
  const r = await q.executeTakeFirst();
  return Number(r?.n ?? 0);
}

/**
 * Serialises claims under a limit. PostgreSQL: row locks on the entity, then the queue (always in that order, so
 * two claimers never deadlock), held until the claim commits; replicas wait for each other here. SQLite: kysely
 * runs one transaction at a time on the single connection of the one server process, which serialises already.
 */
export async function lockForClaim(
  trx: Transaction<Database>,
  dialect: 'sqlite' | 'postgres',
  entityId: string | null,
  queueId: string | null,
): Promise<void> {
  if (dialect !== 'postgres') return;
  if (entityId) await sql`SELECT id FROM entities WHERE id = ${entityId} FOR UPDATE`.execute(trx);
  if (queueId) await sql`SELECT id FROM queues WHERE id = ${queueId} FOR UPDATE`.execute(trx);
}
