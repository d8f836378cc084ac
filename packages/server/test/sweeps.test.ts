import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  LiftoffClient,
  readCredentials,
  type ClaimedItem,
  type CreateSweepBody,
  type Sweep,
  type SweepTrial,
} from '@liftoff/core';
import { BACKENDS, pgAvailable } from '../../../test/helpers/postgres.js';
import { refusal, startBackendServer, type BackendServer } from './factory.js';
import { FakeAgent, GIT_TRIAL, takeAll, until } from './sweepAgent.js';

const SETTINGS = { sweepTickMs: 25, sweepLeaseMs: 3_000 };

const inFlight = (s: Sweep): SweepTrial[] =>
  (s.trials ?? []).filter((t) => !['finished', 'failed', 'stopped', 'preempted', 'lost'].includes(t.state));

for (const backend of BACKENDS) {
  describe.skipIf(backend === 'postgres' && !pgAvailable)(`sweeps on ${backend}`, () => {
    let b: BackendServer;
    let c: LiftoffClient;
    let n = 0;
    /** A queue and an agent of their own per test, so tests never take each other's trials. */
    const fresh = async (maxJobs = 4) => {
      const queue = `sweeps${n++}`;
      await c.createQueue('default', { name: queue, resource: 'local-process', resource_args: {} });
      const agent = new FakeAgent(c, `agent-${queue}`, queue);
      await agent.register(maxJobs);
      return { queue, agent };
    };
    const create = (body: CreateSweepBody) => c.createSweep('default', body);
    const show = (id: string) => c.getSweep('default', id);

    beforeAll(async () => {
      b = await startBackendServer(backend, SETTINGS);
      c = b.client;
    });
    afterAll(async () => b.close());

    it('a 2x3 grid runs exactly 6 trials, at most `parallel` at once, with the right run configs and env', async () => {
      const { queue, agent } = await fresh();
      const sweep = await create({
        queue,
        parallel: 2,
        config: {
          program: 'train.py',
          method: 'grid',
          metric: { name: 'loss', goal: 'minimize' },
          parameters: { opt: { values: ['adam', 'sgd'] }, bs: { values: [16, 32, 64] } },
        },
        trial: { ...GIT_TRIAL, spec: { ...GIT_TRIAL.spec, run_config: { epochs: 3 } } },
      });
      expect(sweep).toMatchObject({ state: 'running', method: 'grid', parallel: 2, queue, notes: [] });
      const claimed: ClaimedItem[] = [];
      while (claimed.length < 6) {
        const items = await agent.take(4);
        claimed.push(...items);
        const now = await show(sweep.id);
        expect(inFlight(now).length).toBeLessThanOrEqual(2);
        for (const item of items) {
          const cfg = item.spec.run_config as { opt: string; bs: number };
          await agent.report(item.item_id, [1, (cfg.opt === 'adam' ? 0 : 1) + cfg.bs / 100]);
          await agent.end(item.item_id, 'finished');
        }
      }
      const done = await until('the grid to finish', async () => {
        const s = await show(sweep.id);
        return s.state === 'finished' && s;
      });
      expect(done.reason).toBe('grid exhausted');
      expect(done.trial_count).toBe(6);
      expect(claimed.map((i) => i.spec.run_config)).toEqual([
        { epochs: 3, opt: 'adam', bs: 16 },
        { epochs: 3, opt: 'adam', bs: 32 },
        { epochs: 3, opt: 'adam', bs: 64 },
        { epochs: 3, opt: 'sgd', bs: 16 },
        { epochs: 3, opt: 'sgd', bs: 32 },
        { epochs: 3, opt: 'sgd', bs: 64 },
      ]);
      for (const [i, item] of claimed.entries()) {
        expect(item.spec.env.LIFTOFF_SWEEP_ID).toBe(sweep.id);
        const cfg = item.spec.run_config as { opt: string; bs: number };
        expect(item.spec.entry_point).toEqual([
          '/usr/bin/env',
          'python3',
          'train.py',
          `--opt=${cfg.opt}`,
          `--bs=${cfg.bs}`,
        ]);
        expect(item.spec.name).toBe(`${sweep.name}-${i}`);
      }
      expect(done.best).toMatchObject({ number: 0, metric: 0.16, params: { opt: 'adam', bs: 16 } });
      expect(done.trials?.map((t) => t.state)).toEqual(Array(6).fill('finished'));
      // Nothing more is pushed once it has ended.
      expect((await agent.take(4, 100)).length).toBe(0);
    });

    it('random with run_cap: a failed trial does not count; the cap is reached by those that did', async () => {
      const { queue, agent } = await fresh();
      const sweep = await create({
        queue,
        config: { method: 'random', run_cap: 3, parameters: { lr: { distribution: 'uniform', min: 0, max: 1 } } },
        trial: GIT_TRIAL,
      });
      let first = true;
      const seen: number[] = [];
      await until('run_cap', async () => {
        for (const item of await agent.take(1, 200)) {
          seen.push((item.spec.run_config as { lr: number }).lr);
          await agent.end(item.item_id, first ? 'failed' : 'finished');
          first = false;
        }
        const s = await show(sweep.id);
        return s.state === 'finished' && s;
      });
      const done = await show(sweep.id);
      expect(done.reason).toBe('run_cap 3 reached');
      expect(done.trials?.map((t) => t.state)).toEqual(['failed', 'finished', 'finished', 'finished']);
      expect(seen.length).toBe(4);
      expect(new Set(seen).size).toBe(4);
      expect(seen.every((v) => v >= 0 && v < 1)).toBe(true);
    });

    it('stops when a trial reaches the target; a script that keeps failing ends the sweep failed', async () => {
      const { queue, agent } = await fresh();
      const sweep = await create({
        queue,
        config: {
          method: 'bayes',
          metric: { name: 'acc', goal: 'maximize', target: 0.9 },
          parameters: { x: { distribution: 'uniform', min: 0, max: 1 } },
        },
        trial: GIT_TRIAL,
      });
      let i = 0;
      const accs = [0.5, 0.7, 0.95];
      await until('the target', async () => {
        for (const item of await agent.take(1, 200)) {
          await agent.report(item.item_id, [accs[i++] ?? 0.1], 'acc');
          await agent.end(item.item_id, 'finished');
        }
        const s = await show(sweep.id);
        return s.state === 'finished' && s;
      });
      const done = await show(sweep.id);
      expect(done.reason).toBe('target reached by trial 2');
      expect(done.trial_count).toBe(3);
      expect(done.best?.metric).toBe(0.95);

      const broken = await create({
        queue,
        config: { method: 'random', parameters: { x: { values: [1, 2] } } },
        trial: GIT_TRIAL,
      });
      await until('the failing sweep to give up', async () => {
        for (const item of await agent.take(1, 200)) await agent.end(item.item_id, 'failed');
        const s = await show(broken.id);
        return s.state === 'failed' && s;
      });
      expect((await show(broken.id)).reason).toBe('the last 5 trials failed or were lost');
    });

    it('hyperband cancels a trial whose early values are poor: it ends stopped, marked early-terminated', async () => {
      const { queue, agent } = await fresh();
      const sweep = await create({
        queue,
        parallel: 4,
        config: {
          method: 'random',
          metric: { name: 'loss', goal: 'minimize' },
          early_terminate: { type: 'hyperband', min_iter: 2, eta: 2 },
          parameters: { x: { values: [1, 2, 3, 4] } },
          run_cap: 4,
        },
        trial: GIT_TRIAL,
      });
      const items = await takeAll(agent, 4);
      const [good1, good2, good3, poor] = items as [ClaimedItem, ClaimedItem, ClaimedItem, ClaimedItem];
      // Three trials pass the first bracket (the 3rd value), each better than the last (so none is in the bottom
      // half when it gets there), and finish; then one reports poor values.
      for (const [k, item] of [good1, good2, good3].entries()) {
        await agent.report(item.item_id, [1, 0.8 - k / 100, 0.6 - k / 100, 0.5]);
        await agent.end(item.item_id, 'finished');
      }
      await agent.report(poor.item_id, [1, 2, 3]);
      const poorRun = agent.runOf.get(poor.item_id) ?? '';
      await until('hyperband to cancel the poor trial', async () => (await c.getRun(poorRun)).status === 'cancelling');
      await agent.end(poor.item_id, 'stopped');
      const done = await until('the sweep to finish', async () => {
        const s = await show(sweep.id);
        return s.state === 'finished' && s;
      });
      const trial = done.trials?.find((t) => t.item_id === poor.item_id);
      expect(trial).toMatchObject({ state: 'stopped', early_terminated: true });
      expect(done.trials?.filter((t) => t.early_terminated).length).toBe(1);
      expect((await c.getRun(poorRun)).warning).toMatch(/^early-terminated: hyperband stopped this trial of sweep/);
    });

    it('pause holds new trials, resume pushes again, stop cancels those in flight; wrong moves are refused', async () => {
      const { queue, agent } = await fresh();
      const sweep = await create({
        queue,
        parallel: 2,
        config: { method: 'random', parameters: { x: { values: [1, 2, 3] } } },
        trial: GIT_TRIAL,
      });
      const firstTwo = await until('two trials', async () => {
        const s = await show(sweep.id);
        return s.trial_count === 2 && s;
      });
      expect(inFlight(firstTwo).length).toBe(2);
      const paused = await c.sweepAction('default', sweep.id, 'pause');
      expect(paused.state).toBe('paused');
      expect((await refusal(c.sweepAction('default', sweep.id, 'pause'))).code).toBe('CONFLICT');
      const items = await agent.take(2);
      for (const item of items) await agent.end(item.item_id, 'finished');
      // Paused: the two ended, nothing new comes (the controller has ticked many times by the second look).
      await until('the ends to be seen', async () =>
        (await show(sweep.id)).trials?.every((t) => t.state === 'finished'),
      );
      await new Promise((r) => setTimeout(r, 300));
      expect((await show(sweep.id)).trial_count).toBe(2);
      await c.sweepAction('default', sweep.id, 'resume');
      await until('trials again', async () => (await show(sweep.id)).trial_count === 4);
      const running = await agent.take(1);
      expect(running.length).toBe(1);
      const stopped = await c.sweepAction('default', sweep.id, 'stop');
      expect(stopped).toMatchObject({ state: 'stopped', reason: 'stopped by a user' });
      const after = await show(sweep.id);
      expect(
        after.trials
          ?.slice(2)
          .map((t) => t.state)
          .sort(),
      ).toEqual(['cancelling', 'stopped']);
      expect((await refusal(c.sweepAction('default', sweep.id, 'resume'))).code).toBe('CONFLICT');
      await new Promise((r) => setTimeout(r, 200));
      expect((await show(sweep.id)).trial_count).toBe(4);
    });

    it("a job's sweep: every trial runs the job version, its run config checked against the job's schema", async () => {
      const { queue, agent } = await fresh();
      const ref = 'a'.repeat(40);
      await c.createJobVersion('default', 'sweepjob', {
        source: { type: 'git', url: 'https://git.example.com/job.git', ref },
        entry_point: ['python3', 'train.py'],
        schema: {
          type: 'object',
          properties: { lr: { type: 'number', maximum: 1 }, epochs: { type: 'integer' } },
          required: ['lr'],
        },
      });
      // What `sweep create -j sweepjob` sends: the version's source and entry point, `job` pinned.
      const trial = {
        spec: {
          ...GIT_TRIAL.spec,
          entry_point: ['python3', 'train.py'],
          job: { name: 'sweepjob', version: 'v0' },
          run_config: { epochs: 2 },
        },
      };
      // Trial 0 outside the schema: the sweep is refused before any trial is pushed.
      const refused = await refusal(
        create({ queue, parallel: 1, config: { method: 'grid', parameters: { lr: { values: [5, 0.1] } } }, trial }),
      );
      expect(refused.message).toContain('does not match the schema of job sweepjob:v0');
      expect(refused.message).toContain('lr: must be <= 1');
      const sweep = await create({
        queue,
        parallel: 1,
        config: { method: 'grid', parameters: { lr: { values: [0.1, 0.5, 3] } } },
        trial,
      });
      for (const lr of [0.1, 0.5]) {
        const [item] = await takeAll(agent, 1);
        expect(item?.spec.job).toEqual({ name: 'sweepjob', version: 'v0' });
        expect(item?.spec.source).toEqual({ type: 'git', url: 'https://git.example.com/job.git', ref });
        expect(item?.spec.entry_point).toEqual(['python3', 'train.py']);
        expect(item?.spec.run_config).toEqual({ epochs: 2, lr });
        await agent.end(item?.item_id ?? '', 'finished');
      }
      // Trial 2 (lr 3) breaks the schema when it is pushed: the sweep ends failed, saying why; nothing was queued.
      const done = await until('the sweep to fail', async () => {
        const s = await show(sweep.id);
        return s.state === 'failed' && s;
      });
      expect(done.reason).toBe(
        "a trial could not be pushed: trial 2's run config does not match the schema of job sweepjob:v0: lr: must be <= 1",
      );
      expect(done.trial_count).toBe(2);
      expect((await agent.take(1, 100)).length).toBe(0);
    });

    it("a sweep whose creator's key is revoked pushes no more trials: it ends failed", async () => {
      const { queue, agent } = await fresh();
      await c.createUser(`sweeper${n}`);
      await c.addMember('default', `sweeper${n}`, 'member');
      const created = await c.createKey({ name: `sweeper${n}`, role: 'member', user: `sweeper${n}` });
      const asSweeper = new LiftoffClient({ baseUrl: b.server.url, apiKey: created.key });
      const sweep = await asSweeper.createSweep('default', {
        queue,
        config: { method: 'random', parameters: { x: { values: [1, 2] } } },
        trial: GIT_TRIAL,
      });
      const [first] = await takeAll(agent, 1);
      await c.revokeKey(created.name);
      await agent.end(first?.item_id ?? '', 'finished');
      const done = await until('the sweep to fail', async () => {
        const s = await show(sweep.id);
        return s.state === 'failed' && s;
      });
      expect(done.reason).toBe(`the key that created it (${created.name}) was revoked`);
      expect(done.trial_count).toBe(1);
    });

    it(`a restart mid-sweep goes on without duplicate trials${backend === 'postgres' ? '; two replicas never both drive it' : ''}`, async () => {
      const own = await startBackendServer(backend, SETTINGS);
      try {
        const apiKey = readCredentials(join(own.home, '.config', 'liftoff', 'credentials'))?.api_key ?? '';
        await own.client.createQueue('default', { name: 'restarts', resource: 'local-process', resource_args: {} });
        const agent = new FakeAgent(own.client, 'restart-agent', 'restarts');
        await agent.register(8);
        const sweep = await own.client.createSweep('default', {
          queue: 'restarts',
          parallel: 2,
          config: { method: 'grid', parameters: { a: { values: [1, 2, 3] }, b: { values: ['x', 'y'] } } },
          trial: GIT_TRIAL,
        });
        const first = await takeAll(agent, 2);
        await agent.end(first[0]?.item_id ?? '', 'finished');
        // PostgreSQL: a second replica joins while the first still leads; on either, the leader then goes away.
        const replica = backend === 'postgres' ? await own.restart(SETTINGS) : undefined;
        await own.server.close();
        const next = await own.restart(SETTINGS);
        const client = new LiftoffClient({ baseUrl: next.url, apiKey });
        const agent2 = new FakeAgent(client, agent.id, 'restarts');
        agent2.runOf.set(first[1]?.item_id ?? '', agent.runOf.get(first[1]?.item_id ?? '') ?? '');
        await agent2.end(first[1]?.item_id ?? '', 'finished');
        let all: ClaimedItem[] = [...first];
        const done = await until('the grid to finish after the restart', async () => {
          const items = await agent2.take(4, 200);
          all = [...all, ...items];
          const s = await client.getSweep('default', sweep.id);
          expect(inFlight(s).length).toBeLessThanOrEqual(2);
          for (const item of items) await agent2.end(item.item_id, 'finished');
          return s.state === 'finished' && s;
        });
        expect(done.trials?.map((t) => t.number)).toEqual([0, 1, 2, 3, 4, 5]);
        const configs = all.map((i) => JSON.stringify(i.spec.run_config));
        expect(configs.length).toBe(6);
        expect(new Set(configs).size).toBe(6);
        await replica?.close();
      } finally {
        await own.close();
      }
    });

    it('refuses bad configs (every problem, one line each), foreign entities, and agent keys', async () => {
      const { queue } = await fresh();
      const bad = await refusal(
        create({
          queue,
          config: { method: 'grid', parameters: { lr: { min: 0.5, max: 1.5 } }, max_schedulers: 2 },
          trial: GIT_TRIAL,
        }),
      );
      expect(bad.code).toBe('CONFIG_INVALID');
      expect(bad.message).toBe(
        [
          'The sweep config is invalid:',
          '  - unknown field "max_schedulers": remove it or check its spelling',
          '  - field "parameters.lr" (value: {"min":0.5,"max":1.5,"distribution":"uniform"}): method grid needs "values" or "value", not distribution uniform',
        ].join('\n'),
      );
      const grid = await refusal(
        create({ queue, config: { method: 'grid', parameters: { lr: { min: 0.5, max: 1.5 } } }, trial: GIT_TRIAL }),
      );
      expect(grid.message).toContain('method grid needs "values" or "value", not distribution uniform');
      const entity = await refusal(
        create({
          queue,
          config: { method: 'random', entity: 'other', parameters: { a: { value: 1 } } },
          trial: GIT_TRIAL,
        }),
      );
      expect(entity.message).toContain('the sweep is created in entity "default"');
      const noProgram = await refusal(
        create({
          queue,
          config: { method: 'random', parameters: { a: { value: 1 } } },
          trial: { spec: { source: { type: 'git', url: 'https://git.example.com/x.git' }, entry_point: [] } },
        }),
      );
      expect(noProgram.code).toBe('BAD_REQUEST');
      expect((await refusal(c.createSweep('nope', { queue, config: {}, trial: GIT_TRIAL }))).code).toBe('NOT_FOUND');
      expect((await refusal(c.getSweep('default', 'nope'))).code).toBe('NOT_FOUND');
      const agentKey = await b.server.mintAgentKey('sweep-agent', 'default');
      const asAgent = new LiftoffClient({ baseUrl: b.server.url, apiKey: agentKey });
      const forbidden = await refusal(
        asAgent.createSweep('default', {
          queue,
          config: { method: 'random', parameters: { a: { value: 1 } } },
          trial: GIT_TRIAL,
        }),
      );
      expect(forbidden.code).toBe('FORBIDDEN');
      // The launch-sweep keys are accepted, with what Liftoff does instead.
      const launch = await create({
        queue,
        config: { method: 'random', scheduler: { num_workers: 2 }, parameters: { a: { value: 1 } } },
        trial: GIT_TRIAL,
      });
      expect(launch.notes).toEqual([expect.stringMatching(/^"scheduler" is ignored/)]);
      await c.sweepAction('default', launch.id, 'stop');
    });
  });
}
