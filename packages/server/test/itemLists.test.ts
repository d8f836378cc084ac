import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readCredentials } from '@liftoff/core';
import { BACKENDS, pgAvailable } from '../../../test/helpers/postgres.js';
import { startBackendServer, type BackendServer } from './factory.js';

const source = { type: 'git', url: 'https://git.example.com/x.git' } as const;

/** Issue 12, point 7: lists omit full specs (30 items of 7 MB once made a 220 MB answer); detail endpoints keep them. */
for (const backend of BACKENDS) {
  describe.skipIf(backend === 'postgres' && !pgAvailable)(`item lists on ${backend}`, () => {
    let b: BackendServer;
    let key: string;
    const ids: string[] = [];
    beforeAll(async () => {
      b = await startBackendServer(backend);
      key = readCredentials(join(b.home, '.config', 'liftoff', 'credentials'))?.api_key ?? '';
      for (let i = 0; i < 30; i++) {
        const spec = {
          source,
          entry_point: ['python3', 'train.py'],
          // 700 KB of arguments: under the push limit of 1 MiB, but 21 MB over 30 items.
          args: [`--blob=${String(i).repeat(700 * 1024)}`.slice(0, 700 * 1024)],
          run_config: { lr: i },
          name: `sweep-${i}`,
          project: 'big',
        };
        ids.push((await b.client.push('default', 'default', { spec })).id);
      }
    });
    afterAll(async () => b.close());

    it('lists 30 items with 700 KB specs in a small answer, with what list views show', async () => {
      const res = await fetch(`${b.server.url}/api/entities/default/queues/default/items?limit=1000`, {
        headers: { authorization: `Bearer ${key}` },
      });
      expect(res.status).toBe(200);
      const text = await res.text();
      expect(Buffer.byteLength(text)).toBeLessThan(64 * 1024);
      const { items } = JSON.parse(text) as { items: Array<Record<string, unknown>> };
      expect(items).toHaveLength(30);
      const newest = items[0] as Record<string, unknown>;
      expect(newest).not.toHaveProperty('spec');
      expect(newest).toMatchObject({
        id: ids[29],
        name: 'sweep-29',
        project: 'big',
        author: 'admin',
        source_type: 'git',
        state: 'pending',
        position: 30,
      });
      expect((newest.pending_reason as { code: string }).code).toBe('no_agent');
      // The typed client parses the same summaries.
      const listed = (await b.client.listItems('default', 'default', { state: 'pending' })).items;
      expect(listed.map((i) => i.name)).toEqual(ids.map((_, i) => `sweep-${i}`).reverse());
    });

    it('keeps the whole spec on the detail endpoint', async () => {
      const item = await b.client.getItem(ids[3] as string);
      expect(item.spec.args[0]).toHaveLength(700 * 1024);
      expect(item.spec.run_config).toEqual({ lr: 3 });
    });
  });
}
