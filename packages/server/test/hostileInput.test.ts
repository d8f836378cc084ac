import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type LiftoffClient } from '@liftoff/core';
import { BACKENDS, pgAvailable } from '../../../test/helpers/postgres.js';
import { refusal, startBackendServer, startedRun, type BackendServer } from './factory.js';

/** Issue 12 (point 2): bytes and numbers that used to be 500s on PostgreSQL are stored, or refused with a 400. */
for (const backend of BACKENDS) {
  describe.skipIf(backend === 'postgres' && !pgAvailable)(`hostile values on ${backend}`, () => {
    let s: BackendServer;
    let c: LiftoffClient;
    let runId: string;
    beforeAll(async () => {
      s = await startBackendServer(backend);
      c = s.client;
      runId = await startedRun(c, 'hostile');
    });
    afterAll(async () => s.close());

    it('stores a log with NUL and other control bytes exactly', async () => {
      const text = 'before\u0000after\u0001\u001b[31mred\u001b[0m\n';
      expect((await c.appendLogs(runId, 'hostile', 0, text)).size).toBe(Buffer.byteLength(text));
      expect((await c.readLogs(runId)).data).toBe(text);
    });

    it.each([
      ['in an id', () => c.getRun('a\u0000b')],
      ['in an entity name', () => c.listQueues('de\u0000fault')],
      ['in a query value', () => c.listRuns('default', { queue: 'q\u0000' })],
      [
        'in a JSON string of a spec',
        () =>
          c.push('default', 'default', {
            spec: { source: { type: 'git', url: 'https://x/y.git' }, entry_point: ['a\u0000'] },
          }),
      ],
      ['in a JSON key', () => c.updateEntity('default', { ['x\u0000']: 1 } as never)],
    ])('refuses a NUL character %s with a 400 naming it, on both databases', async (_what, call) => {
      const e = await refusal(call());
      expect(e.httpStatus).toBe(400);
      expect(e.message).toMatch(/NUL character/);
    });

    it.each([
      [
        'an exit code past 32 bits',
        () => c.reportRun(runId, { agent_id: 'hostile', state: 'running', exit_code: 2 ** 31 }),
      ],
      ['a log offset past 2^53', () => c.appendLogs(runId, 'hostile', 2 ** 60, 'x')],
      ['a queue limit past 32 bits', () => c.createQueue('default', { name: 'big', max_concurrency: 2 ** 40 })],
      [
        'a start timeout past 32 bits',
        () => c.createQueue('default', { name: 'slow', start_timeout_seconds: 2 ** 31 }),
      ],
      [
        'an agent max_jobs past its bound',
        () =>
          c.registerAgent({
            id: 'huge',
            name: 'h',
            entity: 'default',
            hostname: 'h',
            queues: ['default'],
            version: 't',
            max_jobs: 2 ** 31,
          }),
      ],
      ['a heartbeat job count past its bound', () => c.heartbeat('hostile', 'RUNNING', 2 ** 31)],
    ])('refuses %s with a 400, not a 500', async (_what, call) => {
      const e = await refusal(call());
      expect(e.code).toBe('BAD_REQUEST');
      expect(e.httpStatus).toBe(400);
    });
  });
}
