import type { Command } from 'commander';
import type { LiftoffClient, MetricPoint } from '@liftoff/core';
import type { Env } from '@liftoff/core/base';
import { connect } from '../connection.js';
import { printJson, table, when } from '../output.js';
import { common, type Common } from './common.js';
import { runIdOf } from './runLookup.js';

/**
 * `liftoff runs metrics ID`: the metrics a run printed as `LIFTOFF_METRICS {...}` lines, one row per key with its
 * last, lowest and highest values; with `--key K` that key's whole stored series.
 */
export function runMetricsCommand(runs: Command, env: Env): void {
  common(runs.command('metrics <id>').description('show the metrics a run printed (LIFTOFF_METRICS lines)'))
    .option('-k, --key <name>', "print this key's series (step, value, time) instead of the summary")
    .action(async (id: string, flags: Common & { key?: string }) => {
      const client = await connect(flags, env);
      const runId = await runIdOf(client, id);
      if (flags.key !== undefined) {
        const points = await allPoints(client, runId, flags.key);
        if (flags.json) return printJson(points);
        if (!points.length) return console.log(`Run ${runId} has no metric "${flags.key}".`);
        console.log(
          table(
            ['STEP', 'VALUE', 'TIME'],
            points.map((p) => [p.step, p.value, when(p.time)]),
          ),
        );
        return;
      }
      const m = await client.runMetrics(runId, { limit: 1 });
      if (flags.json) return printJson({ keys: m.keys, lines: m.lines, refused: m.refused });
      if (!m.keys.length)
        return console.log(
          `Run ${runId} has printed no metrics. A job reports them with lines like: LIFTOFF_METRICS {"step": 1, "loss": 0.5}`,
        );
      console.log(
        table(
          ['KEY', 'LAST', 'AT STEP', 'MIN', 'MAX', 'VALUES', 'STORED'],
          m.keys.map((k) => [k.key, k.last.value, k.last.step, k.min, k.max, k.seen, k.stored]),
        ),
      );
      if (m.refused)
        console.log(
          `(${m.refused} metric lines or values refused: not a JSON object of numbers, too long, or past 200 keys)`,
        );
    });
}

async function allPoints(client: LiftoffClient, runId: string, key: string): Promise<MetricPoint[]> {
  const points: MetricPoint[] = [];
  let after = -1;
  for (;;) {
    const page = await client.runMetrics(runId, { key, afterSeq: after });
    if (!page.points.length) return points;
    points.push(...page.points);
    after = page.next_seq;
  }
}
