import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { packDirectory } from '@liftoff/cli';
import type { ItemSummary, LaunchSpecInput } from '@liftoff/core';
import { codeDir } from '../helpers/jobs.js';
import { cleanupAll, cli, sleep, startAgent, startServer, type TestAgent, type TestServer } from '../helpers/procs.js';

/**
 * Acceptance 3, 4 and 5 of issue 4 with real server, agents and CLI: priority order with a busy agent, a queue
 * concurrency limit under 5 idle agents (and its slot freed after kill -9 of an agent), and template variables.
 */
describe('priorities, concurrency limits and templates end to end', () => {
  let server: TestServer;
  let archiveId: string;
  const job = (cmd: string[]): LaunchSpecInput => ({
    source: { type: 'code', archive_id: archiveId },
    entry_point: cmd,
  });
  const waitFor = async <T>(what: string, fn: () => Promise<T | undefined>, ms = 30_000): Promise<T> => {
    const until = Date.now() + ms;
    for (;;) {
      const v = await fn();
      if (v !== undefined) return v;
      if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
      await sleep(100);
    }
  };
  const allItems = async (queue: string): Promise<ItemSummary[]> =>
    (await server.client.listItems('default', queue, { limit: 1000 })).items;

  beforeAll(async () => {
    server = await startServer({ flags: ['--heartbeat-seconds', '1'] });
    archiveId = (await server.client.uploadArchive(await packDirectory(codeDir({ 'x.txt': 'x' })))).id;
  });
  afterAll(cleanupAll);

  it('acceptance 3: with the agent busy, mixed priorities start in priority order, FIFO within one', async () => {
    const c = server.client;
    expect((await cli(['queue', 'create', 'prio3', '--prioritization', 'V0'], server.env)).code).toBe(0);
    await startAgent(server, { queues: ['prio3'], maxJobs: 1, name: 'prio3-agent' });
    // The blocker holds the agent's one slot until every item is pushed (a timed blocker could end first on a
    // loaded machine, letting the first pushed item start out of order); cancelling it frees the slot.
    const blocker = await c.push('default', 'prio3', { spec: job(['sleep', '120']) });
    await waitFor('the blocker to run', async () =>
      (await c.getItem(blocker.id)).state === 'running' ? true : undefined,
    );
    const order = ['low', 'medium', 'critical', 'high', 'low', 'critical', 'medium'] as const;
    const pushed: Array<{ id: string; p: string }> = [];
    for (const [i, p] of order.entries()) {
      if (i === 0) {
        // One through the CLI's -P, the rest through the API.
        const r = await cli(
          ['launch', '-q', 'prio3', '--code', codeDir({ 'x.txt': 'x' }), '-E', 'true', '-P', p],
          server.env,
        );
        expect(r.code).toBe(0);
        pushed.push({ id: (/([0-9a-f-]{36})/.exec(r.output) as RegExpExecArray)[1] as string, p });
      } else {
        pushed.push({ id: (await c.push('default', 'prio3', { spec: job(['true']), priority: p })).id, p });
      }
    }
    await c.cancelItem(blocker.id);
    const ended = await waitFor('all items to end', async () => {
      const items = (await allItems('prio3')).filter((i) => i.id !== blocker.id);
      return items.every((i) => i.state === 'finished') ? items : undefined;
    });
    const started = ended.sort((a, b) => (a.claimed_at ?? 0) - (b.claimed_at ?? 0)).map((i) => i.id);
    const rank = { critical: 0, high: 1, medium: 2, low: 3 } as const;
    const expected = pushed
      .map((x, i) => ({ ...x, i }))
      .sort((a, b) => rank[a.p as keyof typeof rank] - rank[b.p as keyof typeof rank] || a.i - b.i)
      .map((x) => x.id);
    expect(started).toEqual(expected);
  });

  it('acceptance 4: a queue limit of 2 holds with 5 idle agents, and a killed agent frees its slot', async () => {
    const c = server.client;
    expect((await cli(['queue', 'create', 'lim', '--max-concurrency', '2'], server.env)).code).toBe(0);
    const agents: TestAgent[] = [];
    for (let i = 0; i < 5; i++)
      agents.push(await startAgent(server, { queues: ['lim'], maxJobs: 2, name: `lim-${i}` }));

    const ids: string[] = [];
    for (let i = 0; i < 10; i++) ids.push((await c.push('default', 'lim', { spec: job(['sleep', '0.5']) })).id);
    const done = await waitFor(
      '10 items to finish',
      async () => {
        const items = (await allItems('lim')).filter((i) => ids.includes(i.id));
        return items.every((i) => i.state === 'finished') ? items : undefined;
      },
      60_000,
    );
    // From the recorded intervals (claim to end): never more than 2 at once, and the limit was actually reached.
    const events = done.flatMap((i) => [
      { t: i.claimed_at as number, d: 1 },
      { t: i.ended_at as number, d: -1 },
    ]);
    events.sort((a, b) => a.t - b.t || a.d - b.d);
    let now = 0;
    let peak = 0;
    for (const e of events) peak = Math.max(peak, (now += e.d));
    expect(peak).toBe(2);
    expect(new Set(done.map((i) => i.claimed_by)).size).toBeGreaterThan(1);

    // Two long runs take both slots; a third waits on the limit.
    const long = [
      await c.push('default', 'lim', { spec: job(['sleep', '30']) }),
      await c.push('default', 'lim', { spec: job(['sleep', '30']) }),
    ];
    const holders = await waitFor('both long runs to run', async () => {
      const items = await Promise.all(long.map((l) => c.getItem(l.id)));
      return items.every((i) => i.state === 'running') ? items : undefined;
    });
    const third = await c.push('default', 'lim', { spec: job(['true']) });
    await sleep(500);
    expect((await c.getItem(third.id)).pending_reason?.code).toBe('queue_limit');

    const victim = agents.find((a) => a.name === holders[0]?.claimed_by);
    if (!victim) throw new Error('no agent holds the long run');
    victim.proc.kill('SIGKILL');
    const killedAt = Date.now();
    // Heartbeat every 1 s, dead after 3 silent intervals: the slot frees and the third item runs.
    const finished = await waitFor('the third item to finish', async () => {
      const i = await c.getItem(third.id);
      return i.state === 'finished' ? i : undefined;
    });
    expect((finished.claimed_at as number) - killedAt).toBeGreaterThan(2_000);
    const dead = (await c.listAgents('default')).agents.find((a) => a.id === victim.name);
    expect(dead).toMatchObject({ status: 'KILLED', status_reason: 'heartbeat lost' });
    // The dead agent's run keeps its last state (the agent reconciles it if it comes back) but holds no slot.
    expect((await c.getItem(long[0]?.id as string)).state).toBe('running');
    for (const l of long) await c.cancelItem(l.id).catch(() => undefined);
  }, 120_000);

  it('acceptance 5: --set-var values are checked and substituted into the spec the agent runs', async () => {
    const tv = JSON.stringify({
      gpus: { schema: { type: 'integer', minimum: 1, maximum: 8 } },
      size: { schema: { type: 'string', enum: ['s', 'l'], default: 's' } },
    });
    const created = await cli(
      [
        'queue',
        'create',
        'tpl',
        '--config',
        '{"gpus": "{{gpus}}", "tag": "size-{{size}}"}',
        '--template-variables',
        tv,
      ],
      server.env,
    );
    expect(created.output).toContain('created queue default/tpl');
    await startAgent(server, { queues: ['tpl'], maxJobs: 1, name: 'tpl-agent' });
    const code = codeDir({ 'x.txt': 'x' });
    const ok = await cli(
      ['launch', '-q', 'tpl', '--code', code, '-E', 'true', '--set-var', 'gpus=2', '--set-var', 'size=l', '--wait'],
      server.env,
    );
    expect(ok.code).toBe(0);
    const runs = (await server.client.listRuns('default', { queue: 'tpl' })).runs;
    const detail = await server.client.getRun(runs[0]?.id as string);
    expect(detail.spec.resource_args).toEqual({ 'local-process': { gpus: 2, tag: 'size-l' } });

    const refused = async (vars: string[], message: string) => {
      const r = await cli(
        ['launch', '-q', 'tpl', '--code', code, '-E', 'true', ...vars.flatMap((v) => ['--set-var', v])],
        server.env,
      );
      expect(r.code).toBe(2);
      expect(r.output.trim()).toBe(`liftoff: error: ${message}`);
    };
    await refused(
      ['gpus=2', 'zone=x'],
      'Template variable "zone" is not defined by queue "tpl"; it defines: gpus, size.',
    );
    await refused(['gpus=two'], 'Template variable "gpus" must be an integer, got "two".');
    await refused(['gpus=9'], 'Template variable "gpus" must be at most 8, got 9.');
    await refused(['gpus=2', 'size=m'], 'Template variable "size" must be one of "s", "l", got "m".');
  }, 120_000);
});
