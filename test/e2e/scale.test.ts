import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { packDirectory } from '@liftoff/cli';
import type { Run } from '@liftoff/core';
import { codeDir } from '../helpers/jobs.js';
import { cleanupAll, sleep, startAgent, startServer, type TestServer } from '../helpers/procs.js';

const AGENTS = 3;
const MAX_JOBS = 2;
const PER_QUEUE = 300;
const QUEUES = ['alpha', 'beta'];

/**
 * Acceptance 4 of the core issue: 3 agents × 2 queues × 300 items of a trivial job. Every item runs exactly once,
 * none is lost, and no agent ever has more than max_jobs runs at once (from the recorded start/end times).
 */
describe('many agents, many queues, many items', () => {
  let server: TestServer;

  beforeAll(async () => {
    server = await startServer();
    for (const q of QUEUES) await server.client.createQueue('default', { name: q, resource: 'local-process' });
  });
  afterAll(cleanupAll);

  it('runs every item exactly once within max_jobs', async () => {
    const c = server.client;
    const archive = await c.uploadArchive(await packDirectory(codeDir({ 'job.txt': 'trivial' })));
    const pushes: Array<Promise<{ id: string }>> = [];
    for (let i = 0; i < PER_QUEUE; i++) {
      for (const q of QUEUES) {
        pushes.push(
          c.push('default', q, {
            spec: { source: { type: 'code', archive_id: archive.id }, entry_point: ['true'], args: [] },
          }),
        );
      }
      if (pushes.length % 50 === 0) await Promise.all(pushes.slice(-50));
    }
    const itemIds = (await Promise.all(pushes)).map((p) => p.id);
    expect(new Set(itemIds).size).toBe(PER_QUEUE * QUEUES.length);

    for (let a = 0; a < AGENTS; a++)
      await startAgent(server, { queues: QUEUES, maxJobs: MAX_JOBS, name: `scale-${a}` });

    const deadline = Date.now() + 240_000;
    let runs: Run[] = [];
    for (;;) {
      const all = (await c.listRuns('default', { limit: 1000 })).runs;
      runs = all.filter((r) => QUEUES.includes(r.queue));
      const ended = runs.filter((r) => r.ended_at !== null).length;
      if (ended >= itemIds.length || Date.now() > deadline) break;
      await sleep(500);
    }

    // Exactly once: one run per item, all finished, none missing.
    expect(runs).toHaveLength(itemIds.length);
    expect(new Set(runs.map((r) => r.item_id)).size).toBe(itemIds.length);
    expect(new Set(runs.map((r) => r.item_id))).toEqual(new Set(itemIds));
    expect(runs.filter((r) => r.status !== 'finished')).toEqual([]);
    for (const q of QUEUES) expect((await c.getQueue('default', q)).pending).toBe(0);

    // Work was shared, and no agent exceeded max_jobs at any instant.
    const byAgent = new Map<string, Run[]>();
    for (const r of runs) byAgent.set(r.agent_id, [...(byAgent.get(r.agent_id) ?? []), r]);
    expect(byAgent.size).toBe(AGENTS);
    for (const [agent, list] of byAgent) {
      const events = list.flatMap((r) => [
        { t: r.created_at, d: +1 },
        { t: r.ended_at as number, d: -1 },
      ]);
      // At equal timestamps count ends first: a slot freed and reused in the same millisecond is not an overlap.
      events.sort((x, y) => x.t - y.t || x.d - y.d);
      let cur = 0;
      let peak = 0;
      for (const e of events) {
        cur += e.d;
        peak = Math.max(peak, cur);
      }
      expect(peak, `agent ${agent} concurrency`).toBeLessThanOrEqual(MAX_JOBS);
      expect(peak, `agent ${agent} used its slots`).toBeGreaterThanOrEqual(1);
    }
  }, 300_000);
});
