import { afterEach, describe, expect, it } from 'vitest';
import { packDirectory } from '@liftoff/cli';
import { splitLogPage } from '@liftoff/core';
import { codeDir } from '../helpers/jobs.js';
import { cleanupAll, cli, sleep, startAgent, startServer } from '../helpers/procs.js';

/** `liftoff server --max-run-log-mib` with a real agent: a job printing past the cap still ends normally. */
describe('the per-run log cap', () => {
  afterEach(cleanupAll);

  it('stores the cap and one truncation note of a chatty job, which still finishes', async () => {
    const cap = Math.round(0.01 * 1024 * 1024);
    const server = await startServer({ flags: ['--max-run-log-mib', '0.01'] });
    const c = server.client;
    await startAgent(server);
    const archive = await c.uploadArchive(
      await packDirectory(
        codeDir({
          // Every 10th line also reports a metric: most of them are printed past the cap.
          'main.mjs': `for (let i = 0; i < 400; i++) {
            console.log(String(i).padStart(99, '.'));
            if (i % 10 === 0) console.log('LIFTOFF_METRICS ' + JSON.stringify({ step: i, loss: 1 / (i + 1) }));
          }
          console.log('done');`,
        }),
      ),
    );
    const item = await c.push('default', 'default', {
      spec: { source: { type: 'code', archive_id: archive.id }, entry_point: ['node', 'main.mjs'] },
    });
    let done;
    for (let i = 0; i < 300 && done?.state !== 'finished'; i++) {
      await sleep(100);
      done = await c.getItem(item.id);
    }
    expect(done?.state).toBe('finished');
    const run = await c.getRun(done?.run_id as string);
    expect(run).toMatchObject({ status: 'finished', exit_code: 0 });

    const pieces = [];
    for (let offset = 0; ;) {
      const page = await c.readLogs(run.id, offset);
      pieces.push(...splitLogPage(page));
      if (page.next_offset === offset) break;
      offset = page.next_offset;
    }
    const truncation = pieces.filter((p) => p.kind === 'note' && p.text.includes('log truncated'));
    expect(truncation).toHaveLength(1);
    const before = pieces.slice(0, pieces.indexOf(truncation[0] as (typeof pieces)[number]));
    expect(before.reduce((n, p) => n + Buffer.byteLength(p.text), 0)).toBe(cap);
    // 40,100 bytes of output and the agent's closing note were sent; all but what fits under the cap was dropped.
    const dropped = Number(/bytes dropped since: +(\d+)\./.exec(truncation[0]?.text ?? '')?.[1]);
    expect(dropped).toBeGreaterThan(40_100 - cap);
    expect(run.log_size).toBe(cap + Buffer.byteLength(truncation[0]?.text ?? ''));
    expect(pieces.at(-1)).toBe(truncation[0]);

    // Metrics printed past the cap still count: all 40, through the API and the CLI.
    const metrics = await c.runMetrics(run.id);
    expect(metrics.points.map((p) => p.step)).toEqual(Array.from({ length: 40 }, (_, i) => i * 10));
    expect(metrics.keys).toEqual([
      expect.objectContaining({ key: 'loss', seen: 40, last: expect.objectContaining({ step: 390, value: 1 / 391 }) }),
    ]);
    const summary = await cli(['runs', 'metrics', run.id], server.env);
    expect(summary.code).toBe(0);
    expect(summary.output).toMatch(/^loss\s+0\.00255\d*\s+390\s+0\.00255\d*\s+1\s+40\s+40$/m);
    const series = await cli(['runs', 'metrics', item.id, '--key', 'loss', '--json'], server.env);
    expect((JSON.parse(series.output) as Array<{ step: number }>).map((p) => p.step)).toHaveLength(40);
  });
});
