import type { Item, LiftoffClient, RunDetail } from '@liftoff/core';
import { LiftoffError } from '@liftoff/core/base';

export type Resolved = { kind: 'run'; run: RunDetail } | { kind: 'item'; item: Item };

/**
 * A run id, or an item id: the item's run when it has started, else the item. An item requeued after a preemption
 * is pending again and still points at its last run; it is shown as the item, since that is where it stands now.
 */
export async function resolveRunOrItem(client: LiftoffClient, id: string): Promise<Resolved> {
  try {
    return { kind: 'run', run: await client.getRun(id) };
  } catch (e) {
    if (!(e instanceof LiftoffError) || e.code !== 'NOT_FOUND') throw e;
  }
  let item;
  try {
    item = await client.getItem(id);
  } catch (e) {
    if (e instanceof LiftoffError && e.code === 'NOT_FOUND') {
      throw new LiftoffError('NOT_FOUND', `No run or item "${id}". List runs with "liftoff runs list".`);
    }
    throw e;
  }
  if (item.run_id && item.state !== 'pending') return { kind: 'run', run: await client.getRun(item.run_id) };
  return { kind: 'item', item };
}

/** The run whose logs to read; a requeued item's last run still has them. */
export async function runIdOf(client: LiftoffClient, id: string): Promise<string> {
  const r = await resolveRunOrItem(client, id);
  if (r.kind === 'run') return r.run.id;
  if (r.item.run_id) return r.item.run_id;
  throw new LiftoffError('CONFLICT', `Item ${id} has not started yet (${r.item.state}); there are no logs.`);
}
