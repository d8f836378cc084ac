import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { create as createTar } from 'tar';
import { LiftoffClient, LiftoffError, readCredentials, splitLogPage, type LaunchSpecInput } from '@liftoff/core';
import type { RunningServer } from '@liftoff/server';
import { BACKENDS, pgAvailable } from '../../../test/helpers/postgres.js';
import { startBackendServer, type BackendServer } from './factory.js';

let home: string;
let backendServer: BackendServer;
let server: RunningServer;
let c: LiftoffClient;
let archiveId: string;

const spec = (): LaunchSpecInput => ({ source: { type: 'code', archive_id: archiveId }, entry_point: ['true'] });
async function error(p: Promise<unknown>): Promise<LiftoffError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof LiftoffError) return e;
    throw e;
  }
  throw new Error('expected the call to fail');
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function tarOf(dir: string): Promise<Buffer[]> {
  const chunks: Buffer[] = [];
  for await (const b of createTar({ gzip: true, cwd: dir, portable: true }, ['.config']) as AsyncIterable<Buffer>)
    chunks.push(b);
  return chunks;
}

/**
 * The whole server suite, once per backend: the factory starts the server on SQLite or on a fresh PostgreSQL
 * database. Without a reachable PostgreSQL its half is skipped loudly, or fails under LIFTOFF_REQUIRE_SERVICES=1.
 */
