import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LiftoffClient } from '@liftoff/core';
import { BACKENDS, pgAvailable } from '../../../test/helpers/postgres.js';
import { startBackendServer, startedRun, type BackendServer } from './factory.js';

const CAP = 1000;

/** The stored log of a run, every page, with its note ranges. */
async function stored(c: LiftoffClient, runId: string) {
  let offset = 0;
  let data = '';
  const notes: Array<{ offset: number; size: number }> = [];
  for (;;) {
    const page = await c.readLogs(runId, offset);
    data += page.data;
    notes.push(...page.notes);
    if (page.next_offset === offset) return { data, notes, complete: page.complete };
    offset = page.next_offset;
  }
}
const droppedIn = (text: string) => Number(/bytes dropped since: +(\d+)\./.exec(text)?.[1]);

/** The per-run log cap, once per backend, with a server cap of 1000 bytes. */
for (const backend of BACKENDS) {
  describe.skipIf(backend === 'postgres' && !pgAvailable)(`per-run log cap on ${backend}`, () => {
    let b: BackendServer;
    let c: LiftoffClient;

    beforeAll(async () => {
      b = await startBackendServer(backend, { maxRunLogBytes: CAP });
      c = b.client;
    });
    afterAll(async () => {
      await b.close();
    });

    it('stores exactly the cap and one note, keeps answering with the agent-facing offset, and the run ends', async () => {
      const run = await startedRun(c, 'capped');
      expect((await c.appendLogs(run, 'capped', 0, 'a'.repeat(600))).size).toBe(600);
      expect((await c.appendLogs(run, 'capped', 600, 'b'.repeat(600))).size).toBe(1200);
      // Past the cap every upload is accepted and advances the offset: a retry, a grown retry, a stale offset.
      expect((await c.appendLogs(run, 'capped', 1200, 'c'.repeat(500))).size).toBe(1700);
      expect((await c.appendLogs(run, 'capped', 1200, 'c'.repeat(500))).size).toBe(1700);
      expect((await c.appendLogs(run, 'capped', 1200, 'c'.repeat(800))).size).toBe(2000);
      expect((await c.appendLogs(run, 'capped', 0, 'a'.repeat(10))).size).toBe(2000);
      expect((await c.appendLogs(run, 'capped', 2000, 'note\n', 'note')).size).toBe(2005);

      const log = await stored(c, run);
      expect(log.notes).toHaveLength(1);
      const [note] = log.notes as [{ offset: number; size: number }];
      expect(note.offset).toBe(CAP);
      const output = log.data.slice(0, CAP);
      expect(output).toBe('a'.repeat(600) + 'b'.repeat(400));
      const noteText = log.data.slice(CAP);
      expect(Buffer.byteLength(noteText)).toBe(note.size);
      expect(noteText).toContain('at most 1000 bytes');
      expect(noteText).toContain('--max-run-log-mib');
      // 200 of the crossing chunk, 800 more of the c's, 5 of the late note.
      expect(droppedIn(noteText)).toBe(1005);
      expect((await c.getRun(run)).log_size).toBe(CAP + note.size);

      await c.reportRun(run, { agent_id: 'capped', state: 'finished', exit_code: 0 });
      expect(await c.getRun(run)).toMatchObject({ status: 'finished', log_size: CAP + note.size });
      expect((await stored(c, run)).complete).toBe(true);
      const events: string[] = [];
      const end = await c.followLogs(run, (text) => events.push(text));
      expect(end.status).toBe('finished');
      expect(events.join('')).toBe(log.data);
    });

    it("applies a queue's lower cap but not a higher one", async () => {
      await c.createQueue('default', { name: 'small', resource: 'local-process', max_log_bytes: 100 });
      await c.createQueue('default', { name: 'big', resource: 'local-process', max_log_bytes: 5000 });
      for (const [queue, cap] of [
        ['small', 100],
        ['big', CAP],
      ] as const) {
        const agent = `q-${queue}`;
        await c.registerAgent({
          id: agent,
          name: agent,
          entity: 'default',
          hostname: 'h',
          queues: [queue],
          version: 't',
          max_jobs: 1,
        });
        const item = await c.push('default', queue, {
          spec: { source: { type: 'git', url: 'https://git.example.com/x.git' }, entry_point: ['true'] },
        });
        await c.poll(agent, { queues: [queue], max_items: 1, wait_ms: 0 });
        const run = (await c.ackItem(item.id, agent)).id;
        expect((await c.appendLogs(run, agent, 0, 'x'.repeat(3000))).size).toBe(3000);
        const log = await stored(c, run);
        expect(log.notes[0]?.offset).toBe(cap);
        expect(log.data.slice(0, cap)).toBe('x'.repeat(cap));
      }
    });

    it('never cuts a character in two at the cap', async () => {
      const run = await startedRun(c, 'utf8');
      expect((await c.appendLogs(run, 'utf8', 0, `${'a'.repeat(CAP - 1)}é!`)).size).toBe(CAP + 2);
      const log = await stored(c, run);
      expect(log.notes[0]?.offset).toBe(CAP - 1);
      expect(log.data.slice(0, CAP - 1)).toBe('a'.repeat(CAP - 1));
      expect(droppedIn(log.data.slice(CAP - 1))).toBe(3);
    });
  });
}
