import type { Command } from 'commander';
import type { RunListRow } from '@liftoff/core';
import type { Env } from '@liftoff/core/base';
import { connect } from '../connection.js';
import { duration, printJson, table, when } from '../output.js';
import { common, type Common } from './common.js';

/** Long warnings (a scheduler's full explanation) would wrap every row of the list; `runs show` prints them whole. */
const WARNING_COLUMN = 60;
/** A config value that is an object or a long string would push the other columns off the screen. */
const VALUE_COLUMN = 40;
const clip = (s: string, n: number) => (s.length > n ? `${s.slice(0, n - 1)}…` : s);

/** A column's value as a cell: `-` when the run has none, JSON text for objects and arrays. */
function cell(v: unknown): string | null {
  if (v === null || v === undefined) return null;
  return clip(typeof v === 'string' ? v : JSON.stringify(v), VALUE_COLUMN);
}

interface ListFlags extends Common {
  queue?: string;
  limit: string;
  columns?: string;
  sort?: string;
  state?: string;
  search?: string;
  agent?: string;
  since?: string;
  until?: string;
  cursor?: string;
  all?: boolean;
}

/** `liftoff runs list`: one page of GET /api/entities/{entity}/runs (docs/runs.md), or every page with --all. */
export function runListCommand(runs: Command, env: Env): void {
  common(runs.command('list').description('list runs, newest first unless --sort says otherwise'))
    .option('-q, --queue <name>', 'only this queue')
    .option('--limit <n>', 'runs per page (1-1000)', '50')
    .option('--columns <list>', 'comma-separated columns: config.<key>, metric.<key>[.last|.min|.max]')
    .option('--sort <column>', 'a column, created_at, ended_at, duration or name; "-" in front: descending')
    .option('--state <states>', 'only runs in these states (comma-separated)')
    .option('--search <text>', 'a run id prefix or part of the run name')
    .option('--agent <id>', 'only the runs of this agent')
    .option('--since <time>', 'only runs created at or after this time (ISO 8601, or ms since the epoch)')
    .option('--until <time>', 'only runs created before this time (ISO 8601, or ms since the epoch)')
    .option('--cursor <cursor>', 'the page after this cursor (printed after a page that has more)')
    .option('--all', 'every page, not only the first')
    .action(async (flags: ListFlags) => {
      const client = await connect(flags, env);
      const list: RunListRow[] = [];
      let cursor = flags.cursor;
      let next: string | null = null;
      do {
        const page = await client.listRuns(flags.entity, {
          queue: flags.queue,
          limit: Number(flags.limit),
          columns: flags.columns,
          sort: flags.sort,
          state: flags.state,
          q: flags.search,
          agent: flags.agent,
          since: flags.since,
          until: flags.until,
          cursor,
        });
        list.push(...page.runs);
        next = page.next_cursor;
        cursor = next ?? undefined;
      } while (flags.all && next !== null);
      // The server keys `columns` by the names as asked, duplicates dropped: the same names head the table.
      const columns = flags.columns ? [...new Set(flags.columns.split(','))] : [];
      if (flags.json) printJson(list);
      else
        console.log(
          table(
            [
              'RUN',
              'QUEUE',
              'STATUS',
              'EXIT',
              'STAGE',
              'DURATION',
              'CREATED',
              // After the columns older scripts and tests read by position.
              'NAME',
              ...columns.map((c) => c.toUpperCase()),
              'WARNING',
            ],
            list.map((r) => [
              r.id,
              r.queue,
              r.status,
              r.exit_code,
              r.error_stage,
              duration(r.started_at, r.ended_at),
              when(r.created_at),
              r.name === null ? null : clip(r.name, VALUE_COLUMN),
              ...columns.map((c) => cell(r.columns[c])),
              r.warning === null ? null : `! ${clip(r.warning, WARNING_COLUMN)}`,
            ]),
          ),
        );
      if (next !== null) process.stderr.write(`more runs: add --cursor ${next} (or --all)\n`);
    });
}