for (const backend of BACKENDS) {
  describe.skipIf(backend === 'postgres' && !pgAvailable)(`server API on ${backend}`, () => {
    beforeAll(async () => {
      backendServer = await startBackendServer(backend, {
        // Long enough that a slow machine never expires a claim mid-test; the lease test claims through a
        // second server with a short lease (the lease is set by the server that hands out the claim).
        leaseMs: 30_000,
        heartbeatIntervalMs: 60_000,
        pollTimeoutMs: 2_000,
        reapIntervalMs: 50,
      });
      ({ server, home, client: c } = backendServer);
      const chunks: Buffer[] = [];
      for await (const b of createTar({ gzip: true, cwd: home, portable: true }, ['.config']) as AsyncIterable<Buffer>)
        chunks.push(b);
      archiveId = (await c.uploadArchive(Buffer.concat(chunks))).id;
    });
    afterAll(async () => {
      await backendServer.close();
    });

    describe('authentication and the OpenAPI document', () => {
      it('writes the admin key to the credentials file with mode 0600', async () => {
        const { statSync } = await import('node:fs');
        expect(server.createdAdminKey).toBe(true);
        expect(statSync(server.credentialsFile).mode & 0o777).toBe(0o600);
      });

      it('refuses requests without a key or with a wrong key', async () => {
        const res = await fetch(`${server.url}/api/entities/default/queues`);
        expect(res.status).toBe(401);
        expect(((await res.json()) as { error: { code: string } }).error.code).toBe('UNAUTHENTICATED');
        const wrong = new LiftoffClient({ baseUrl: server.url, apiKey: 'lk_wrong' });
        expect((await error(wrong.listQueues('default'))).message).toContain('Unknown API key');
      });

      it('serves an OpenAPI document describing the API (with a key)', async () => {
        expect((await fetch(`${server.url}/api/openapi.json`)).status).toBe(401);
        const res = await fetch(`${server.url}/api/openapi.json`, {
          headers: { authorization: `Bearer ${readCredentials(server.credentialsFile)?.api_key ?? ''}` },
        });
        const doc = (await res.json()) as { openapi: string; paths: Record<string, Record<string, unknown>> };
        expect(doc.openapi).toMatch(/^3\./);
        expect(Object.keys(doc.paths)).toEqual(
          expect.arrayContaining([
            '/api/entities/{entity}/queues',
            '/api/entities/{entity}/queues/{queue}/items',
            '/api/agents/{id}/poll',
            '/api/runs/{id}/logs',
          ]),
        );
        const push = doc.paths['/api/entities/{entity}/queues/{queue}/items']?.post as { requestBody?: unknown };
        expect(JSON.stringify(push.requestBody)).toContain('entry_point');
      });
    });

    describe('queues and pushes', () => {
      it('validates queue creation with messages naming the field', async () => {
        const badName = await error(c.createQueue('default', { name: '-bad', resource: 'local-process' }));
        expect(badName.code).toBe('BAD_REQUEST');
        expect(badName.message).toMatch(/^ {2}- name: /m);
        expect((await error(c.createQueue('default', { name: 'default' }))).code).toBe('CONFLICT');
        const wrongArgs = await error(
          c.createQueue('default', { name: 'q1', resource: 'local-process', resource_args: { kubernetes: {} } }),
        );
        expect(wrongArgs.message).toContain(
          'resource_args.kubernetes: a local-process queue\'s config holds only its "local-process" section',
        );
        expect((await error(c.listQueues('nobody'))).code).toBe('NOT_FOUND');
      });

      it('refuses unsafe git sources, unknown archives and a resource that does not match the queue', async () => {
        const bad = await error(
          c.push('default', 'default', {
            spec: { source: { type: 'git', url: '--upload-pack=touch /tmp/x' }, entry_point: ['x'] },
          }),
        );
        expect(bad.message).toContain('Refused git URL "--upload-pack=touch /tmp/x"');
        const badRef = await error(
          c.push('default', 'default', {
            spec: { source: { type: 'git', url: 'https://example.com/r.git', ref: '--orphan' }, entry_point: ['x'] },
          }),
        );
        expect(badRef.message).toContain('Refused git ref');
        const missing = await error(
          c.push('default', 'default', { spec: { source: { type: 'code', archive_id: 'nope' }, entry_point: ['x'] } }),
        );
        expect(missing.code).toBe('NOT_FOUND');
        const mismatch = await error(c.push('default', 'default', { spec: { ...spec(), resource: 'kubernetes' } }));
        expect(mismatch.message).toContain('runs local-process jobs');
      });

      it("merges the queue default resource args under the item's and records the author", async () => {
        await c.createQueue('default', {
          name: 'merged',
          resource: 'local-process',
          resource_args: { 'local-process': { a: 1, b: 1 } },
        });
        const item = await c.push('default', 'merged', {
          spec: { ...spec(), resource_args: { 'local-process': { b: 2 } } },
        });
        expect(item.spec.resource_args).toEqual({ 'local-process': { a: 1, b: 2 } });
        expect(item.spec.resource).toBe('local-process');
        expect(item.spec.author).toBe('admin');
        // The push answer skips the position (it costs a count over the backlog); reading the item gives it.
        expect(item.position).toBeNull();
        expect((await c.getItem(item.id)).position).toBe(1);
      });

      it('orders by priority then FIFO and reports positions', async () => {
        await c.createQueue('default', { name: 'prio', resource: 'local-process', prioritization_mode: 'V0' });
        const low = await c.push('default', 'prio', { spec: spec(), priority: 'low' });
        const med1 = await c.push('default', 'prio', { spec: spec() });
        const med2 = await c.push('default', 'prio', { spec: spec() });
        const crit = await c.push('default', 'prio', { spec: spec(), priority: 'critical' });
        const positions = Object.fromEntries(
          (await c.listItems('default', 'prio', { state: 'pending' })).items.map((i) => [i.id, i.position]),
        );
        expect(positions).toEqual({ [crit.id]: 1, [med1.id]: 2, [med2.id]: 3, [low.id]: 4 });
        await c.registerAgent({
          id: 'prio-agent',
          name: 'p',
          entity: 'default',
          hostname: 'h',
          queues: ['prio'],
          version: 't',
          max_jobs: 4,
        });
        const got = await c.poll('prio-agent', { queues: ['prio'], max_items: 4, wait_ms: 0 });
        expect(got.items.map((i) => i.item_id)).toEqual([crit.id, med1.id, med2.id, low.id]);
      });

      it('shares one poll among its queues round-robin, in turn order, and moves on from an emptied queue', async () => {
        for (const name of ['rr-a', 'rr-b', 'rr-c'])
          await c.createQueue('default', { name, resource: 'local-process' });
        const pushTo = async (queue: string, n: number) => {
          const ids: string[] = [];
          for (let i = 0; i < n; i++) ids.push((await c.push('default', queue, { spec: spec() })).id);
          return ids;
        };
        const a = await pushTo('rr-a', 4);
        const b = await pushTo('rr-b', 4);
        const [c1] = await pushTo('rr-c', 1);
        await c.registerAgent({
          id: 'rr-agent',
          name: 'rr',
          entity: 'default',
          hostname: 'h',
          queues: ['rr-a', 'rr-b', 'rr-c'],
          version: 't',
          max_jobs: 8,
        });
        const got = await c.poll('rr-agent', { queues: ['rr-a', 'rr-b', 'rr-c'], max_items: 7, wait_ms: 0 });
        // Turns a, b, c, a, b, (c is empty) a, b: three each from a and b, the one of c, in that order.
        expect(got.items.map((i) => i.item_id)).toEqual([a[0], b[0], c1, a[1], b[1], a[2], b[2]]);
        const rest = await c.poll('rr-agent', { queues: ['rr-a', 'rr-b', 'rr-c'], max_items: 7, wait_ms: 0 });
        expect(rest.items.map((i) => i.item_id)).toEqual([a[3], b[3]]);
      });
    });

    describe('the agent protocol', () => {
      const register = (id: string, queues: string[]) =>
        c.registerAgent({ id, name: id, entity: 'default', hostname: 'h', queues, version: 't', max_jobs: 1 });

      it('refuses to register for queues that do not exist, naming the available ones', async () => {
        const e = await error(register('x', ['nope']));
        expect(e.message).toMatch(/Queue "nope" not found in entity "default"\. Available: .*default/);
      });

      it('hands each item to exactly one of many concurrent pollers', async () => {
        await c.createQueue('default', { name: 'race', resource: 'local-process' });
        const agents = Array.from({ length: 10 }, (_, i) => `racer-${i}`);
        for (const a of agents) await register(a, ['race']);
        const pushed = await Promise.all(Array.from({ length: 60 }, () => c.push('default', 'race', { spec: spec() })));
        const claimed: string[] = [];
        await Promise.all(
          agents.map(async (a) => {
            for (;;) {
              const r = await c.poll(a, { queues: ['race'], max_items: 3, wait_ms: 0 });
              if (!r.items.length) return;
              claimed.push(...r.items.map((i) => i.item_id));
            }
          }),
        );
        expect(claimed).toHaveLength(60);
        expect(new Set(claimed)).toEqual(new Set(pushed.map((p) => p.id)));
      });

      it('returns an unacknowledged claim to the queue when its lease expires, and refuses the late ack', async () => {
        await c.createQueue('default', { name: 'lease', resource: 'local-process' });
        await register('slow', ['lease']);
        const item = await c.push('default', 'lease', { spec: spec() });
        const short = await backendServer.restart({
          leaseMs: 400,
          heartbeatIntervalMs: 60_000,
          pollTimeoutMs: 2_000,
          reapIntervalMs: 50,
        });
        const sc = new LiftoffClient({
          baseUrl: short.url,
          apiKey: readCredentials(server.credentialsFile)?.api_key ?? '',
        });
        const got = await sc.poll('slow', { queues: ['lease'], max_items: 1, wait_ms: 0 });
        expect(got.items[0]?.item_id).toBe(item.id);
        expect(got.items[0]?.lease_expires_at).toBeLessThan(Date.now() + 1_000);
        await sleep(800);
        expect((await c.getItem(item.id)).state).toBe('pending');
        expect((await error(c.ackItem(item.id, 'slow'))).code).toBe('CONFLICT');
        await short.close();
      });

      it('acks idempotently, releases, and requeues the claims of an agent that stops', async () => {
        await c.createQueue('default', { name: 'life', resource: 'local-process' });
        await register('life-agent', ['life']);
        const a = await c.push('default', 'life', { spec: spec() });
        const b = await c.push('default', 'life', { spec: spec() });
        await c.poll('life-agent', { queues: ['life'], max_items: 1, wait_ms: 0 });
        const run1 = await c.ackItem(a.id, 'life-agent');
        const run2 = await c.ackItem(a.id, 'life-agent');
        expect(run2.id).toBe(run1.id);
        await c.poll('life-agent', { queues: ['life'], max_items: 1, wait_ms: 0 });
        expect((await c.getItem(b.id)).state).toBe('claimed');
        await c.releaseItem(b.id, 'life-agent');
        expect((await c.getItem(b.id)).state).toBe('pending');
        await c.poll('life-agent', { queues: ['life'], max_items: 1, wait_ms: 0 });
        await c.agentStopped('life-agent');
        expect((await c.getItem(b.id)).state).toBe('pending');
        expect((await c.listAgents('default')).agents.find((x) => x.id === 'life-agent')?.status).toBe('KILLED');
      });

      it('stores logs idempotently by offset and refuses gaps', async () => {
        await c.createQueue('default', { name: 'logs', resource: 'local-process' });
        await register('logger', ['logs']);
        const item = await c.push('default', 'logs', { spec: spec() });
        await c.poll('logger', { queues: ['logs'], max_items: 1, wait_ms: 0 });
        const run = await c.ackItem(item.id, 'logger');
        expect((await c.appendLogs(run.id, 'logger', 0, 'héllo\n')).size).toBe(7);
        expect((await c.appendLogs(run.id, 'logger', 0, 'héllo\n')).size).toBe(7); // a retried chunk is not stored twice
        expect((await error(c.appendLogs(run.id, 'logger', 20, 'gap'))).code).toBe('CONFLICT');
        await c.appendLogs(run.id, 'logger', 7, 'world\n');
        expect((await c.readLogs(run.id)).data).toBe('héllo\nworld\n');
        expect((await c.readLogs(run.id, 7)).data).toBe('world\n');
        // The agent's notes are chunks of their own kind, told apart by byte range on reads (issue 11, point 10).
        await c.appendLogs(run.id, 'logger', 13, '[liftoff] note\n', 'note');
        await c.appendLogs(run.id, 'logger', 28, '[liftoff] not a note\n');
        const page = await c.readLogs(run.id);
        expect(page.data).toBe('héllo\nworld\n[liftoff] note\n[liftoff] not a note\n');
        expect(page.notes).toEqual([{ offset: 13, size: 15 }]);
        expect((await c.readLogs(run.id, 20)).notes).toEqual([{ offset: 20, size: 8 }]);
        expect(splitLogPage(page).map((p) => p.kind)).toEqual(['output', 'note', 'output']);
        await register('intruder', ['logs']);
        expect((await error(c.appendLogs(run.id, 'intruder', 49, 'x'))).code).toBe('FORBIDDEN');
      });

      it('delivers a cancellation to the agent holding the run and keeps terminal states final', async () => {
        await c.createQueue('default', { name: 'cancel', resource: 'local-process' });
        await register('holder', ['cancel']);
        const item = await c.push('default', 'cancel', { spec: spec() });
        await c.poll('holder', { queues: ['cancel'], max_items: 1, wait_ms: 0 });
        const run = await c.ackItem(item.id, 'holder');
        await c.reportRun(run.id, { agent_id: 'holder', state: 'running' });
        const waiting = c.poll('holder', { queues: ['cancel'], max_items: 0, wait_ms: 10_000 });
        await sleep(200);
        const started = Date.now();
        expect((await c.cancelRun(run.id)).status).toBe('cancelling');
        expect((await waiting).cancel).toEqual([run.id]);
        expect(Date.now() - started).toBeLessThan(1_000);
        await c.reportRun(run.id, { agent_id: 'holder', state: 'running' });
        expect((await c.getRun(run.id)).status).toBe('cancelling');
        await c.reportRun(run.id, { agent_id: 'holder', state: 'stopped' });
        expect((await error(c.reportRun(run.id, { agent_id: 'holder', state: 'finished' }))).code).toBe('CONFLICT');
        expect((await c.getItem(item.id)).state).toBe('stopped');
        expect((await error(c.cancelRun(run.id))).code).toBe('CONFLICT');
      });

      it('refuses to delete a queue with items in flight', async () => {
        await c.createQueue('default', { name: 'busy', resource: 'local-process' });
        await register('busy-agent', ['busy']);
        const item = await c.push('default', 'busy', { spec: spec() });
        await c.poll('busy-agent', { queues: ['busy'], max_items: 1, wait_ms: 0 });
        await c.ackItem(item.id, 'busy-agent');
        expect((await error(c.deleteQueue('default', 'busy'))).message).toContain('has items in flight');
      });
    });

    describe('why is my job pending', () => {
      it('explains each situation: no agent ever, no agent since, all agents busy, items ahead, next', async () => {
        await c.createQueue('default', { name: 'why', resource: 'local-process' });
        const first = await c.push('default', 'why', { spec: spec() });
        const second = await c.push('default', 'why', { spec: spec() });
        expect((await c.getItem(first.id)).pending_reason).toEqual({
          code: 'no_agent',
          message: 'No agent has ever polled queue "why". Start one with "liftoff launch-agent -q why".',
          since: null,
        });

        await c.registerAgent({
          id: 'why-1',
          name: 'why-1',
          entity: 'default',
          hostname: 'h',
          queues: ['why'],
          version: 't',
          max_jobs: 1,
        });
        expect((await c.getItem(first.id)).pending_reason?.code).toBe('next');
        expect((await c.getItem(second.id)).pending_reason).toMatchObject({
          code: 'queued',
          message: '1 item ahead of it in queue "why".',
        });

        await c.heartbeat('why-1', 'RUNNING', 1);
        expect((await c.getItem(first.id)).pending_reason).toMatchObject({
          code: 'agents_busy',
          message: 'All 1 agent serving queue "why" are at max_jobs; it starts when one frees a slot.',
        });
        const listed = (await c.listItems('default', 'why', { state: 'pending' })).items;
        expect(listed.map((i) => i.pending_reason?.code)).toEqual(['agents_busy', 'agents_busy']);

        await c.agentStopped('why-1');
        const gone = (await c.getItem(first.id)).pending_reason;
        expect(gone?.code).toBe('no_agent');
        expect(gone?.since).toBeGreaterThan(0);
        expect(gone?.message).toContain(
          `No agent is polling queue "why" since ${new Date(gone?.since ?? 0).toISOString()}`,
        );
        expect((await c.getItem(first.id)).state).toBe('pending');
      });
    });

    describe('priorities (acceptance 3, server side)', () => {
      it('refuses a non-default priority on a queue without prioritization, with the exact message', async () => {
        await c.createQueue('default', { name: 'flat', resource: 'local-process' });
        const e = await error(c.push('default', 'flat', { spec: spec(), priority: 'high' }));
        expect(e.code).toBe('BAD_REQUEST');
        expect(e.message).toBe(
          'Queue "flat" does not have prioritization enabled, so it only takes the default priority "medium" (got "high"). Push without --priority, or enable it with "liftoff queue update flat --prioritization V0".',
        );
        expect((await c.listItems('default', 'flat')).items).toEqual([]);
        // The default priority is accepted, named or not; enabling the switch lets the others in.
        await c.push('default', 'flat', { spec: spec(), priority: 'medium' });
        expect((await c.updateQueue('default', 'flat', { prioritization_mode: 'V0' })).prioritization_mode).toBe('V0');
        await c.push('default', 'flat', { spec: spec(), priority: 'high' });
      });

      it('ages waiting items one level per aging_seconds, so a low item is not starved', async () => {
        await c.createQueue('default', {
          name: 'aging',
          resource: 'local-process',
          prioritization_mode: 'V0',
          aging_seconds: 2,
        });
        const low = await c.push('default', 'aging', { spec: spec(), priority: 'low' });
        expect((await c.getItem(low.id)).position).toBe(1);
        // low (3) has aged two levels: high (1). It would be critical after 6 s: the margin is for a loaded machine.
        await sleep(4_100);
        const critical = await c.push('default', 'aging', { spec: spec(), priority: 'critical' });
        const high = await c.push('default', 'aging', { spec: spec(), priority: 'high' });
        expect((await c.getItem(critical.id)).position).toBe(1);
        expect((await c.getItem(low.id)).position).toBe(2); // ties with high, pushed earlier
        expect((await c.getItem(high.id)).position).toBe(3);
        await c.registerAgent({
          id: 'aging-agent',
          name: 'a',
          entity: 'default',
          hostname: 'h',
          queues: ['aging'],
          version: 't',
          max_jobs: 3,
        });
        const got = await c.poll('aging-agent', { queues: ['aging'], max_items: 3, wait_ms: 0 });
        expect(got.items.map((i) => i.item_id)).toEqual([critical.id, low.id, high.id]);
      });
    });

    describe('concurrency limits', () => {
      const agent = (id: string, queues: string[], entity = 'default') =>
        c.registerAgent({ id, name: id, entity, hostname: 'h', queues, version: 't', max_jobs: 10 });

      it('never lets racing agents hold more than the queue limit, and frees a slot when a run ends', async () => {
        await c.createQueue('default', { name: 'limited', resource: 'local-process', max_concurrency: 2 });
        const ids = Array.from({ length: 8 }, (_, i) => `lim-${i}`);
        for (const a of ids) await agent(a, ['limited']);
        for (let i = 0; i < 10; i++) await c.push('default', 'limited', { spec: spec() });
        const polls = await Promise.all(
          ids.map((a) => c.poll(a, { queues: ['limited'], max_items: 3, wait_ms: 0 }).then((r) => ({ a, r }))),
        );
        const claimed = polls.flatMap(({ a, r }) => r.items.map((i) => ({ a, id: i.item_id })));
        expect(claimed).toHaveLength(2);
        const pending = (await c.listItems('default', 'limited', { state: 'pending' })).items;
        expect(pending).toHaveLength(8);
        expect(pending[0]?.pending_reason).toMatchObject({
          code: 'queue_limit',
          message:
            'Queue "limited" is at its concurrency limit (2 of 2 running); it starts when one of them ends. Raise it with "liftoff queue update limited --max-concurrency N".',
        });
        // A waiting poller is woken when a run ends and takes the freed slot.
        const [first] = claimed;
        if (!first) throw new Error('nothing claimed');
        const run = await c.ackItem(first.id, first.a);
        const waiter = c.poll('lim-7', { queues: ['limited'], max_items: 1, wait_ms: 5_000 });
        await sleep(200);
        const started = Date.now();
        await c.reportRun(run.id, { agent_id: first.a, state: 'finished', exit_code: 0 });
        expect((await waiter).items).toHaveLength(1);
        expect(Date.now() - started).toBeLessThan(1_000);
      });

      it('applies an entity limit across its queues and explains it', async () => {
        await c.createEntity({ name: 'capped', max_concurrency: 1 });
        await c.createQueue('capped', { name: 'one', resource: 'local-process' });
        await c.createQueue('capped', { name: 'two', resource: 'local-process' });
        await agent('cap-a', ['one', 'two'], 'capped');
        await agent('cap-b', ['one', 'two'], 'capped');
        // Code archives belong to an entity; a git source needs none.
        const git: LaunchSpecInput = {
          source: { type: 'git', url: 'https://example.com/r.git' },
          entry_point: ['true'],
        };
        const a1 = await c.push('capped', 'one', { spec: git });
        const b1 = await c.push('capped', 'two', { spec: git });
        const [ra, rb] = await Promise.all([
          c.poll('cap-a', { queues: ['one', 'two'], max_items: 2, wait_ms: 0 }),
          c.poll('cap-b', { queues: ['two', 'one'], max_items: 2, wait_ms: 0 }),
        ]);
        expect(ra.items.length + rb.items.length).toBe(1);
        const waiting = ra.items.length ? b1 : a1;
        const reason = (await c.getItem(waiting.id)).pending_reason;
        expect(reason?.code).toBe('entity_limit');
        expect(reason?.message).toBe(
          'Entity "capped" is at its concurrency limit (1 of 1 running); it starts when one of them ends. Raise it with "liftoff entity update capped --max-concurrency N".',
        );
        expect((await c.updateEntity('capped', { max_concurrency: null })).max_concurrency).toBeNull();
        expect((await c.getItem(waiting.id)).pending_reason?.code).toBe('next');
      });
    });

    describe('queue config templates (acceptance 5, server side)', () => {
      beforeAll(async () => {
        await c.createQueue('default', {
          name: 'tpl',
          resource: 'local-process',
          resource_args: { 'local-process': { gpus: '{{gpus}}', tier: '{{tier}}', label: 'run-{{tier}}-x' } },
          template_variables: {
            gpus: { schema: { type: 'integer', minimum: 1, maximum: 8, default: 1 } },
            tier: { schema: { type: 'string', enum: ['small', 'large'] } },
          },
        });
      });

      it('substitutes valid values (typed) into the spec agents receive', async () => {
        const item = await c.push('default', 'tpl', { spec: spec(), template_variables: { gpus: '4', tier: 'large' } });
        expect(item.spec.resource_args).toEqual({ 'local-process': { gpus: 4, tier: 'large', label: 'run-large-x' } });
        await c.registerAgent({
          id: 'tpl-agent',
          name: 't',
          entity: 'default',
          hostname: 'h',
          queues: ['tpl'],
          version: 't',
          max_jobs: 1,
        });
        const got = await c.poll('tpl-agent', { queues: ['tpl'], max_items: 1, wait_ms: 0 });
        expect(got.items[0]?.spec.resource_args).toEqual({
          'local-process': { gpus: 4, tier: 'large', label: 'run-large-x' },
        });
        const defaulted = await c.push('default', 'tpl', { spec: spec(), template_variables: { tier: 'small' } });
        expect(defaulted.spec.resource_args['local-process']?.gpus).toBe(1);
      });

      it('keeps each push as its author sent it (before templates and queue args), for re-runs', async () => {
        const single = await c.push('default', 'tpl', {
          spec: spec(),
          template_variables: { gpus: '2', tier: 'small' },
        });
        const { ids } = await c.pushBatch('default', 'tpl', {
          items: [{ spec: { ...spec(), run_config: { lr: 0.1 } }, template_variables: { tier: 'large' } }],
        });
        const [one, batched] = await Promise.all([c.getItem(single.id), c.getItem(ids[0] as string)]);
        expect(one.pushed).toEqual({
          spec: { ...spec(), run_config: {}, env: {}, secret_env: {}, resource_args: {}, args: [] },
          template_variables: { gpus: '2', tier: 'small' },
        });
        expect(one.spec.resource_args['local-process']).toMatchObject({ gpus: 2, tier: 'small' });
        expect(batched.pushed?.spec.run_config).toEqual({ lr: 0.1 });
        expect(batched.pushed?.template_variables).toEqual({ tier: 'large' });
        expect(batched.pushed?.spec.author).toBeUndefined();
        // Lists carry summaries only.
        const listed = (await c.listItems('default', 'tpl')).items.find((i) => i.id === single.id);
        expect(listed && 'pushed' in listed).toBe(false);
      });

      it.each([
        [
          { tier: 'small', zone: 'a' },
          'Template variable "zone" is not defined by queue "tpl"; it defines: gpus, tier.',
        ],
        [{ tier: 'small', gpus: 'two' }, 'Template variable "gpus" must be an integer, got "two".'],
        [{ tier: 'small', gpus: '2.5' }, 'Template variable "gpus" must be an integer, got "2.5".'],
        [{ tier: 'small', gpus: 0 }, 'Template variable "gpus" must be at least 1, got 0.'],
        [{ tier: 'small', gpus: '9' }, 'Template variable "gpus" must be at most 8, got 9.'],
        [{ tier: 'medium' }, 'Template variable "tier" must be one of "small", "large", got "medium".'],
        [
          {},
          'Template variable "tier" of queue "tpl" has no default and needs a value; pass it with --set-var tier=VALUE.',
        ],
      ])('refuses %j at push with the exact message', async (vars, message) => {
        const before = (await c.listItems('default', 'tpl')).items.length;
        const e = await error(c.push('default', 'tpl', { spec: spec(), template_variables: vars }));
        expect(e.code).toBe('BAD_REQUEST');
        expect(e.message).toBe(message);
        expect((await c.listItems('default', 'tpl')).items).toHaveLength(before);
      });

      it('refuses a queue config using an undeclared variable', async () => {
        const e = await error(
          c.createQueue('default', {
            name: 'tpl-bad',
            resource: 'local-process',
            resource_args: { 'local-process': { x: '{{nope}}' } },
          }),
        );
        expect(e.message).toContain('template_variables.nope: {{nope}} is used in the config but not declared');
      });
    });

    describe('retention', () => {
      /** Ends `n` items of queue `q` on a fresh server (finished, with logs) and leaves one pending and one running. */
      async function scenario(b: BackendServer, n: number) {
        const cl = b.client;
        const arch = (await cl.uploadArchive(Buffer.concat(await tarOf(b.home)))).id;
        await cl.createQueue('default', { name: 'r', resource: 'local-process' });
        await cl.registerAgent({
          id: 'ra',
          name: 'ra',
          entity: 'default',
          hostname: 'h',
          queues: ['r'],
          version: 't',
          max_jobs: 100,
        });
        const s = { source: { type: 'code' as const, archive_id: arch }, entry_point: ['true'] };
        const ended: string[] = [];
        const runs: string[] = [];
        for (let i = 0; i < n; i++) {
          const it = await cl.push('default', 'r', { spec: s });
          await cl.poll('ra', { queues: ['r'], max_items: 1, wait_ms: 0 });
          const run = await cl.ackItem(it.id, 'ra');
          await cl.appendLogs(run.id, 'ra', 0, `log ${i}\nLIFTOFF_METRICS {"i": ${i}}\n`);
          await cl.reportRun(run.id, { agent_id: 'ra', state: 'finished', exit_code: 0 });
          ended.push(it.id);
          runs.push(run.id);
          await sleep(5); // distinct end times
        }
        const running = await cl.push('default', 'r', { spec: s });
        await cl.poll('ra', { queues: ['r'], max_items: 1, wait_ms: 0 });
        const runningRun = await cl.ackItem(running.id, 'ra');
        await cl.reportRun(runningRun.id, { agent_id: 'ra', state: 'running' });
        const pending = await cl.push('default', 'r', { spec: s });
        return { ended, runs, running, pending, runningRun };
      }
      const exists = (p: Promise<unknown>) =>
        p.then(
          () => true,
          (e: unknown) => {
            if (e instanceof LiftoffError && e.code === 'NOT_FOUND') return false;
            throw e;
          },
        );

      it('keeps the latest N ended items per queue and never touches pending or running ones', async () => {
        const b = await startBackendServer(backend, {
          retention: { maxAgeMs: null, keepPerQueue: 1 },
          pruneIntervalMs: 100,
        });
        try {
          const sc = await scenario(b, 3);
          await sleep(600);
          const cl = b.client;
          expect(await Promise.all(sc.ended.map((id) => exists(cl.getItem(id))))).toEqual([false, false, true]);
          expect(await Promise.all(sc.runs.map((id) => exists(cl.getRun(id))))).toEqual([false, false, true]);
          expect(await exists(cl.readLogs(sc.runs[0] as string))).toBe(false);
          expect((await cl.readLogs(sc.runs[2] as string)).data).toBe('log 2\nLIFTOFF_METRICS {"i": 2}\n');
          // Metrics go with their runs (foreign keys would refuse deleting the runs otherwise).
          expect(await exists(cl.runMetrics(sc.runs[0] as string))).toBe(false);
          expect((await cl.runMetrics(sc.runs[2] as string)).keys.map((k) => [k.key, k.last.value])).toEqual([
            ['i', 2],
          ]);
          expect((await cl.getItem(sc.running.id)).state).toBe('running');
          expect((await cl.getItem(sc.pending.id)).state).toBe('pending');
        } finally {
          await b.close();
        }
      });

      it('prunes ended items by age, never pending or running ones', async () => {
        const b = await startBackendServer(backend, {
          retention: { maxAgeMs: 200, keepPerQueue: null },
          pruneIntervalMs: 100,
        });
        try {
          const sc = await scenario(b, 2);
          await sleep(800);
          const cl = b.client;
          expect(await Promise.all(sc.ended.map((id) => exists(cl.getItem(id))))).toEqual([false, false]);
          expect((await cl.getItem(sc.running.id)).state).toBe('running');
          expect((await cl.getItem(sc.pending.id)).state).toBe('pending');
          await cl.reportRun(sc.runningRun.id, { agent_id: 'ra', state: 'finished', exit_code: 0 });
          await sleep(800);
          expect(await exists(cl.getItem(sc.running.id))).toBe(false);
          expect((await cl.getItem(sc.pending.id)).state).toBe('pending');
        } finally {
          await b.close();
        }
      });
    });

    describe('metrics and request ids', () => {
      it('serves Prometheus metrics to a server admin key only', async () => {
        expect((await fetch(`${server.url}/metrics`)).status).toBe(401);
        const key = readCredentials(server.credentialsFile)?.api_key ?? '';
        const res = await fetch(`${server.url}/metrics`, { headers: { authorization: `Bearer ${key}` } });
        expect(res.status).toBe(200);
        expect(res.headers.get('content-type')).toContain('text/plain; version=0.0.4');
        const text = await res.text();
        expect(text).toMatch(/^# TYPE liftoff_queue_depth gauge$/m);
        expect(text).toMatch(/^liftoff_queue_depth\{entity="default",queue="prio"\} \d+$/m);
        expect(text).toMatch(/^liftoff_items\{state="pending"\} [1-9]\d*$/m);
        expect(text).toMatch(/^liftoff_agents\{status="POLLING"\} [1-9]\d*$/m);
        expect(text).toMatch(/^liftoff_run_outcomes\{status="stopped"\} [1-9]\d*$/m);
        expect(text).toMatch(/^# TYPE liftoff_dispatch_latency_seconds histogram$/m);
        const count = Number(/^liftoff_dispatch_latency_seconds_count (\d+)$/m.exec(text)?.[1]);
        expect(count).toBeGreaterThan(0);
        expect(text).toContain(`liftoff_dispatch_latency_seconds_bucket{le="+Inf"} ${count}`);
      });

      it('gives every response a request id, echoing the caller’s', async () => {
        const key = readCredentials(server.credentialsFile)?.api_key ?? '';
        const mine = await fetch(`${server.url}/api/whoami`, {
          headers: { authorization: `Bearer ${key}`, 'x-request-id': 'trace-123' },
        });
        expect(mine.headers.get('x-request-id')).toBe('trace-123');
        const generated = await fetch(`${server.url}/api/whoami`, { headers: { authorization: `Bearer ${key}` } });
        expect(generated.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
      });
    });

    describe('schema migrations', () => {
      it('refuses to start on a database with migrations this version does not know', async () => {
        const other = await startBackendServer(backend);
        try {
          await other.server.close();
          await other.exec(
            `INSERT INTO kysely_migration (name, timestamp) VALUES ('9999_from_the_future', '2099-01-01T00:00:00.000Z')`,
          );
          const e = await error(other.restart());
          expect(e.code).toBe('CONFLICT');
          expect(e.message).toBe(
            'The database has schema migrations this Liftoff does not know (9999_from_the_future): it was written by a newer version. Upgrade Liftoff.',
          );
        } finally {
          await other.close();
        }
      });

      it('starts again on its own database without migrating twice', async () => {
        const again = await backendServer.restart();
        const client = new LiftoffClient({
          baseUrl: again.url,
          apiKey: readCredentials(server.credentialsFile)?.api_key ?? '',
        });
        expect((await client.listQueues('default')).queues.map((q) => q.name)).toContain('default');
        await again.close();
      });
    });
  });
}
