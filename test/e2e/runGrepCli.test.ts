import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupAll, cli, startServer, type TestServer } from '../helpers/procs.js';

/** `liftoff runs grep`: the server's log search (GET /logs/search) from the CLI, printed like `grep -n`. */
describe('liftoff runs grep', () => {
  let server: TestServer;
  let runId: string;

  beforeAll(async () => {
    server = await startServer();
    const c = server.client;
    await c.registerAgent({
      id: 'grep-agent',
      name: 'grep-agent',
      entity: 'default',
      hostname: 'h',
      queues: ['default'],
      version: 't',
      max_jobs: 1,
    });
    const item = await c.push('default', 'default', {
      spec: { source: { type: 'git', url: 'https://example.com/r.git' }, entry_point: ['true'] },
    });
    await c.poll('grep-agent', { queues: ['default'], max_items: 1, wait_ms: 0 });
    runId = (await c.ackItem(item.id, 'grep-agent')).id;
    const lines = Array.from({ length: 3000 }, (_, i) => `step ${i + 1} loss ${(1 / (i + 1)).toFixed(4)}`);
    lines[1499] = 'Loss went NaN at step 1500 (nan nan)';
    lines[2999] = '\x1b[31mNaN\x1b[0m again\x1b]0;title\x07';
    await c.appendLogs(runId, 'grep-agent', 0, `${lines.join('\n')}\n`);
  });
  afterAll(cleanupAll);

  it('prints each matching line once with its number, colours kept, other controls stripped', async () => {
    const r = await cli(['runs', 'grep', runId, 'nan'], server.env);
    expect(r.code).toBe(0);
    expect(r.output).toBe('1500:Loss went NaN at step 1500 (nan nan)\n3000:\x1b[31mNaN\x1b[0m again\n');
    const exact = await cli(['runs', 'grep', runId, 'nan', '--match-case'], server.env);
    expect(exact.output).toBe('1500:Loss went NaN at step 1500 (nan nan)\n');
    const json = await cli(['runs', 'grep', runId, 'NaN', '--match-case', '--json'], server.env);
    expect((JSON.parse(json.output) as { matches: Array<{ line: number }> }).matches.map((m) => m.line)).toEqual([
      1500, 3000,
    ]);
  });

  it('exits 1 with no output when nothing matches, as grep does', async () => {
    const r = await cli(['runs', 'grep', runId, 'step 3001 '], server.env);
    expect(r).toEqual({ code: 1, output: '' });
  });
});
