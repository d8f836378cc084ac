import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LiftoffError, readCredentials, type LaunchSpecInput, type LiftoffClient } from '@liftoff/core';
import { BACKENDS, pgAvailable } from '../../../test/helpers/postgres.js';
import { preemptionBackoffMs } from '../src/store/preemption.js';
import { startBackendServer, type BackendServer } from './factory.js';

const git: LaunchSpecInput = { source: { type: 'git', url: 'https://example.com/r.git' }, entry_point: ['true'] };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function error(p: Promise<unknown>): Promise<LiftoffError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof LiftoffError) return e;
    throw e;
  }
  throw new Error('expected the call to fail');
}

describe('preemption backoff', () => {
  it('doubles per retry, caps at an hour, and honours a base above the cap undoubled', () => {
    expect([1, 2, 3].map((n) => preemptionBackoffMs(30, n))).toEqual([30_000, 60_000, 120_000]);
    expect(preemptionBackoffMs(30, 8)).toBe(3_600_000); // 30 × 128 s would be 64 min
    expect(preemptionBackoffMs(30, 100)).toBe(3_600_000);
    expect(preemptionBackoffMs(7_200, 3)).toBe(7_200_000);
    expect(preemptionBackoffMs(0, 5)).toBe(0);
  });
});

/**
 * Requeueing preempted runs, the queue switches agents use, and run warnings, once per backend. The server's clock is
 * this suite's: backoffs pass by moving it forward, and the reaper (every 50 ms) sees the same time.
 */
