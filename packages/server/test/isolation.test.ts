import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { create as createTar } from 'tar';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LiftoffClient, LiftoffError, type LaunchSpecInput } from '@liftoff/core';
import { BACKENDS, pgAvailable } from '../../../test/helpers/postgres.js';
import { startBackendServer, type BackendServer } from './factory.js';

/**
 * Acceptance 7 of issue 4: teams and keys. Entity "red" (team of alice) holds a queue, items, a run with logs and
 * an agent; bob (own entity, team "blue") and red's own agent key try every endpoint that could see or change them.
 * Each attempt must be refused with 403 or 404, and afterwards nothing in red has changed.
 */
for (const backend of BACKENDS) {
  describe.skipIf(backend === 'postgres' && !pgAvailable)(`entity isolation on ${backend}`, () => {
    let b: BackendServer;
    let admin: LiftoffClient;
    let alice: LiftoffClient; // admin key of alice, member of red
    let aliceMember: LiftoffClient; // member key of alice
    let bob: LiftoffClient; // admin key of bob, member of blue only
    let redAgent: LiftoffClient; // agent key of red
    let blueAgent: LiftoffClient; // agent key of blue
    const ids = { pending: '', running: '', run: '', archive: '', agent: 'red-agent-1', claimed: '' };

    const client = (key: string) => new LiftoffClient({ baseUrl: b.server.url, apiKey: key });
    const snapshot = async () => {
      const q = await admin.getQueue('red', 'rq');
      return {
        queue: { ...q, pending: q.pending, running: q.running },
        items: (await admin.listItems('red', 'rq')).items.map((i) => [i.id, i.state, i.priority, i.claimed_by]),
        run: await admin.getRun(ids.run),
        logs: (await admin.readLogs(ids.run)).data,
        agents: (await admin.listAgents('red')).agents.map((a) => [a.id, a.status, a.stop_requested, a.queues]),
        entity: await admin.getEntity('red'),
        queues: (await admin.listQueues('red')).queues.map((x) => x.name),
      };
    };

    beforeAll(async () => {
      b = await startBackendServer(backend);
      admin = b.client;
      await admin.createUser('alice');
      await admin.createUser('bob');
      await admin.createTeam('red');
      await admin.createTeam('blue');
      await admin.addMember('red', 'alice');
      await admin.addMember('blue', 'bob');
      alice = client((await admin.createKey({ name: 'alice-admin', role: 'admin', user: 'alice' })).key);
      aliceMember = client((await admin.createKey({ name: 'alice-member', role: 'member', user: 'alice' })).key);
      bob = client((await admin.createKey({ name: 'bob-admin', role: 'admin', user: 'bob' })).key);
      redAgent = client((await alice.createKey({ name: 'red-agents', role: 'agent', entity: 'red' })).key);
      blueAgent = client((await bob.createKey({ name: 'blue-agents', role: 'agent', entity: 'blue' })).key);

      await alice.createQueue('red', { name: 'rq', resource: 'local-process' });
      await bob.createQueue('blue', { name: 'bq', resource: 'local-process' });
      ids.archive = (await aliceMember.uploadArchive(Buffer.from(await tarball()), 'red')).id;
      const spec: LaunchSpecInput = { source: { type: 'code', archive_id: ids.archive }, entry_point: ['true'] };
      ids.running = (await aliceMember.push('red', 'rq', { spec })).id;
      ids.claimed = (await aliceMember.push('red', 'rq', { spec })).id;
      ids.pending = (await aliceMember.push('red', 'rq', { spec })).id;
      await redAgent.registerAgent({
        id: ids.agent,
        name: ids.agent,
        entity: 'red',
        hostname: 'h',
        queues: ['rq'],
        version: 't',
        max_jobs: 2,
      });
      await redAgent.poll(ids.agent, { queues: ['rq'], max_items: 2, wait_ms: 0 });
      const run = await redAgent.ackItem(ids.running, ids.agent);
      ids.run = run.id;
      await redAgent.reportRun(run.id, { agent_id: ids.agent, state: 'running' });
      await redAgent.appendLogs(run.id, ids.agent, 0, 'secret output\n');
      await blueAgent.registerAgent({
        id: 'blue-agent-1',
        name: 'b',
        entity: 'blue',
        hostname: 'h',
        queues: ['bq'],
        version: 't',
        max_jobs: 1,
      });
    });
    afterAll(async () => {
      await b.close();
    });

    it('lets each key do its own job (the setup above succeeded) and reports who it is', async () => {
      const who = await alice.whoami();
      expect(who.role).toBe('admin');
      expect(who.entity.split(',').sort()).toEqual(['alice', 'red']);
      expect(await redAgent.whoami()).toMatchObject({ role: 'agent', entity: 'red' });
      expect((await aliceMember.listItems('red', 'rq')).items).toHaveLength(3);
    });

    type Attempt = [string, (c: LiftoffClient) => Promise<unknown>];
    const spec = (): LaunchSpecInput => ({ source: { type: 'code', archive_id: ids.archive }, entry_point: ['x'] });
    /** Every endpoint, aimed at red's objects. */
    const everyEndpoint = (): Attempt[] => [
      ['GET entity', (c) => c.getEntity('red')],
      ['PATCH entity', (c) => c.updateEntity('red', { max_concurrency: 1 })],
      ['add member', (c) => c.addMember('red', 'bob')],
      ['mint agent key', (c) => c.createKey({ name: 'x', role: 'agent', entity: 'red' })],
      ['list queues', (c) => c.listQueues('red')],
      ['create queue', (c) => c.createQueue('red', { name: 'evil', resource: 'local-process' })],
      ['get queue', (c) => c.getQueue('red', 'rq')],
      ['update queue', (c) => c.updateQueue('red', 'rq', { max_concurrency: 1 })],
      ['delete queue', (c) => c.deleteQueue('red', 'rq')],
      ['list items', (c) => c.listItems('red', 'rq')],
      ['push', (c) => c.push('red', 'rq', { spec: spec() })],
      ['get item', (c) => c.getItem(ids.pending)],
      ['cancel item', (c) => c.cancelItem(ids.pending)],
      ['list runs', (c) => c.listRuns('red')],
      ['get run', (c) => c.getRun(ids.run)],
      ['cancel run', (c) => c.cancelRun(ids.run)],
      ['read logs', (c) => c.readLogs(ids.run)],
      ['download archive', (c) => c.downloadArchive(ids.archive)],
      ['upload archive to red', (c) => tarball().then((t) => c.uploadArchive(Buffer.from(t), 'red'))],
      ['list agents', (c) => c.listAgents('red')],
      ['stop agent', (c) => c.stopAgent(ids.agent, { mode: 'stop-runs' })],
      [
        'register agent in red',
        (c) =>
          c.registerAgent({
            id: 'intruder',
            name: 'i',
            entity: 'red',
            hostname: 'h',
            queues: ['rq'],
            version: 't',
            max_jobs: 1,
          }),
      ],
      [
        're-register red agent',
        (c) =>
          c.registerAgent({
            id: ids.agent,
            name: 'i',
            entity: 'blue',
            hostname: 'h',
            queues: ['bq'],
            version: 't',
            max_jobs: 1,
          }),
      ],
      ['heartbeat red agent', (c) => c.heartbeat(ids.agent, 'POLLING', 0)],
      ['poll as red agent', (c) => c.poll(ids.agent, { queues: ['rq'], max_items: 1, wait_ms: 0 })],
      ['ack red item', (c) => c.ackItem(ids.claimed, ids.agent)],
      ['release red item', (c) => c.releaseItem(ids.claimed, ids.agent)],
      ['report red run', (c) => c.reportRun(ids.run, { agent_id: ids.agent, state: 'failed' })],
      ['append red logs', (c) => c.appendLogs(ids.run, ids.agent, 14, 'forged\n')],
      ['red agent stopped', (c) => c.agentStopped(ids.agent)],
      ['log stream', (c) => fetchStatus(c, `/api/runs/${ids.run}/logs/stream`)],
    ];

    const refusedWith = async (what: string, p: Promise<unknown>) => {
      try {
        await p;
      } catch (e) {
        if (e instanceof LiftoffError && ['FORBIDDEN', 'NOT_FOUND', 'AGENT_KEY_MISMATCH'].includes(e.code)) return;
        throw new Error(`${what}: expected 403/404, got ${String(e)}`);
      }
      throw new Error(`${what}: expected 403/404, but it succeeded`);
    };

    it("refuses every endpoint to another entity's admin key and to its agent key, changing nothing", async () => {
      const before = await snapshot();
      for (const [who, c] of [
        ['bob (admin of blue)', () => bob],
        ["blue's agent key", () => blueAgent],
      ] as const)
        for (const [what, call] of everyEndpoint()) await refusedWith(`${who}: ${what}`, call(c()));
      expect(await snapshot()).toEqual(before);
    });

    it('refuses an agent key and a member key wherever an admin is needed, changing nothing', async () => {
      const before = await snapshot();
      const adminOnly: Attempt[] = [
        ['create queue', (c) => c.createQueue('red', { name: 'evil', resource: 'local-process' })],
        ['update queue', (c) => c.updateQueue('red', 'rq', { prioritization_mode: 'V0' })],
        ['delete queue', (c) => c.deleteQueue('red', 'rq')],
        ['PATCH entity', (c) => c.updateEntity('red', { max_concurrency: 1 })],
        ['add member', (c) => c.addMember('red', 'bob')],
        ['mint agent key', (c) => c.createKey({ name: 'x', role: 'agent', entity: 'red' })],
        ['mint user key', (c) => c.createKey({ name: 'x', role: 'admin', user: 'alice' })],
        ['create user', (c) => c.createUser('mallory')],
        ['create team', (c) => c.createTeam('green')],
        ['create entity', (c) => c.createEntity({ name: 'green' })],
        ['metrics', (c) => fetchStatus(c, '/metrics')],
      ];
      const agentOnlyForbidden: Attempt[] = [
        ['push', (c) => c.push('red', 'rq', { spec: spec() })],
        ['cancel item', (c) => c.cancelItem(ids.pending)],
        ['cancel run', (c) => c.cancelRun(ids.run)],
        ['stop agent', (c) => c.stopAgent(ids.agent, { mode: 'finish' })],
        ['upload archive', (c) => tarball().then((t) => c.uploadArchive(Buffer.from(t), 'red'))],
      ];
      for (const [what, call] of [...adminOnly, ...agentOnlyForbidden])
        await refusedWith(`red agent key: ${what}`, call(redAgent));
      for (const [what, call] of adminOnly) await refusedWith(`alice's member key: ${what}`, call(aliceMember));
      // A team admin administers the team, not the server.
      for (const [what, call] of adminOnly.slice(6)) await refusedWith(`alice's admin key: ${what}`, call(alice));
      expect(await snapshot()).toEqual(before);
    });
  });
}

async function fetchStatus(c: LiftoffClient, path: string): Promise<void> {
  const key = (c as unknown as { apiKey: string }).apiKey;
  const res = await fetch(c.baseUrl + path, { headers: { authorization: `Bearer ${key}` } });
  await res.body?.cancel();
  if (res.ok) return;
  throw new LiftoffError(res.status === 403 ? 'FORBIDDEN' : res.status === 404 ? 'NOT_FOUND' : 'INTERNAL', path);
}

let cached: Uint8Array | undefined;
async function tarball(): Promise<Uint8Array> {
  if (cached) return cached;
  const dir = mkdtempSync(join(tmpdir(), 'liftoff-iso-'));
  writeFileSync(join(dir, 'a.txt'), 'a');
  const chunks: Buffer[] = [];
  for await (const b of createTar({ gzip: true, cwd: dir, portable: true }, ['a.txt']) as AsyncIterable<Buffer>)
    chunks.push(b);
  rmSync(dir, { recursive: true, force: true });
  cached = Buffer.concat(chunks);
  return cached;
}
