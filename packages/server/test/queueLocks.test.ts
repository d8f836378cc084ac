import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type LaunchSpecInput, type LiftoffClient } from '@liftoff/core';
import { BACKENDS, pgAvailable } from '../../../test/helpers/postgres.js';
import { refusal, startBackendServer, type BackendServer } from './factory.js';

const spec = (resource_args: LaunchSpecInput['resource_args'] = {}): LaunchSpecInput => ({
  source: { type: 'git', url: 'https://git.example.com/team/train.git' },
  entry_point: ['python', 'train.py'],
  resource_args,
});

/** Issue 11, point 8: queue owners decide which resource args items may set. */
for (const backend of BACKENDS) {
  describe.skipIf(backend === 'postgres' && !pgAvailable)(`queue locks on ${backend}`, () => {
    let s: BackendServer;
    let c: LiftoffClient;
    beforeAll(async () => {
      s = await startBackendServer(backend, { pollTimeoutMs: 1_000 });
      c = s.client;
      await c.createQueue('default', {
        name: 'gpu',
        resource: 'local-container',
        resource_args: {
          'local-container': {
            user: '1000:1000',
            memory: '{{mem}}',
            labels: { owner: 'ml' },
            builder: { base_image: 'python:3.12-slim' },
          },
        },
        template_variables: { mem: { schema: { type: 'string', enum: ['4g', '8g'], default: '4g' } } },
        locked_keys: ['user', 'builder.base_image'],
      });
      await c.createQueue('default', {
        name: 'sealed',
        resource: 'local-process',
        resource_args: { 'local-process': { tier: '{{tier}}' } },
        template_variables: { tier: { schema: { type: 'string', enum: ['a', 'b'], default: 'a' } } },
        locked_keys: ['*'],
      });
    });
    afterAll(async () => s.close());

    it('shows the locked keys on the queue and lets the owner change them', async () => {
      expect((await c.getQueue('default', 'gpu')).locked_keys).toEqual(['user', 'builder.base_image']);
      await c.createQueue('default', { name: 'relock', resource: 'local-process' });
      expect((await c.updateQueue('default', 'relock', { locked_keys: ['x.y'] })).locked_keys).toEqual(['x.y']);
      const bad = await refusal(c.updateQueue('default', 'relock', { locked_keys: ['x..y'] }));
      expect(bad.code).toBe('BAD_REQUEST');
    });

    it.each([
      [
        { 'local-container': { user: '0:0' } },
        'Queue "gpu" locks resource_args.local-container.user: its owner sets it. Remove "user" from the item\'s resource args.',
      ],
      [
        { 'local-container': { builder: { base_image: 'evil/image:1' } } },
        'Queue "gpu" locks resource_args.local-container.builder.base_image: its owner sets it. Remove "builder.base_image" from the item\'s resource args.',
      ],
      // Replacing the parent object would drop the locked key just as well.
      [
        { 'local-container': { builder: 'none' } },
        'Queue "gpu" locks resource_args.local-container.builder.base_image: its owner sets it. Remove "builder.base_image" from the item\'s resource args.',
      ],
      [
        { 'local-container': { memory: '64g' } },
        'Queue "gpu" sets resource_args.local-container.memory from its template variable {{mem}}; pass --set-var mem=VALUE instead of setting it in the item\'s resource args.',
      ],
      [
        { kubernetes: { spec: {} } },
        'Queue "gpu" runs local-container jobs; the item\'s resource_args may only hold a "local-container" section, found "kubernetes". Remove it.',
      ],
    ])('refuses item args %j, naming the key', async (args, message) => {
      const before = (await c.listItems('default', 'gpu')).items.length;
      const e = await refusal(c.push('default', 'gpu', { spec: spec(args) }));
      expect(e.code).toBe('LOCKED_BY_QUEUE');
      expect(e.message).toBe(message);
      expect((await c.listItems('default', 'gpu')).items).toHaveLength(before);
    });

    it('takes unlocked keys, merging objects key by key under the queue owner’s values', async () => {
      const item = await c.push('default', 'gpu', {
        spec: spec({ 'local-container': { cpus: 2, labels: { team: 'vision' } } }),
        template_variables: { mem: '8g' },
      });
      expect(item.spec.resource_args).toEqual({
        'local-container': {
          user: '1000:1000',
          memory: '8g',
          cpus: 2,
          labels: { owner: 'ml', team: 'vision' },
          builder: { base_image: 'python:3.12-slim' },
        },
      });
    });

    it('with "*" takes template variables only', async () => {
      const e = await refusal(c.push('default', 'sealed', { spec: spec({ 'local-process': { other: 1 } }) }));
      expect(e.message).toBe(
        'Queue "sealed" locks all its resource args; its owner sets them. Remove --resource-args and set its template variables with --set-var tier=VALUE.',
      );
      const ok = await c.push('default', 'sealed', { spec: spec(), template_variables: { tier: 'b' } });
      expect(ok.spec.resource_args).toEqual({ 'local-process': { tier: 'b' } });
    });
  });
}
