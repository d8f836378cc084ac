import type { Kysely } from 'kysely';
import type { MetricLine } from '../metricLines.js';
import type { Db } from './db.js';
import type { Database, RunMetricKeysTable } from './schema.js';

/** Most metric keys one run may have; values of further keys are counted as refused. */
export const MAX_METRIC_KEYS_PER_RUN = 200;
/**
 * Most points stored per key. Past it the series is thinned: every other stored point is deleted and from then on
 * every other value is stored (the stride doubles), so a long run keeps its whole curve at a coarser grain instead of
 * only its beginning. The key's last, lowest and highest values are kept exactly whatever the stride.
 */
export const MAX_POINTS_PER_KEY = 2_000;

/** One stored point. `seq` orders the points of a run across keys (the live stream's cursor). */
export interface MetricPoint {
  key: string;
  seq: number;
  step: number;
  value: number;
  time: number;
}

/** A key's summary: how many values were seen, how many are stored, and its last, lowest and highest values. */
export interface MetricKeySummary {
  key: string;
  seen: number;
  stored: number;
  stride: number;
  last: { step: number; value: number; time: number };
  min: number;
  max: number;
}

/** The run-level counters the ingest advances (kept on the run's row, which the log append already holds). */
export interface MetricCounters {
  lines: number;
  seq: number;
  refused: number;
}

/** A key's summary row as the ingest updates it (the row's columns, read as numbers), and whether to write it. */
type KeyState = Omit<RunMetricKeysTable, 'run_id' | 'key'> & { isNew: boolean; changed: boolean };

/** Rows per multi-row INSERT: 6 columns, far below SQLite's 32,766 bound variables. */
const INSERT_BATCH = 500;

/**
 * Run metrics parsed from job output (metricLines.ts): a bounded series per run and key, and a summary per key.
 * `ingest` runs inside the log append's transaction, after the append took the run's row lock, so every parsed line
 * is stored exactly once however often its chunk is retried.
 */
export class Metrics {
  constructor(private readonly db: Kysely<Database>) {}

  async ingest(trx: Db, runId: string, lines: MetricLine[], counters: MetricCounters, now: number) {
    const rows = await trx.selectFrom('run_metric_keys').selectAll().where('run_id', '=', runId).execute();
    const keys = new Map<string, KeyState>(
      rows.map((r) => [
        r.key,
        {
          seen: Number(r.seen),
          stored: Number(r.stored),
          stride: Number(r.stride),
          last_step: Number(r.last_step),
          last_value: r.last_value,
          last_time: Number(r.last_time),
          min_value: r.min_value,
          max_value: r.max_value,
          isNew: false,
          changed: false,
        },
      ]),
    );
    const points: Array<{ run_id: string; key: string; idx: number; seq: number; step: number; value: number }> = [];
    const thin = new Set<string>();
    for (const line of lines) {
      // Like W&B's _step: a line without "step" is the run's next step.
      const step = line.step ?? counters.lines;
      counters.lines++;
      for (const [key, value] of line.values) {
        let k = keys.get(key);
        if (!k) {
          if (keys.size >= MAX_METRIC_KEYS_PER_RUN) {
            counters.refused++;
            continue;
          }
          k = {
            seen: 0,
            stored: 0,
            stride: 1,
            last_step: step,
            last_value: value,
            last_time: now,
            min_value: value,
            max_value: value,
            isNew: true,
            changed: true,
          };
          keys.set(key, k);
        }
        const idx = k.seen++;
        Object.assign(k, { last_step: step, last_value: value, last_time: now, changed: true });
        k.min_value = Math.min(k.min_value, value);
        k.max_value = Math.max(k.max_value, value);
        if (idx % k.stride !== 0) continue;
        points.push({ run_id: runId, key, idx, seq: counters.seq++, step, value });
        if (++k.stored > MAX_POINTS_PER_KEY) {
          // About half the stored points survive the doubling; thin() counts them exactly at the end.
          k.stride *= 2;
          k.stored = Math.ceil(k.stored / 2);
          thin.add(key);
        }
      }
    }
    for (let i = 0; i < points.length; i += INSERT_BATCH)
      await trx
        .insertInto('run_metric_points')
        .values(points.slice(i, i + INSERT_BATCH).map((p) => ({ ...p, time: now })))
        .execute();
    for (const key of thin) {
      const k = keys.get(key) as KeyState;
      await this.thin(trx, runId, key, k);
    }
    for (const [key, k] of keys) {
      if (!k.changed) continue;
      const values = {
        seen: k.seen,
        stored: k.stored,
        stride: k.stride,
        last_step: k.last_step,
        last_value: k.last_value,
        last_time: k.last_time,
        min_value: k.min_value,
        max_value: k.max_value,
      };
      if (k.isNew)
        await trx
          .insertInto('run_metric_keys')
          .values({ run_id: runId, key, ...values })
          .execute();
      else
        await trx
          .updateTable('run_metric_keys')
          .set(values)
          .where('run_id', '=', runId)
          .where('key', '=', key)
          .execute();
    }
  }

