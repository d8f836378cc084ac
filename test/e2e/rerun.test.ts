import Database from 'better-sqlite3';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupAll, cli, startServer, type TestServer } from '../helpers/procs.js';

/** `liftoff runs rerun`: a run pushed again as its author pushed it, with changes, through the ordinary push. */
describe('runs rerun', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startServer();
    await server.client.createQueue('default', {
      name: 'tpl',
      resource: 'local-process',
      resource_args: { 'local-process': { tier: '{{tier}}', zone: 'eu' } },
      template_variables: { tier: { schema: { type: 'string', enum: ['small', 'large'] } } },
      locked_keys: ['zone'],
    });
  });
  afterAll(cleanupAll);

  const launch = ['launch', '-q', 'tpl', '--git', 'https://example.com/r.git', '--ref', 'v1', '-E', 'python3 train.py'];

  /** A run of the item, started through the agent protocol (no job needs to run for a re-run). */
  async function runOf(itemId: string): Promise<string> {
    const agent = `ag-${itemId.slice(-6)}`;
    await server.client.registerAgent({
      id: agent,
      name: agent,
      entity: 'default',
      hostname: 'h',
      queues: ['tpl', 'default'],
      version: 't',
      max_jobs: 8,
    });
    const { items } = await server.client.poll(agent, { queues: ['tpl', 'default'], max_items: 8, wait_ms: 0 });
    expect(items.map((i) => i.item_id)).toContain(itemId);
    return (await server.client.ackItem(itemId, agent)).id;
  }

  it('pushes the run again onto its queue with the changed keys, template values and name', async () => {
    const first = await cli(
      [
        ...launch,
        '--set',
        'lr=0.1',
        '--set',
        'opt.name=adam',
        '--set-var',
        'tier=large',
        '-n',
        'base',
        '--',
        '--epochs',
        '3',
      ],
      server.env,
    );
    expect(first.code).toBe(0);
    const itemId = (first.output.match(/[0-9a-f-]{36}/) ?? [])[0] as string;
    const runId = await runOf(itemId);
    const again = await cli(
      ['runs', 'rerun', runId, '--set', 'lr=0.01', '--set', 'opt.beta=0.9', '--set-var', 'tier=small', '-n', 'again'],
      server.env,
    );
    expect(again.code).toBe(0);
    expect(again.output).toContain(`on default/tpl: a re-run of run ${runId}`);
    const newId = (again.output.match(/^[0-9a-f-]{36}$/m) ?? [])[0] as string;
    const [old, rerun] = await Promise.all([server.client.getItem(itemId), server.client.getItem(newId)]);
    expect(rerun.queue).toBe('tpl');
    expect(rerun.spec).toMatchObject({
      source: { type: 'git', url: 'https://example.com/r.git', ref: 'v1' },
      entry_point: ['python3', 'train.py'],
      args: ['--epochs', '3'],
      run_config: { lr: 0.01, opt: { name: 'adam', beta: 0.9 } },
      name: 'again',
      // The queue's args are merged in again, the template from the new value; the locked key is the queue's.
      resource_args: { 'local-process': { tier: 'small', zone: 'eu' } },
    });
    // What the re-run's author sent is kept as such too, so it can be re-run in turn.
    expect(rerun.pushed).toMatchObject({
      spec: { run_config: { lr: 0.01, opt: { name: 'adam', beta: 0.9 } }, resource_args: {} },
      template_variables: { tier: 'small' },
    });
    expect(rerun.pushed?.spec.author).toBeUndefined();
    // The first item is untouched.
    expect(old.spec.run_config).toEqual({ lr: 0.1, opt: { name: 'adam' } });
    expect(old.pushed?.template_variables).toEqual({ tier: 'large' });

    // An item id works too (a pending item has no run yet), and without changes it is the same push.
    const same = await cli(['runs', 'rerun', newId, '--json'], server.env);
    expect(same.code).toBe(0);
    const copy = JSON.parse(same.output) as { id: string; spec: { run_config: unknown; resource_args: unknown } };
    expect(copy.spec.run_config).toEqual(rerun.spec.run_config);
    expect(copy.spec.resource_args).toEqual(rerun.spec.resource_args);
  });

  it('refuses a bad priority and a run that does not exist, in one line each', async () => {
    const pushed = await cli([...launch, '--set-var', 'tier=small'], server.env);
    const itemId = (pushed.output.match(/[0-9a-f-]{36}/) ?? [])[0] as string;
    const bad = await cli(['runs', 'rerun', itemId, '-P', 'urgent'], server.env);
    expect(bad.code).not.toBe(0);
    expect(bad.output).toMatch(
      /^liftoff: error: --priority "urgent": expected one of critical, high, medium, low\.\n$/,
    );
    const missing = await cli(['runs', 'rerun', 'nope1234'], server.env);
    expect(missing.output).toMatch(/^liftoff: error: No run or item "nope1234"/);
  });

  it('re-runs an item pushed before pushes were kept from its stored spec, under the queue rules of today', async () => {
    const pushed = await cli(
      ['launch', '--git', 'https://example.com/r.git', '-E', 'python3 a.py', '--set', 'k=1'],
      server.env,
    );
    const itemId = (pushed.output.match(/[0-9a-f-]{36}/) ?? [])[0] as string;
    // As an item written by an older server: no `pushed`.
    const db = new Database(join(server.dataDir, 'liftoff.db'));
    db.prepare('UPDATE items SET pushed = NULL WHERE id = ?').run(itemId);
    db.close();
    expect((await server.client.getItem(itemId)).pushed).toBeNull();
    const again = await cli(['runs', 'rerun', itemId, '--set', 'k=2'], server.env);
    expect(again.code).toBe(0);
    const newId = (again.output.match(/^[0-9a-f-]{36}$/m) ?? [])[0] as string;
    const rerun = await server.client.getItem(newId);
    expect(rerun.spec).toMatchObject({ entry_point: ['python3', 'a.py'], run_config: { k: 2 } });
    expect(rerun.queue).toBe('default');
  });
});
