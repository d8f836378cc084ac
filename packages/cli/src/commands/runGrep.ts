import type { Command } from 'commander';
import type { Env } from '@liftoff/core/base';
import { connect } from '../connection.js';
import { printJson, stripTerminalControls } from '../output.js';
import { common, type Common } from './common.js';
import { runIdOf } from './runLookup.js';

/** Bytes read to print one matching line (a longer line is printed cut at that). */
const LINE_BYTES = 64 * 1024;

/**
 * `liftoff runs grep ID TEXT`: the server's literal search of a run's stored log (GET /logs/search, page by page),
 * printed as `LINE:TEXT` like `grep -n`. Each matching line is read once, however many matches it holds.
 */
export function runGrepCommand(runs: Command, env: Env): void {
  common(
    runs
      .command('grep <id> <text>')
      .description("search a run's stored log for TEXT (literal; ASCII letters fold unless --match-case)"),
  )
    .option('--match-case', 'compare letters as written')
    .option('--raw', 'print the lines as stored, terminal control sequences included')
    .action(async (id: string, text: string, flags: Common & { matchCase?: boolean; raw?: boolean }) => {
      const client = await connect(flags, env);
      const runId = await runIdOf(client, id);
      const matches: Array<{ offset: number; line: number }> = [];
      for (let cursor: number | null = 0; cursor !== null;) {
        const page = await client.searchLogs(runId, { q: text, caseSensitive: flags.matchCase ?? false, cursor });
        matches.push(...page.matches);
        cursor = page.next_cursor;
      }
      if (flags.json) return printJson({ matches });
      let last = 0;
      for (const m of matches) {
        if (m.line === last) continue;
        last = m.line;
        const page = await client.readLogWindow(runId, { line: m.line, limit: LINE_BYTES });
        const shown = page.data.split('\n')[0] ?? '';
        process.stdout.write(`${m.line}:${flags.raw ? shown : stripTerminalControls(shown)}\n`);
      }
      if (!matches.length) process.exitCode = 1;
    });
}
