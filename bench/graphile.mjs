// graphile-worker on the same PostgreSQL, as the peer in the dispatch and throughput benchmarks.
import { Logger, makeWorkerUtils, run } from 'graphile-worker';
import { percentiles } from './lib.mjs';

const pgSchema = `graphile_bench_${process.pid}`;
/** graphile-worker logs every job at info level; the benchmark's output is its report. */
const logger = new Logger(() => () => {});

/** Job added → handler called, one job at a time, in milliseconds. */
export async function graphileLatency(connectionString, samples) {
  const utils = await makeWorkerUtils({ connectionString, schema: pgSchema, logger });
  await utils.migrate();
  const waiting = new Map();
  const runner = await run({
    connectionString,
    schema: pgSchema,
    concurrency: 1,
    noHandleSignals: true,
    logger,
    pollInterval: 2_000,
    taskList: { bench: async (payload) => waiting.get(payload.id)?.(Date.now()) },
  });
  const out = [];
  try {
    for (let i = 0; i < samples + 3; i++) {
      const id = `j${i}`;
      const called = new Promise((r) => waiting.set(id, r));
      const t0 = Date.now();
      await utils.addJob('bench', { id });
      const t1 = await called;
      if (i >= 3) out.push(t1 - t0);
      await new Promise((r) => setTimeout(r, 20 + Math.random() * 80));
    }
  } finally {
    await runner.stop();
    await utils.withPgClient((c) => c.query(`drop schema if exists ${pgSchema} cascade`));
    await utils.release();
  }
  return percentiles(out);
}

/**
 * Jobs per second: `adders` clients add `count` trivial jobs, `batch` per call (one at a time by addJob, as
 * Liftoff's pushers push one item per request; more through addJobs, as Liftoff's batched push), while one worker
 * with `concurrency` handles them, timed from the first add to the last job's completion being written. Like for
 * like with Liftoff's API loop, where pushes and claims also overlap.
 */
export async function graphileThroughput(connectionString, count, concurrency, adders = 4, batch = 1) {
  const utils = await makeWorkerUtils({ connectionString, schema: pgSchema, logger });
  await utils.migrate();
  let done = 0;
  let resolveAll;
  const all = new Promise((r) => (resolveAll = r));
  const runner = await run({
    connectionString,
    schema: pgSchema,
    concurrency,
    noHandleSignals: true,
    logger,
    pollInterval: 1_000,
    taskList: {
      noop: async () => {
        if (++done === count) resolveAll();
      },
    },
  });
  const t0 = Date.now();
  let added = 0;
  await Promise.all(
    Array.from({ length: adders }, async () => {
      while (added < count) {
        const n = Math.min(batch, count - added);
        added += n;
        if (batch === 1) await utils.addJob('noop', {});
        else await utils.addJobs(Array.from({ length: n }, () => ({ identifier: 'noop', payload: {} })));
      }
    }),
  );
  await all;
  // Completions are written in batches after the handlers return (a completed job's row is deleted): the clock
  // stops when no row is left, and the runner and its schema go only then, or an in-flight batch fails on a
  // dropped table and takes the benchmark down (runner.promise can settle before its last batch is written).
  await utils.withPgClient(async (c) => {
    for (let i = 0; i < 600; i++) {
      const { rows } = await c.query(`select count(*)::int as n from ${pgSchema}._private_jobs`);
      if (rows[0].n === 0) return;
      await new Promise((r) => setTimeout(r, 10));
    }
  });
  const seconds = (Date.now() - t0) / 1000;
  await runner.stop();
  await runner.promise.catch(() => undefined);
  await new Promise((r) => setTimeout(r, 200));
  await utils.withPgClient((c) => c.query(`drop schema if exists ${pgSchema} cascade`));
  await utils.release();
  return count / seconds;
}
