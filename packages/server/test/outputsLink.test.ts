import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LiftoffClient } from '@liftoff/core';
import { BACKENDS, pgAvailable } from '../../../test/helpers/postgres.js';
import { startBackendServer, type BackendServer } from './factory.js';

const spec = { source: { type: 'git' as const, url: 'https://git.example.com/x.git' }, entry_point: ['true'] };

/**
 * Issue 17: a run's outputs link (where a SageMaker or Vertex job writes its outputs), reported by the agent holding
 * the run through the single report and the batched sync, kept by later reports, and refused unless it is an s3:// or
 * gs:// URI of printable characters (the web UI shows it; nothing else may pass for one).
 */
for (const backend of BACKENDS) {
  describe.skipIf(backend === 'postgres' && !pgAvailable)(`a run's outputs link on ${backend}`, () => {
    let b: BackendServer;
    let agent: LiftoffClient;

    beforeAll(async () => {
      b = await startBackendServer(backend);
      const key = (await b.client.createKey({ name: 'agent', role: 'agent', entity: 'default' })).key;
      agent = new LiftoffClient({ baseUrl: b.server.url, apiKey: key });
      await agent.registerAgent({
        id: 'link-agent',
        name: 'link-agent',
        entity: 'default',
        hostname: 'h',
        queues: ['default'],
        version: 't',
        max_jobs: 10,
      });
    });
    afterAll(async () => {
      await b?.close();
    });

    const heldRun = async () => {
      const item = await b.client.push('default', 'default', { spec });
      await agent.poll('link-agent', { queues: ['default'], max_items: 1, wait_ms: 0 });
      return (await agent.ackItem(item.id, 'link-agent')).id;
    };

    it('is recorded by a report, kept by the next ones, and set through the sync too', async () => {
      const run = await heldRun();
      expect((await b.client.getRun(run)).outputs_link).toBeNull();
      const link = 's3://liftoff-models/train/liftoff-abc/output/';
      await agent.reportRun(run, { agent_id: 'link-agent', state: 'starting', outputs_link: link });
      await agent.reportRun(run, { agent_id: 'link-agent', state: 'running' });
      await agent.reportRun(run, { agent_id: 'link-agent', state: 'finished', exit_code: 0 });
      expect(await b.client.getRun(run)).toMatchObject({ status: 'finished', outputs_link: link });
      const listed = (await b.client.listRuns('default', { limit: 10 })).runs.find((r) => r.id === run);
      expect(listed?.outputs_link).toBe(link);

      const other = await heldRun();
      const res = await agent.sync('link-agent', {
        reports: [{ run_id: other, state: 'running', outputs_link: 'gs://liftoff-staging/liftoff/run1' }],
      });
      expect(res.reports[0]).not.toHaveProperty('error');
      expect((await b.client.getRun(other)).outputs_link).toBe('gs://liftoff-staging/liftoff/run1');
    });

    it('refuses anything but an s3:// or gs:// URI of printable characters', async () => {
      const run = await heldRun();
      for (const bad of [
        'javascript:alert(1)',
        'https://evil.example.com/x',
        's3://bucket/a b',
        's3://bucket/x\n[liftoff] fake note',
        'gs://',
        `s3://bucket/${'x'.repeat(2100)}`,
      ]) {
        await expect(
          agent.reportRun(run, { agent_id: 'link-agent', state: 'running', outputs_link: bad }),
          bad,
        ).rejects.toThrow(/^Invalid request: body\.outputs_link/);
      }
      expect((await b.client.getRun(run)).outputs_link).toBeNull();
    });
  });
}