for (const backend of BACKENDS) {
  describe.skipIf(backend === 'postgres' && !pgAvailable)(`preemption and run warnings on ${backend}`, () => {
    let b: BackendServer;
    let c: LiftoffClient;
    let offset = 0;
    const now = () => Date.now() + offset;

    beforeAll(async () => {
      b = await startBackendServer(
        backend,
        { leaseMs: 600_000, heartbeatIntervalMs: 3_600_000, pollTimeoutMs: 5_000, reapIntervalMs: 50 },
        { now },
      );
      c = b.client;
    });
    afterAll(async () => {
      await b.close();
    });

    const register = (id: string, queue: string) =>
      c.registerAgent({ id, name: id, entity: 'default', hostname: 'h', queues: [queue], version: 't', max_jobs: 10 });
    /** Pushes an item and has `agent` claim and start it; returns the item, the claim and the run. */
    async function started(queue: string, agent: string) {
      const item = await c.push('default', queue, { spec: git });
      const claim = (await c.poll(agent, { queues: [queue], max_items: 1, wait_ms: 0 })).items[0];
      if (claim?.item_id !== item.id) throw new Error(`${agent} did not claim ${item.id}`);
      const run = await c.ackItem(item.id, agent);
      await c.reportRun(run.id, { agent_id: agent, state: 'running' });
      return { item, claim, run };
    }
    /** A poll already waiting when `act` runs: it must be answered with an item well before its 5 s wait ends. */
    async function wokenBy(agent: string, queue: string, act: () => unknown) {
      const waiting = c.poll(agent, { queues: [queue], max_items: 1, wait_ms: 5_000 });
      await sleep(150);
      const t = Date.now();
      await act();
      const got = await waiting;
      expect(Date.now() - t).toBeLessThan(2_000);
      return got.items[0];
    }

    it('requeues a preempted run after a doubling backoff, then fails the item once its retries are used up', async () => {
      await c.createQueue('default', {
        name: 'spot',
        resource: 'local-process',
        preemption_retries: 2,
        preemption_backoff_seconds: 30,
        start_timeout_seconds: 600,
        allow: ['hostNetwork'],
      });
      await register('spot-a', 'spot');
      const { item, claim, run } = await started('spot', 'spot-a');
      const settings = { start_timeout_seconds: 600, allow: ['hostNetwork'] };
      expect(claim).toMatchObject({ attempt: 1, queue_settings: settings });
      expect((await c.getRun(run.id)).queue_settings).toEqual(settings);

      const first = await c.reportRun(run.id, {
        agent_id: 'spot-a',
        state: 'preempted',
        error_message: 'pod liftoff-x evicted: node reclaimed',
      });
      expect(first).toMatchObject({ status: 'preempted', error_message: 'pod liftoff-x evicted: node reclaimed' });
      const endedAt = first.ended_at ?? 0;
      expect(endedAt).toBeGreaterThan(0);
      let it = await c.getItem(item.id);
      expect(it).toMatchObject({
        state: 'pending',
        preemptions: 1,
        not_before: endedAt + 30_000,
        run_id: run.id,
        claimed_by: null,
        claimed_at: null,
        ended_at: null,
        priority: item.priority,
        created_at: item.created_at,
        position: 1,
      });
      expect(it.pending_reason).toEqual({
        code: 'backoff',
        message: `Requeued after preemption 1 of 2; eligible at ${new Date(endedAt + 30_000).toISOString()}.`,
        since: endedAt,
      });
      const listed = (await c.listItems('default', 'spot', { state: 'pending' })).items[0];
      expect(listed?.pending_reason?.code).toBe('backoff');

      // Not claimable during the backoff, though the reaper has run many times.
      await sleep(200);
      expect((await c.poll('spot-a', { queues: ['spot'], max_items: 1, wait_ms: 0 })).items).toEqual([]);
      // When it passes, the reaper makes it claimable and wakes the agent waiting on the queue.
      const second = await wokenBy('spot-a', 'spot', () => (offset += 30_000));
      expect(second).toMatchObject({ item_id: item.id, attempt: 2, queue_settings: settings });
      const run2 = await c.ackItem(item.id, 'spot-a');
      expect(run2.id).not.toBe(run.id);
      const again = await c.reportRun(run2.id, { agent_id: 'spot-a', state: 'preempted' });
      it = await c.getItem(item.id);
      expect(it).toMatchObject({ state: 'pending', preemptions: 2, run_id: run2.id });
      expect(it.not_before).toBe((again.ended_at ?? 0) + 60_000); // doubled
      expect(it.pending_reason?.message).toMatch(/^Requeued after preemption 2 of 2; eligible at /);

      const third = await wokenBy('spot-a', 'spot', () => (offset += 60_000));
      expect(third).toMatchObject({ item_id: item.id, attempt: 3 });
      const run3 = await c.ackItem(item.id, 'spot-a');
      const last = await c.reportRun(run3.id, {
        agent_id: 'spot-a',
        state: 'preempted',
        error_message: 'evicted again',
      });
      expect(last).toMatchObject({
        status: 'preempted',
        error_message: 'evicted again; preempted 3 times, retries exhausted (queue preemption_retries 2)',
      });
      it = await c.getItem(item.id);
      expect(it).toMatchObject({ state: 'failed', preemptions: 3, not_before: null, run_id: run3.id });
      expect(it.ended_at).toBe(last.ended_at);
      expect((await c.getRun(run.id)).status).toBe('preempted');

      const key = readCredentials(b.server.credentialsFile)?.api_key ?? '';
      const metrics = await (
        await fetch(`${b.server.url}/metrics`, { headers: { authorization: `Bearer ${key}` } })
      ).text();
      expect(metrics).toMatch(/^liftoff_run_outcomes\{status="preempted"\} 3$/m);
      expect(metrics).toMatch(/^liftoff_preemptions_total\{outcome="requeued"\} 2$/m);
      expect(metrics).toMatch(/^liftoff_preemptions_total\{outcome="exhausted"\} 1$/m);
    });

    it('requeues at once with a backoff of 0 and hands the item to a waiting agent', async () => {
      await c.createQueue('default', { name: 'spot0', resource: 'local-process', preemption_backoff_seconds: 0 });
      await register('spot0-a', 'spot0');
      await register('spot0-b', 'spot0');
      const { item, run } = await started('spot0', 'spot0-a');
      const next = await wokenBy('spot0-b', 'spot0', () =>
        c.reportRun(run.id, { agent_id: 'spot0-a', state: 'preempted' }),
      );
      expect(next).toMatchObject({ item_id: item.id, attempt: 2 });
      expect(await c.getItem(item.id)).toMatchObject({ state: 'claimed', preemptions: 1, not_before: null });
    });

    it('fails the item at the first preemption when the queue allows no retries', async () => {
      await c.createQueue('default', { name: 'spot-none', resource: 'local-process', preemption_retries: 0 });
      await register('spot-none-a', 'spot-none');
      const { item, run } = await started('spot-none', 'spot-none-a');
      const ended = await c.reportRun(run.id, { agent_id: 'spot-none-a', state: 'preempted' });
      expect(ended.error_message).toBe('preempted 1 time, retries exhausted (queue preemption_retries 0)');
      expect(await c.getItem(item.id)).toMatchObject({ state: 'failed', preemptions: 1 });
    });

    it('cancels an item waiting out its backoff: it ends stopped and never comes back', async () => {
      await c.createQueue('default', { name: 'spot-cancel', resource: 'local-process' });
      await register('spot-cancel-a', 'spot-cancel');
      const { item, run } = await started('spot-cancel', 'spot-cancel-a');
      await c.reportRun(run.id, { agent_id: 'spot-cancel-a', state: 'preempted' });
      expect((await c.getItem(item.id)).not_before).not.toBeNull();
      const cancelled = await c.cancelItem(item.id);
      expect(cancelled).toMatchObject({ state: 'stopped', not_before: null, pending_reason: null });
      offset += 60_000;
      await sleep(200);
      expect((await c.getItem(item.id)).state).toBe('stopped');
      expect((await c.poll('spot-cancel-a', { queues: ['spot-cancel'], max_items: 1, wait_ms: 0 })).items).toEqual([]);
    });

    it('ends a run preempted while it is being cancelled as stopped, without requeueing it', async () => {
      await c.createQueue('default', { name: 'spot-stop', resource: 'local-process' });
      await register('spot-stop-a', 'spot-stop');
      const { item, run } = await started('spot-stop', 'spot-stop-a');
      expect((await c.cancelRun(run.id)).status).toBe('cancelling');
      const ended = await c.reportRun(run.id, { agent_id: 'spot-stop-a', state: 'preempted' });
      expect(ended.status).toBe('stopped');
      expect(await c.getItem(item.id)).toMatchObject({ state: 'stopped', preemptions: 0, not_before: null });
    });

    it('sets, keeps and clears a run warning; a repeated state changes only the warning; cancelling stays', async () => {
      await c.createQueue('default', { name: 'warn', resource: 'local-process' });
      await register('warn-a', 'warn');
      const item = await c.push('default', 'warn', { spec: git });
      await c.poll('warn-a', { queues: ['warn'], max_items: 1, wait_ms: 0 });
      const run = await c.ackItem(item.id, 'warn-a');
      expect(run.warning).toBeNull();
      const report = (body: { state: 'starting' | 'running' | 'stopped'; warning?: string | null }) =>
        c.reportRun(run.id, { agent_id: 'warn-a', ...body });
      const unschedulable =
        'pod liftoff-abc: Unschedulable: 0/1 nodes are available: 1 Insufficient nvidia.com/gpu. preemption: 0/1 nodes are available.';
      expect(await report({ state: 'starting', warning: unschedulable })).toMatchObject({
        status: 'starting',
        started_at: null,
        warning: unschedulable,
      });
      expect((await c.getRun(run.id)).warning).toBe(unschedulable);
      expect((await report({ state: 'starting' })).warning).toBe(unschedulable);
      expect(await report({ state: 'running' })).toMatchObject({ status: 'running', warning: unschedulable });
      expect((await report({ state: 'running', warning: null })).warning).toBeNull();
      expect((await report({ state: 'running', warning: 'ImagePullBackOff: sidecar:1 not found' })).warning).toBe(
        'ImagePullBackOff: sidecar:1 not found',
      );
      expect((await c.listRuns('default', { queue: 'warn' })).runs[0]?.warning).toBe(
        'ImagePullBackOff: sidecar:1 not found',
      );
      const tooLong = await error(report({ state: 'running', warning: 'x'.repeat(4097) }));
      expect(tooLong.code).toBe('BAD_REQUEST');
      expect(tooLong.message).toContain('body.warning');

      expect((await c.cancelRun(run.id)).status).toBe('cancelling');
      expect(await report({ state: 'running', warning: 'pod liftoff-abc: terminating' })).toMatchObject({
        status: 'cancelling',
        warning: 'pod liftoff-abc: terminating',
      });
      // The end keeps the last warning: it may explain the end.
      expect(await report({ state: 'stopped' })).toMatchObject({
        status: 'stopped',
        warning: 'pod liftoff-abc: terminating',
      });
    });

    it('round-trips the queue switches agents use, with their defaults', async () => {
      const q = await c.createQueue('default', {
        name: 'k8s',
        resource: 'kubernetes',
        start_timeout_seconds: 900,
        preemption_retries: 5,
        preemption_backoff_seconds: 10,
        allow: ['hostNetwork', 'privileged'],
      });
      const set = {
        start_timeout_seconds: 900,
        preemption_retries: 5,
        preemption_backoff_seconds: 10,
        allow: ['hostNetwork', 'privileged'],
      };
      expect(q).toMatchObject(set);
      expect(await c.getQueue('default', 'k8s')).toMatchObject(set);
      expect((await c.listQueues('default')).queues.find((x) => x.name === 'k8s')).toMatchObject(set);
      expect(await c.createQueue('default', { name: 'k8s-defaults', resource: 'kubernetes' })).toMatchObject({
        start_timeout_seconds: null,
        preemption_retries: 3,
        preemption_backoff_seconds: 30,
        allow: [],
      });
      // Named allowances: a namespace and a service account the queue's items may choose.
      expect(
        (await c.updateQueue('default', 'k8s', { allow: ['secrets', 'namespace:team-b', 'serviceAccount:trainer'] }))
          .allow,
      ).toEqual(['secrets', 'namespace:team-b', 'serviceAccount:trainer']);
      const updated = await c.updateQueue('default', 'k8s', {
        start_timeout_seconds: null,
        preemption_retries: 0,
        allow: ['hostPath'],
      });
      expect(updated).toMatchObject({
        start_timeout_seconds: null,
        preemption_retries: 0,
        preemption_backoff_seconds: 10,
        allow: ['hostPath'],
      });
      expect(await c.getQueue('default', 'k8s')).toMatchObject(updated);
    });

    it.each([
      ['a repeated allowance', { allow: ['hostPID', 'hostPID'] }, 'allow: each allowance may be listed once'],
      ['an unknown allowance', { allow: ['sudo'] }, 'allow.0'],
      ['a namespace allowance that is not a name', { allow: ['namespace:Kube System'] }, 'allow.0'],
      ['a namespace allowance without a name', { allow: ['namespace:'] }, 'allow.0'],
      ['retries above 100', { preemption_retries: 101 }, 'preemption_retries'],
      ['negative retries', { preemption_retries: -1 }, 'preemption_retries'],
      ['a backoff above a day', { preemption_backoff_seconds: 86_401 }, 'preemption_backoff_seconds'],
      ['a start timeout of 0', { start_timeout_seconds: 0 }, 'start_timeout_seconds'],
      // The field as both answers name it: create's problem lines ("allow.0: …") and update's ("body.allow.0: …").
    ])('refuses %s on create and update, naming the field', async (_label, bad, message) => {
      const name = `bad-${Math.random().toString(36).slice(2, 8)}`;
      const created = await error(c.createQueue('default', { name, resource: 'kubernetes', ...(bad as object) }));
      expect(created.code).toBe('BAD_REQUEST');
      expect(created.message).toContain(message);
      expect((await c.listQueues('default')).queues.map((q) => q.name)).not.toContain(name);
      const updated = await error(c.updateQueue('default', 'k8s-defaults', bad as object));
      expect(updated.message).toContain(message);
    });
  });
}
