import type { Command } from 'commander';
import type { Item, RunDetail } from '@liftoff/core';
import { priorityName, splitLogPage, type Env } from '@liftoff/core/base';
import { connect } from '../connection.js';
import { duration, printJson, when, writeLog } from '../output.js';
import { common, type Common } from './common.js';
import { runGrepCommand } from './runGrep.js';
import { runListCommand } from './runList.js';
import { runMetricsCommand } from './runMetrics.js';
import { runOutputsCommand } from './runOutputs.js';
import { runRerunCommand } from './runRerun.js';
import { resolveRunOrItem, runIdOf } from './runLookup.js';

export function runsCommands(program: Command, env: Env): void {
  const runs = program.command('runs').description('inspect, follow and cancel runs');

  runListCommand(runs, env);

  common(runs.command('show <id>').description('show a run (a run id, or the id of the item it started from)')).action(
    async (id: string, flags: Common) => {
      const client = await connect(flags, env);
      const shown = await resolveRunOrItem(client, id);
      if (flags.json) return printJson(shown);
      if (shown.kind === 'item') return printItem(shown.item);
      printRun(shown.run);
      // A preempted or lost run's item may be back in its queue or have ended for good: say which.
      if (shown.run.status === 'preempted' || shown.run.status === 'lost')
        printRequeue(await client.getItem(shown.run.item_id), shown.run.id);
    },
  );

  common(runs.command('logs <id>').description("print a run's logs"))
    .option('-f, --follow', 'keep following until the run ends')
    .option('--raw', 'print the log as stored, terminal control sequences included')
    .action(async (id: string, flags: Common & { follow?: boolean; raw?: boolean }) => {
      const client = await connect(flags, env);
      const runId = await runIdOf(client, id);
      if (flags.follow) {
        await client.followLogs(runId, (text, kind) => writeLog(text, kind, flags.raw));
        return;
      }
      let offset = 0;
      for (;;) {
        const page = await client.readLogs(runId, offset);
        for (const piece of splitLogPage(page)) writeLog(piece.text, piece.kind, flags.raw);
        if (page.next_offset === offset) break;
        offset = page.next_offset;
      }
    });

  runGrepCommand(runs, env);
  runMetricsCommand(runs, env);
  runOutputsCommand(runs, env);
  runRerunCommand(runs, env);

  common(runs.command('cancel <id>').description('cancel a run or a pending item')).action(
    async (id: string, flags: Common) => {
      const client = await connect(flags, env);
      const shown = await resolveRunOrItem(client, id);
      if (shown.kind === 'item') {
        const item = await client.cancelItem(shown.item.id);
        console.log(`item ${item.id}: ${item.state}`);
      } else {
        const run = await client.cancelRun(shown.run.id);
        console.log(`run ${run.id}: ${run.status}`);
      }
    },
  );
}

function printItem(i: Item): void {
  console.log(
    `item ${i.id} on ${i.entity}/${i.queue}: ${i.state}${i.position ? ` (position ${i.position} in the queue)` : ''}`,
  );
  console.log(`  priority ${priorityName(i.priority)}, created ${when(i.created_at)}`);
  if (i.preemptions)
    console.log(
      `  preempted ${i.preemptions} time${i.preemptions > 1 ? 's' : ''}${i.run_id ? `, last run ${i.run_id}` : ''}`,
    );
  if (i.lost_runs) console.log(`  lost ${i.lost_runs} time${i.lost_runs > 1 ? 's' : ''} (its agent went silent)`);
  if (i.pending_reason) console.log(`  why pending: ${i.pending_reason.message}`);
}

function printRun(r: RunDetail): void {
  console.log(`run ${r.id} on ${r.entity}/${r.queue}: ${r.status}`);
  if (r.warning) console.log(`  warning: ${r.warning}`);
  console.log(`  item: ${r.item_id}  agent: ${r.agent_id}`);
  console.log(
    `  created ${when(r.created_at)}  started ${when(r.started_at)}  ended ${when(r.ended_at)}  (${duration(r.started_at, r.ended_at)})`,
  );
  if (r.exit_code !== null) console.log(`  exit code: ${r.exit_code}`);
  if (r.status === 'preempted') console.log(`  preempted: ${r.error_message ?? 'its infrastructure was taken away'}`);
  else if (r.status === 'lost') console.log(`  lost: ${r.error_message ?? 'its agent went silent'}`);
  else if (r.error_stage) console.log(`  error (${r.error_stage}): ${r.error_message ?? ''}`);
  const s = r.spec.source;
  const src =
    s.type === 'git'
      ? `git ${s.url}${s.ref ? `@${s.ref}` : ''}`
      : s.type === 'image'
        ? `image ${s.image}`
        : `code archive ${s.archive_id}`;
  console.log(`  source: ${src}`);
  if (r.spec.job) console.log(`  job: ${r.spec.job.name}:${r.spec.job.version}`);
  console.log(`  command: ${[...r.spec.entry_point, ...r.spec.args].join(' ')}`);
}

function printRequeue(item: Item, runId: string): void {
  if (item.run_id !== runId) console.log(`  requeued; its item has a newer run: ${item.run_id ?? '-'}`);
  else if (item.state === 'pending')
    console.log(
      `  requeued (attempt ${item.preemptions + item.lost_runs + 1} pending${item.not_before !== null ? `, eligible at ${when(item.not_before)}` : ''})`,
    );
  else console.log(`  not requeued: its item ended ${item.state}`);
}
