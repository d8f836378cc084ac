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

/** Jobs per second with `concurrency` workers draining `count` trivial jobs. */
export async function graphileThroughput(connectionString, count, concurrency) {
  const utils = await makeWorkerUtils({ connectionString, schema: pgSchema, logger });
  await utils.migrate();
  for (let i = 0; i < count; i += 500) {
    await utils.addJobs(Array.from({ length: Math.min(500, count - i) }, () => ({ identifier: 'noop', payload: {} })));
  }
  let done = 0;
  let resolveAll;
  const all = new Promise((r) => (resolveAll = r));
  const t0 = Date.now();
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
  await all;
  const seconds = (Date.now() - t0) / 1000;
  await runner.stop();
  // Completions are written in batches after the handlers return: the schema goes only once the runner is done,
  // or an in-flight batch fails on a dropped table and takes the benchmark down.
  await runner.promise.catch(() => undefined);
  await utils.withPgClient((c) => c.query(`drop schema if exists ${pgSchema} cascade`));
  await utils.release();
  return count / seconds;
}
