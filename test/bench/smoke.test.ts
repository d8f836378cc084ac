import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { cleanupAll, ROOT, tempDir } from '../helpers/procs.js';

const run = promisify(execFile);

/** Runs every benchmark at a tiny size so that `npm run bench` does not rot. It checks the reports, not timings. */
describe('benchmarks (quick mode)', () => {
  afterAll(cleanupAll);

  it('produce RESULTS.md, results.json and the charts', async () => {
    const out = tempDir('liftoff-bench-out-');
    await run(process.execPath, [join(ROOT, 'bench', 'run.mjs'), '--quick'], {
      cwd: ROOT,
      env: { ...process.env, LIFTOFF_BENCH_OUT: out },
      timeout: 420_000,
    });
    const md = readFileSync(join(out, 'RESULTS.md'), 'utf8');
    for (const section of [
      'Dispatch latency',
      'Throughput',
      'Server cost of the agent protocol',
      'Queue depth',
      'Idle fleet cost',
      'Footprint',
      'Container path',
      'Archive check',
      'Slurm path',
      'Outputs upload',
      'Runs list: pages of 100k runs',
      'Metric parsing on log ingestion',
      'Web UI transfer sizes',
      'Log viewer: click response under a 5,000 lines/s live log',
      'Global runs page: filtered pages of 100k runs across queues',
      'Sweep dispatch: trial end → next trial running',
    ]) {
      expect(md).toContain(`## ${section}`);
    }
    // The trivial jobs of one agent holding every slot, pushed one and several per request (issue 20).
    expect(md).toMatch(
      /one agent × max_jobs \d+[^:|]*: jobs pushed one per request by 16 clients → finished \| \d+ jobs\/s/,
    );
    expect(md).toMatch(
      /one agent × max_jobs \d+[^:|]*: jobs pushed 10 per request by 16 clients → finished \| \d+ jobs\/s/,
    );
    const json = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as { benchmarks: Record<string, unknown> };
    expect(Object.keys(json.benchmarks).sort()).toEqual([
      'archive',
      'container',
      'depth',
      'dispatch',
      'footprint',
      'globalRuns',
      'idle',
      'logviewer',
      'metrics',
      'outputs',
      'runs',
      'serverCost',
      'slurm',
      'sweepDispatch',
      'throughput',
      'websize',
    ]);
    expect(existsSync(join(out, 'dispatch-latency.svg'))).toBe(true);
    expect(readFileSync(join(out, 'dispatch-latency.svg'), 'utf8')).toMatch(/^<svg /);
  }, 450_000);
});
