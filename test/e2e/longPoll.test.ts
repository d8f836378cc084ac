import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { codeDir } from '../helpers/jobs.js';
import { cleanupAll, sleep, startAgent, startServer, type TestServer } from '../helpers/procs.js';

/**
 * Acceptance 3 of the core issue: an agent blocked in a long-poll receives a pushed item at once, not after a poll
 * interval. The server holds polls for 30 s; the bound is 2 s.
 */
describe('dispatch by long-poll', () => {
  let server: TestServer;
  let archiveId: string;

  beforeAll(async () => {
    server = await startServer({ flags: ['--poll-timeout-seconds', '30'] });
    archiveId = (await server.client.uploadArchive(await packed())).id;
  });
  afterAll(cleanupAll);

  async function packed() {
    const { packDirectory } = await import('@liftoff/cli');
    return packDirectory(codeDir({ 'main.mjs': 'console.log("ok")' }));
  }

  it('wakes a waiting poll the moment an item is pushed (wire level)', async () => {
    const c = server.client;
    await c.createQueue('default', { name: 'wire', resource: 'local-process' });
    await c.registerAgent({
      id: 'wire-agent',
      name: 'wire-agent',
      entity: 'default',
      hostname: 'h',
      queues: ['wire'],
      version: 't',
      max_jobs: 1,
    });
    const started = Date.now();
    const poll = c.poll('wire-agent', { queues: ['wire'], max_items: 1, wait_ms: 30_000 });
    await sleep(1_000);
    const pushedAt = Date.now();
    const item = await c.push('default', 'wire', {
      spec: { source: { type: 'code', archive_id: archiveId }, entry_point: ['node', 'main.mjs'] },
    });
    const res = await poll;
    const receivedAt = Date.now();
    expect(res.items.map((i) => i.item_id)).toEqual([item.id]);
    expect(receivedAt - pushedAt).toBeLessThan(2_000);
    expect(pushedAt - started).toBeGreaterThanOrEqual(1_000);
  });

  it('a real agent process idle in its long-poll starts a pushed item within 2 s', async () => {
    await startAgent(server, { queues: ['default'] });
    await sleep(3_000); // the agent is now parked in a 30 s poll
    const pushedAt = Date.now();
    const item = await server.client.push('default', 'default', {
      spec: { source: { type: 'code', archive_id: archiveId }, entry_point: ['node', 'main.mjs'] },
    });
    let claimedAt = 0;
    while (Date.now() - pushedAt < 30_000) {
      const cur = await server.client.getItem(item.id);
      if (cur.claimed_at) {
        claimedAt = cur.claimed_at;
        break;
      }
      await sleep(20);
    }
    expect(claimedAt).toBeGreaterThan(0);
    expect(claimedAt - pushedAt).toBeLessThan(2_000);
  });
});
