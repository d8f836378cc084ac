import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BUSYBOX, cleanupDockerAfter, dockerAvailable } from '../helpers/docker.js';
import { cleanupAll, cli, startAgent, startServer, type TestServer } from '../helpers/procs.js';

/**
 * Issue 11, point 8, as a pusher tries it: the queue owner's user and memory, and args meant for another runner,
 * cannot come from an item. Refused at push by the server, so nothing reaches the agent serving the queue.
 */
describe.skipIf(!dockerAvailable())('queue owners decide what items may set', () => {
  let server: TestServer;
  const agents: string[] = [];
  beforeAll(async () => {
    server = await startServer();
    await server.client.createQueue('default', {
      name: 'owned',
      resource: 'local-container',
      resource_args: { 'local-container': { user: '1000:1000', memory: '{{mem}}' } },
      template_variables: { mem: { schema: { type: 'string', enum: ['256m', '512m'], default: '256m' } } },
      locked_keys: ['user'],
    });
    agents.push((await startAgent(server, { queues: ['owned'] })).name);
    cleanupDockerAfter(() => agents);
  });
  afterAll(cleanupAll);

  const launch = (args: string[]) =>
    cli(['launch', '-q', 'owned', '--image', BUSYBOX, '-E', 'id -u', '--wait', ...args], server.env);

  it.each([
    [
      'run as root',
      ['--resource-args', '{"user": "0:0"}'],
      'Queue "owned" locks resource_args.local-container.user: its owner sets it. Remove "user" from the item\'s resource args.',
    ],
    [
      'take 64g of memory',
      ['--resource-args', '{"memory": "64g"}'],
      'Queue "owned" sets resource_args.local-container.memory from its template variable {{mem}}; pass --set-var mem=VALUE instead of setting it in the item\'s resource args.',
    ],
    [
      'store args for another runner',
      ['--resource-args', '{"kubernetes": {"spec": {"template": {"spec": {"hostNetwork": true}}}}}'],
      'Queue "owned" runs local-container jobs; the item\'s resource_args may only hold a "local-container" section, found "kubernetes". Remove it.',
    ],
  ])('a pusher cannot %s', async (_what, args, message) => {
    const r = await launch(args);
    expect(r.code).toBe(2);
    expect(r.output).toContain(message);
    expect((await server.client.listItems('default', 'owned')).items).toEqual([]);
  });

  it('the owner’s values apply: the job runs as the queue’s user', async () => {
    const r = await launch(['--set-var', 'mem=512m']);
    expect(r.code).toBe(0);
    expect(r.output).toMatch(/^1000$/m);
  });
});
