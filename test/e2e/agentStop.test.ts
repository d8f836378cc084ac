import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { packDirectory } from '@liftoff/cli';
import type { LaunchSpecInput } from '@liftoff/core';
import { codeDir } from '../helpers/jobs.js';
import { cleanupAll, cli, sleep, startAgent, startServer, type TestServer } from '../helpers/procs.js';

/** Remote agent control: `liftoff agents stop ID [--finish|--stop-runs]` through the API, seen by real agents. */
describe('liftoff agents stop', () => {
  let server: TestServer;
  let archiveId: string;
  const job = (cmd: string[]): LaunchSpecInput => ({
    source: { type: 'code', archive_id: archiveId },
    entry_point: cmd,
  });
  const until = async (what: string, fn: () => Promise<boolean>, ms = 30_000) => {
    const end = Date.now() + ms;
    while (!(await fn())) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
      await sleep(100);
    }
  };

  beforeAll(async () => {
    server = await startServer();
    archiveId = (await server.client.uploadArchive(await packDirectory(codeDir({ 'x.txt': 'x' })))).id;
    await server.client.createQueue('default', { name: 'stopq', resource: 'local-process' });
  });
  afterAll(cleanupAll);

  it('--finish: takes no new work, lets the running job end, exits 0 and is KILLED', async () => {
    const c = server.client;
    const agent = await startAgent(server, { queues: ['stopq'], maxJobs: 2, name: 'finisher' });
    const running = await c.push('default', 'stopq', { spec: job(['sleep', '2']) });
    await until('the job to run', async () => (await c.getItem(running.id)).state === 'running');
    const r = await cli(['agents', 'stop', 'finisher', '--finish'], server.env);
    expect(r.code).toBe(0);
    expect(r.output).toContain('asked agent finisher (finisher) to stop (finish)');
    const later = await c.push('default', 'stopq', { spec: job(['true']) });
    expect((await agent.proc.exited).code).toBe(0);
    expect((await c.getItem(running.id)).state).toBe('finished');
    expect((await c.getItem(later.id)).state).toBe('pending'); // a draining agent took nothing new
    const a = (await c.listAgents('default')).agents.find((x) => x.id === 'finisher');
    expect(a).toMatchObject({ status: 'KILLED', status_reason: 'stopped by request (finish)', stop_requested: null });
    await c.cancelItem(later.id);
  });

  it('--stop-runs (the default): stops the running job at once and exits KILLED', async () => {
    const c = server.client;
    const agent = await startAgent(server, { queues: ['stopq'], maxJobs: 1, name: 'stopper' });
    const item = await c.push('default', 'stopq', { spec: job(['sleep', '60']) });
    await until('the job to run', async () => (await c.getItem(item.id)).state === 'running');
    const asked = Date.now();
    expect((await cli(['agents', 'stop', 'stopper'], server.env)).code).toBe(0);
    expect((await agent.proc.exited).code).toBe(0);
    expect(Date.now() - asked).toBeLessThan(15_000);
    expect((await c.getItem(item.id)).state).toBe('stopped');
    const a = (await c.listAgents('default')).agents.find((x) => x.id === 'stopper');
    expect(a).toMatchObject({ status: 'KILLED', status_reason: 'stopped by request (stop-runs)' });

    const again = await cli(['agents', 'stop', 'stopper'], server.env);
    expect(again.code).toBe(2);
    expect(again.output).toContain('Agent "stopper" is not running (KILLED, stopped by request (stop-runs))');
  });
});
