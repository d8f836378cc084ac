import type { Kysely } from 'kysely';
import type { RunKeys } from '@liftoff/core';
import { MAX_CONFIG_DEPTH } from './runColumns.js';
import type { Database } from './schema.js';

/** Runs whose keys are offered: the newest of the queue (or entity). A key only older runs have is still sortable. */
export const KEYS_FROM_RUNS = 200;
/** Most keys of each kind in one answer. */
export const MAX_KEYS = 200;
const SEGMENT = /^[A-Za-z0-9_-]{1,64}$/;

/** The dotted paths of a run config's leaves that a `config.` column can name (runColumns.ts's syntax). */
function configPaths(value: unknown, prefix: string[], out: Set<string>): void {
  if (out.size >= MAX_KEYS) return;
  if (value !== null && typeof value === 'object' && !Array.isArray(value) && prefix.length < MAX_CONFIG_DEPTH) {
    for (const [k, v] of Object.entries(value as Record<string, unknown>))
      if (SEGMENT.test(k)) configPaths(v, [...prefix, k], out);
    return;
  }
  if (prefix.length) out.add(prefix.join('.'));
}

/**
 * The config keys and metric keys of the newest runs, for the runs table's column picker: read from at most
 * KEYS_FROM_RUNS specs and their metric summaries, at most MAX_KEYS of each, sorted.
 */
export async function runKeys(db: Kysely<Database>, filter: { entityId: string; queueId?: string }): Promise<RunKeys> {
  let q = db
    .selectFrom('runs')
    .innerJoin('items', 'items.id', 'runs.item_id')
    .select(['runs.id', 'items.spec'])
    .where('runs.queue_id', 'in', (eb) =>
      eb.selectFrom('queues').select('queues.id').where('queues.entity_id', '=', filter.entityId),
    );
  if (filter.queueId) q = q.where('runs.queue_id', '=', filter.queueId);
  const rows = await q.orderBy('runs.created_at', 'desc').orderBy('runs.id', 'desc').limit(KEYS_FROM_RUNS).execute();
  const config = new Set<string>();
  for (const r of rows) {
    const spec = JSON.parse(r.spec) as { run_config?: unknown };
    configPaths(spec.run_config ?? {}, [], config);
  }
  const metrics = rows.length
    ? await db
        .selectFrom('run_metric_keys')
        .select('key')
        .distinct()
        .where(
          'run_id',
          'in',
          rows.map((r) => r.id),
        )
        .orderBy('key')
        .limit(MAX_KEYS)
        .execute()
    : [];
  return { config: [...config].sort().slice(0, MAX_KEYS), metrics: metrics.map((m) => m.key) };
}
