import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LiftoffClient, type RegisterAgentBody } from '@liftoff/core';
import { BACKENDS, pgAvailable } from '../../../test/helpers/postgres.js';
import { refusal, startBackendServer, type BackendServer } from './factory.js';

/**
 * Issue 12, point 4: the agent protocol is bound to agent keys. Agent "ra" of team red is registered with agent key
 * A; another agent key of red (B), red's admin and member user keys and even the server admin key try every call of
 * the protocol for ra, its claimed item and its run. Each is refused with AGENT_KEY_MISMATCH and nothing changes;
 * then key A does the same calls and they succeed.
 */
for (const backend of BACKENDS) {
  describe.skipIf(backend === 'postgres' && !pgAvailable)(`agent protocol bound to keys on ${backend}`, () => {
    let b: BackendServer;
    let admin: LiftoffClient;
    let keyA: LiftoffClient;
    let keyB: LiftoffClient;
    let alice: LiftoffClient; // admin key of red's admin
    let bob: LiftoffClient; // member key of a plain member of red
    const ids = { claimed: '', run: '' };
    const client = (key: string) => new LiftoffClient({ baseUrl: b.server.url, apiKey: key });
    const reg = (id: string, over: Partial<RegisterAgentBody> = {}): RegisterAgentBody => ({
      id,
      name: id,
      entity: 'red',
      hostname: 'h',
      queues: ['rq'],
      version: 't',
      max_jobs: 2,
      ...over,
    });
    const spec = { source: { type: 'git' as const, url: 'https://git.example.com/x.git' }, entry_point: ['true'] };
    const snapshot = async () => ({
      items: (await admin.listItems('red', 'rq')).items.map((i) => [i.id, i.state, i.claimed_by]),
      run: await admin.getRun(ids.run),
      logs: (await admin.readLogs(ids.run)).data,
      agents: (await admin.listAgents('red')).agents.map((a) => [a.id, a.status, a.stop_requested, a.current_jobs]),
    });

    beforeAll(async () => {
      b = await startBackendServer(backend);
      admin = b.client;
      await admin.createUser('alice');
      await admin.createUser('bob');
      await admin.createTeam('red');
      await admin.addMember('red', 'alice', 'admin');
      await admin.addMember('red', 'bob', 'member');
      alice = client((await admin.createKey({ name: 'alice', role: 'admin', user: 'alice' })).key);
      bob = client((await admin.createKey({ name: 'bob', role: 'member', user: 'bob' })).key);
      keyA = client((await alice.createKey({ name: 'red-a', role: 'agent', entity: 'red' })).key);
      keyB = client((await alice.createKey({ name: 'red-b', role: 'agent', entity: 'red' })).key);
      await alice.createQueue('red', { name: 'rq', resource: 'local-process' });
      const running = await bob.push('red', 'rq', { spec });
      ids.claimed = (await bob.push('red', 'rq', { spec })).id;
      await keyA.registerAgent(reg('ra'));
      await keyA.poll('ra', { queues: ['rq'], max_items: 2, wait_ms: 0 });
      ids.run = (await keyA.ackItem(running.id, 'ra')).id;
      await keyA.reportRun(ids.run, { agent_id: 'ra', state: 'running' });
      await keyA.appendLogs(ids.run, 'ra', 0, 'line 1\n');
    });
    afterAll(async () => {
      await b?.close();
    });

    type Call = [string, (c: LiftoffClient) => Promise<unknown>];
    /** Every agent-protocol call speaking for ra; the last ones end things, so they come last. */
    const protocol = (): Call[] => [
      ['heartbeat', (c) => c.heartbeat('ra', 'RUNNING', 1)],
      ['poll', (c) => c.poll('ra', { queues: ['rq'], max_items: 0, wait_ms: 0 })],
      ['append logs', (c) => c.appendLogs(ids.run, 'ra', 7, 'line 2\n')],
      ['report running', (c) => c.reportRun(ids.run, { agent_id: 'ra', state: 'running' })],
      [
        'sync',
        (c) =>
          c.sync('ra', {
            heartbeat: { status: 'RUNNING', current_jobs: 1 },
            reports: [{ run_id: ids.run, state: 'running' }],
          }),
      ],
      ['release claimed item', (c) => c.releaseItem(ids.claimed, 'ra')],
      ['report finished', (c) => c.reportRun(ids.run, { agent_id: 'ra', state: 'finished', exit_code: 0 })],
      ['re-register ra', (c) => c.registerAgent(reg('ra'))],
      ['stopped', (c) => c.agentStopped('ra')],
    ];

    it('refuses every protocol call for ra to any key but the one that registered it, changing nothing', async () => {
      const before = await snapshot();
      // A user key may not register at all (FORBIDDEN, whatever the id); every other refusal is the binding's.
      const others: Array<[string, LiftoffClient, boolean]> = [
        ['another agent key of red', keyB, false],
        ["red's admin (user key)", alice, true],
        ['a member of red (user key)', bob, true],
        ['the server admin key', admin, false],
      ];
      for (const [who, c, userKey] of others)
        for (const [what, call] of protocol()) {
          const e = await refusal(call(c));
          const code = userKey && what === 're-register ra' ? 'FORBIDDEN' : 'AGENT_KEY_MISMATCH';
          expect({ who, what, code: e.code }).toEqual({ who, what, code });
        }
      expect(await snapshot()).toEqual(before);
    });

    it('refuses user keys to register agents, and lets agent keys and the server admin key do it', async () => {
      for (const [who, c] of [
        ['alice', () => alice],
        ['bob', () => bob],
      ] as const) {
        const e = await refusal(c().registerAgent(reg(`by-${who}`)));
        expect({ who, code: e.code }).toEqual({ who, code: 'FORBIDDEN' });
        expect(e.message).toContain('needs an agent key');
      }
      expect((await admin.listAgents('red')).agents.map((a) => a.id)).toEqual(['ra']);
      await keyB.registerAgent(reg('rb'));
      await admin.registerAgent(reg('by-server-admin'));
      // Bound the other way round too: key A cannot speak for B's agent.
      expect((await refusal(keyA.heartbeat('rb', 'POLLING', 0))).code).toBe('AGENT_KEY_MISMATCH');
    });

    it('lets only an admin of the entity stop an agent', async () => {
      expect((await refusal(bob.stopAgent('rb', { mode: 'finish' }))).code).toBe('FORBIDDEN');
      expect((await refusal(keyA.stopAgent('rb', { mode: 'finish' }))).code).toBe('FORBIDDEN');
      expect((await admin.listAgents('red')).agents.find((a) => a.id === 'rb')?.stop_requested).toBeNull();
      expect((await alice.stopAgent('rb', { mode: 'finish' })).stop_requested).toBe('finish');
    });

    it('serves every call of the bound key', async () => {
      for (const [, call] of protocol()) await call(keyA);
      const run = await admin.getRun(ids.run);
      expect(run.status).toBe('finished');
      expect((await admin.readLogs(ids.run)).data).toBe('line 1\nline 2\n');
    });

    it('lets another key of the entity take over an agent id once its key is revoked', async () => {
      await keyB.registerAgent(reg('rc'));
      expect((await refusal(keyA.registerAgent(reg('rc')))).code).toBe('AGENT_KEY_MISMATCH');
      await alice.revokeKey('red-b');
      expect((await refusal(keyB.heartbeat('rc', 'POLLING', 0))).code).toBe('UNAUTHENTICATED');
      await keyA.registerAgent(reg('rc'));
      await keyA.heartbeat('rc', 'POLLING', 0);
    });

    it("keeps the embedded agent's binding when its key is minted again (a restart of liftoff up)", async () => {
      const first = client(await b.server.mintAgentKey('embedded-agent', 'default'));
      const body = { ...reg('emb'), entity: 'default', queues: ['default'] };
      await first.registerAgent(body);
      const second = client(await b.server.mintAgentKey('embedded-agent', 'default'));
      expect((await refusal(first.heartbeat('emb', 'POLLING', 0))).code).toBe('UNAUTHENTICATED');
      await second.registerAgent(body);
      await second.heartbeat('emb', 'POLLING', 0);
    });
  });
}
