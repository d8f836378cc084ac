import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { readCredentials, type LaunchSpecInput, type LiftoffClient, type Run } from '@liftoff/core';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer } from '@liftoff/server';
import { BACKENDS, pgAvailable } from '../../../test/helpers/postgres.js';
import { refusal, startBackendServer, type BackendServer } from './factory.js';

const git: LaunchSpecInput = { source: { type: 'git', url: 'https://example.com/r.git' }, entry_point: ['true'] };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const MIN = 60_000;

/** Waits (on the real clock) for the reaper, which runs every 50 ms, to have done what `fn` checks for. */
async function until<T>(fn: () => Promise<T | undefined>): Promise<T> {
  for (let i = 0; i < 400; i++) {
    const v = await fn();
    if (v !== undefined) return v;
    await sleep(25);
  }
  throw new Error('the reaper did not get there');
}

/**
 * The run lease and fencing, once per backend. Agents are KILLED after 3 silent heartbeat intervals (30 min here)
 * and their runs lost after 60 min; the suite moves the server's clock (requests and reaper alike) instead of
 * waiting.
 */
for (const backend of BACKENDS) {
  describe.skipIf(backend === 'postgres' && !pgAvailable)(`run lease on ${backend}`, () => {
    let b: BackendServer;
    let c: LiftoffClient;
    let offset = 0;
    const now = () => Date.now() + offset;

    beforeEach(async () => {
      offset = 0;
      b = await startBackendServer(
        backend,
        {
          leaseMs: 600 * MIN,
          heartbeatIntervalMs: 10 * MIN,
          runLostAfterMs: 60 * MIN,
          pollTimeoutMs: 500,
          reapIntervalMs: 50,
        },
        { now },
      );
      c = b.client;
    });
    afterEach(async () => {
      await b.close();
    });

    const register = (id: string, queue = 'default') =>
      c.registerAgent({ id, name: id, entity: 'default', hostname: 'h', queues: [queue], version: 't', max_jobs: 10 });
    async function started(agent: string, queue = 'default') {
      const item = await c.push('default', queue, { spec: git });
      const claim = (await c.poll(agent, { queues: [queue], max_items: 1, wait_ms: 0 })).items[0];
      if (claim?.item_id !== item.id) throw new Error(`${agent} did not claim ${item.id}`);
      const run = await c.ackItem(item.id, agent);
      await c.reportRun(run.id, { agent_id: agent, state: 'running' });
      return { item, claim, run };
    }
    const runIs = (id: string, status: Run['status']) =>
      until(async () => {
        const r = await c.getRun(id);
        return r.status === status ? r : undefined;
      });
    const agentOf = async (id: string) => (await c.listAgents('default')).agents.find((a) => a.id === id);

    it('ends the run of an agent silent past the lease lost, ends its item and frees its slot', async () => {
      await c.createQueue('default', { name: 'one', resource: 'local-process', max_concurrency: 1 });
      await register('gone', 'one');
      const { item, run } = await started('gone', 'one');
      const waiting = await c.push('default', 'one', { spec: git });

      offset += 61 * MIN;
      const lost = await runIs(run.id, 'lost');
      expect(lost).toMatchObject({ error_stage: 'agent' });
      expect(lost.ended_at).not.toBeNull();
      expect(lost.error_message).toContain('agent "gone" was not heard from');
      expect(await c.getItem(item.id)).toMatchObject({ state: 'lost', lost_runs: 1 });
      expect((await c.listQueues('default')).queues.find((q) => q.name === 'one')).toMatchObject({
        running: 0,
        pending: 1,
      });
      // The slot is free even once the agent is back (a KILLED agent's runs hold none, a live agent's do): another
      // agent gets the waiting item despite the limit of 1.
      await c.poll('gone', { queues: ['one'], max_items: 0, wait_ms: 0 });
      expect((await agentOf('gone'))?.status).not.toBe('KILLED');
      await register('fresh', 'one');
      const next = await c.poll('fresh', { queues: ['one'], max_items: 1, wait_ms: 0 });
      expect(next.items.map((i) => i.item_id)).toEqual([waiting.id]);
      // Logs are complete: a lost run is terminal for readers too.
      expect((await c.readLogs(run.id)).complete).toBe(true);

      const creds = readCredentials(join(b.home, '.config', 'liftoff', 'credentials'));
      const metrics = await fetch(`${b.server.url}/metrics`, {
        headers: { authorization: `Bearer ${creds?.api_key}` },
      });
      expect(await metrics.text()).toMatch(/^liftoff_runs_lost_total 1$/m);
    });

    it('keeps the runs of an agent that is only KILLED, and takes a real report from it when it comes back', async () => {
      await register('flaky');
      const { item, run } = await started('flaky');
      offset += 31 * MIN;
      await until(async () => ((await agentOf('flaky'))?.status === 'KILLED' ? true : undefined));
      expect((await c.getRun(run.id)).status).toBe('running');
      // The job finished while its agent was cut off; the late report still tells how it really ended.
      await c.reportRun(run.id, { agent_id: 'flaky', state: 'finished', exit_code: 0 });
      expect(await c.getRun(run.id)).toMatchObject({ status: 'finished', exit_code: 0 });
      expect((await c.getItem(item.id)).state).toBe('finished');
      offset += 60 * MIN;
      await sleep(200); // a few reaper ticks: a finished run is never made lost
      expect((await c.getRun(run.id)).status).toBe('finished');
    });

    it('brings an agent KILLED for silence back to RUNNING when it polls again, but not one that stopped', async () => {
      await register('cut');
      await started('cut');
      await c.heartbeat('cut', 'RUNNING', 1);
      offset += 31 * MIN;
      await until(async () => ((await agentOf('cut'))?.status === 'KILLED' ? true : undefined));
      await c.poll('cut', { queues: ['default'], max_items: 0, wait_ms: 0 });
      expect(await agentOf('cut')).toMatchObject({ status: 'RUNNING', status_reason: null });

      await register('quit');
      await c.agentStopped('quit');
      await c.poll('quit', { queues: ['default'], max_items: 0, wait_ms: 0 });
      expect(await agentOf('quit')).toMatchObject({ status: 'KILLED', status_reason: 'stopped' });
    });

    it('refuses late reports and logs about a lost run with RUN_LOST, and tells its agent to stop it', async () => {
      await register('late');
      const { run } = await started('late');
      await c.appendLogs(run.id, 'late', 0, 'before\n');
      offset += 61 * MIN;
      await runIs(run.id, 'lost');

      const report = await refusal(c.reportRun(run.id, { agent_id: 'late', state: 'finished', exit_code: 0 }));
      expect(report.code).toBe('RUN_LOST');
      expect(report.httpStatus).toBe(410);
      expect(report.message).toContain('--run-lost-after-seconds');
      expect((await refusal(c.reportRun(run.id, { agent_id: 'late', state: 'running' }))).code).toBe('RUN_LOST');
      expect((await refusal(c.appendLogs(run.id, 'late', 7, 'after\n'))).code).toBe('RUN_LOST');
      expect((await c.readLogs(run.id)).data).toBe('before\n');
      expect((await c.getRun(run.id)).status).toBe('lost');

      // Heartbeats and polls are not refused (the agent is alive); their answers name the runs to stop.
      const beat = await c.heartbeat('late', 'RUNNING', 1, [run.id, 'not-a-run']);
      expect(beat.stop_runs).toEqual([run.id]);
      expect(beat.status).toBe('RUNNING');
      const poll = await c.poll('late', { queues: ['default'], max_items: 0, wait_ms: 400, run_ids: [run.id] });
      expect(poll.stop_runs).toEqual([run.id]);
      // An agent holding more runs than SQLite binds in one statement (32,766) is answered all the same.
      const many = Array.from({ length: 40_000 }, (_, i) => `held-${i}`);
      expect((await c.heartbeat('late', 'RUNNING', 1, [...many, run.id])).stop_runs).toEqual([run.id]);
      // Another agent cannot learn about it, and a run that is not lost is not named.
      await register('other');
      const mine = await started('other');
      expect((await c.heartbeat('other', 'RUNNING', 1, [run.id, mine.run.id])).stop_runs).toEqual([]);
    });

    it('requeues a lost run while the queue allows (lost_retries), then ends the item lost', async () => {
      await c.createQueue('default', { name: 'again', resource: 'local-process', lost_retries: 1 });
      expect((await c.listQueues('default')).queues.find((q) => q.name === 'again')?.lost_retries).toBe(1);
      await register('first', 'again');
      const { item, run } = await started('first', 'again');
      offset += 61 * MIN;
      const lost = await runIs(run.id, 'lost');
      expect(lost.error_message).toContain('item requeued (lost retry 1 of 1)');
      expect(await c.getItem(item.id)).toMatchObject({ state: 'pending', lost_runs: 1, not_before: null });

      await register('second', 'again');
      const claim = (await c.poll('second', { queues: ['again'], max_items: 1, wait_ms: 0 })).items[0];
      expect(claim).toMatchObject({ item_id: item.id, attempt: 2 });
      const rerun = await c.ackItem(item.id, 'second');
      expect(rerun.id).not.toBe(run.id);
      // The first agent, back from the dead, cannot touch the item's new attempt through its old run.
      expect((await refusal(c.reportRun(run.id, { agent_id: 'first', state: 'failed' }))).code).toBe('RUN_LOST');
      expect((await c.getItem(item.id)).state).toBe('starting');

      offset += 61 * MIN;
      const again = await runIs(rerun.id, 'lost');
      expect(again.error_message).toContain('lost retries exhausted (queue lost_retries 1)');
      expect(await c.getItem(item.id)).toMatchObject({ state: 'lost', lost_runs: 2 });
    });

    it('does not requeue a lost run a user was cancelling, and bounds lost_retries', async () => {
      await c.createQueue('default', { name: 'cancel', resource: 'local-process', lost_retries: 3 });
      await register('c1', 'cancel');
      const { item, run } = await started('c1', 'cancel');
      await c.cancelRun(run.id);
      offset += 61 * MIN;
      await runIs(run.id, 'lost');
      expect((await c.getItem(item.id)).state).toBe('lost');

      expect((await refusal(c.updateQueue('default', 'cancel', { lost_retries: 11 }))).code).toBe('BAD_REQUEST');
      expect((await c.updateQueue('default', 'cancel', { lost_retries: 0 })).lost_retries).toBe(0);
    });
  });
}

describe('run lease settings', () => {
  it('refuses a run lost timeout that does not outlast the KILLED verdict', async () => {
    const home = mkdtempSync(join(tmpdir(), 'liftoff-lease-'));
    try {
      const e = await refusal(
        startServer({
          host: '127.0.0.1',
          port: 0,
          dataDir: join(home, 'data'),
          env: { HOME: home },
          settings: { heartbeatIntervalMs: 1_000, runLostAfterMs: 3_000 },
        }),
      );
      expect(e.code).toBe('CONFIG_INVALID');
      expect(e.message).toContain('--run-lost-after-seconds');
    } finally {
      rmSync(home, { recursive: true, force: true });
    }
  });
});