  /** Keeps the points whose index is a multiple of the (new) stride; more than one doubling may be due at once. */
  private async thin(trx: Db, runId: string, key: string, k: KeyState): Promise<void> {
    for (;;) {
      const stride = k.stride;
      const all = await trx
        .selectFrom('run_metric_points')
        .select('idx')
        .where('run_id', '=', runId)
        .where('key', '=', key)
        .execute();
      const drop = all.map((r) => Number(r.idx)).filter((idx) => idx % stride !== 0);
      for (let i = 0; i < drop.length; i += INSERT_BATCH)
        await trx
          .deleteFrom('run_metric_points')
          .where('run_id', '=', runId)
          .where('key', '=', key)
          .where('idx', 'in', drop.slice(i, i + INSERT_BATCH))
          .execute();
      k.stored = all.length - drop.length;
      if (k.stored <= MAX_POINTS_PER_KEY) return;
      k.stride *= 2;
    }
  }

  /** Every key's summary, by key. */
  async keys(runId: string): Promise<MetricKeySummary[]> {
    const rows = await this.db
      .selectFrom('run_metric_keys')
      .selectAll()
      .where('run_id', '=', runId)
      .orderBy('key')
      .execute();
    return rows.map((r) => ({
      key: r.key,
      seen: Number(r.seen),
      stored: Number(r.stored),
      stride: Number(r.stride),
      last: { step: Number(r.last_step), value: r.last_value, time: Number(r.last_time) },
      min: r.min_value,
      max: r.max_value,
    }));
  }

  /** Metric lines parsed for the run, and lines or values refused. */
  async counters(runId: string): Promise<{ lines: number; refused: number }> {
    const r = await this.db
      .selectFrom('runs')
      .select(['metric_lines', 'metric_refused'])
      .where('id', '=', runId)
      .executeTakeFirst();
    return { lines: Number(r?.metric_lines ?? 0), refused: Number(r?.metric_refused ?? 0) };
  }

  /** Stored points after `afterSeq` in seq order (all keys, or one), at most `limit`. */
  async points(runId: string, afterSeq: number, limit: number, key?: string): Promise<MetricPoint[]> {
    let q = this.db
      .selectFrom('run_metric_points')
      .select(['key', 'seq', 'step', 'value', 'time'])
      .where('run_id', '=', runId)
      .where('seq', '>', afterSeq);
    if (key !== undefined) q = q.where('key', '=', key);
    const rows = await q.orderBy('seq').limit(limit).execute();
    return rows.map((r) => ({
      key: r.key,
      seq: Number(r.seq),
      step: Number(r.step),
      value: r.value,
      time: Number(r.time),
    }));
  }
}

/** With the runs they belong to (retention). */
export async function deleteRunMetrics(trx: Db, runIds: string[]): Promise<void> {
  await trx.deleteFrom('run_metric_points').where('run_id', 'in', runIds).execute();
  await trx.deleteFrom('run_metric_keys').where('run_id', 'in', runIds).execute();
}
