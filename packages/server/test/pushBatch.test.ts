import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LiftoffClient, PUSH_BATCH_MAX, type PushBody } from '@liftoff/core';
import { BACKENDS, pgAvailable } from '../../../test/helpers/postgres.js';
import { refusal, startBackendServer, type BackendServer } from './factory.js';

const item = (name: string, over: Partial<PushBody> = {}): PushBody => ({
  spec: { source: { type: 'git', url: 'https://git.example.com/x.git' }, entry_point: ['true'], name },
  ...over,
});

/** Issue 20: many items pushed in one request and one transaction, each checked as a single push is. */
for (const backend of BACKENDS) {
  describe.skipIf(backend === 'postgres' && !pgAvailable)(`batched push on ${backend}`, () => {
    let b: BackendServer;
    let admin: LiftoffClient;
    const client = (key: string) => new LiftoffClient({ baseUrl: b.server.url, apiKey: key });

    beforeAll(async () => {
      b = await startBackendServer(backend, { pushBodyBytes: 64 * 1024 });
      admin = b.client;
      await admin.createQueue('default', { name: 'batchq', resource: 'local-process' });
    });
    afterAll(async () => {
      await b?.close();
    });

    const names = async (queue: string) =>
      (await admin.listItems('default', queue, { limit: 1000 })).items.map((i) => i.name).reverse();

    it('pushes many items at once, in order, each with the author and queue defaults a single push gets', async () => {
      const { ids } = await admin.pushBatch('default', 'batchq', { items: ['a', 'b', 'c'].map((n) => item(n)) });
      expect(ids).toHaveLength(3);
      expect(await names('batchq')).toEqual(['a', 'b', 'c']);
      const first = await admin.getItem(ids[0] as string);
      expect(first).toMatchObject({ state: 'pending', queue: 'batchq', position: 1 });
      expect(first.spec).toMatchObject({ resource: 'local-process', author: expect.any(String) as string });
      // Claimed in the order they were sent.
      await admin.registerAgent({
        id: 'taker',
        name: 'taker',
        entity: 'default',
        hostname: 'h',
        queues: ['batchq'],
        version: 't',
        max_jobs: 3,
      });
      const got = await admin.poll('taker', { queues: ['batchq'], max_items: 3, wait_ms: 0 });
      expect(got.items.map((i) => i.item_id)).toEqual(ids);
    });

    it('refuses the whole batch when one item breaks a rule of single push, naming it, and stores nothing', async () => {
      await admin.createQueue('default', { name: 'strict', resource: 'local-process' });
      const e = await refusal(
        admin.pushBatch('default', 'strict', { items: [item('ok'), item('bad', { priority: 'critical' })] }),
      );
      expect(e.code).toBe('BAD_REQUEST');
      expect(e.message).toContain('items[1] of 2');
      expect(e.message).toContain('does not have prioritization enabled');
      const image = await refusal(
        admin.pushBatch('default', 'strict', {
          items: [item('fine'), { spec: { source: { type: 'image', image: 'alpine' }, entry_point: ['true'] } }],
        }),
      );
      expect(image.message).toContain('an image job needs a container queue');
      const archive = await refusal(
        admin.pushBatch('default', 'strict', {
          items: [{ spec: { source: { type: 'code', archive_id: 'no-such-archive' }, entry_point: ['true'] } }],
        }),
      );
      expect(archive.code).toBe('NOT_FOUND');
      expect(await names('strict')).toEqual([]);
    });

    it("keeps per-entity access: another entity's queue is not found, and agent keys do not push", async () => {
      await admin.createUser('mallory');
      await admin.createTeam('other');
      await admin.addMember('other', 'mallory', 'admin');
      const mallory = client((await admin.createKey({ name: 'm', role: 'admin', user: 'mallory' })).key);
      const e = await refusal(mallory.pushBatch('default', 'batchq', { items: [item('x')] }));
      expect(e.code).toBe('NOT_FOUND');
      const agent = client((await admin.createKey({ name: 'ag', role: 'agent', entity: 'default' })).key);
      expect((await refusal(agent.pushBatch('default', 'batchq', { items: [item('x')] }))).code).toBe('FORBIDDEN');
      expect(await names('batchq')).toEqual(['a', 'b', 'c']);
    });

    it('bounds a batch: at most PUSH_BATCH_MAX items, and each item within the single push body limit', async () => {
      const many = Array.from({ length: PUSH_BATCH_MAX + 1 }, (_, i) => item(`n${i}`));
      const e = await refusal(admin.pushBatch('default', 'batchq', { items: many }));
      expect(e.code).toBe('BAD_REQUEST');
      expect((await refusal(admin.pushBatch('default', 'batchq', { items: [] }))).code).toBe('BAD_REQUEST');
      const fat = item('fat', {
        spec: {
          source: { type: 'git', url: 'https://git.example.com/x.git' },
          entry_point: ['true'],
          args: Array.from({ length: 40 }, () => 'x'.repeat(2000)),
        },
      });
      const big = await refusal(admin.pushBatch('default', 'batchq', { items: [item('small'), fat] }));
      expect(big.code).toBe('SPEC_TOO_LARGE');
      expect(big.message).toContain('items[1] of 2');
      expect(await names('batchq')).toEqual(['a', 'b', 'c']);
    });
  });
}
