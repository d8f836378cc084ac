import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AGENT_PROTOCOL_VERSION,
  LiftoffClient,
  MIN_AGENT_PROTOCOL_VERSION,
  SYNC_BODY_BYTES,
  SYNC_LIMITS,
  type RegisterAgentBody,
} from '@liftoff/core';
import { BACKENDS, pgAvailable } from '../../../test/helpers/postgres.js';
import { refusal, startBackendServer, type BackendServer } from './factory.js';

const spec = { source: { type: 'git' as const, url: 'https://git.example.com/x.git' }, entry_point: ['true'] };
const b64 = (text: string) => Buffer.from(text, 'utf8').toString('base64');
const MIN = 60_000;

/**
 * Issue 20: the batched agent protocol (POST /api/agents/{id}/sync). Each entry is answered as its single-item call
 * would answer it, and one entry's refusal leaves the others applied; the single-item calls keep working beside it.
 */
for (const backend of BACKENDS) {
  describe.skipIf(backend === 'postgres' && !pgAvailable)(`agent sync on ${backend}`, () => {
    let b: BackendServer;
    let admin: LiftoffClient;
    let agentKey: LiftoffClient;
    let otherKey: LiftoffClient;
    let offset = 0;
    const client = (key: string) => new LiftoffClient({ baseUrl: b.server.url, apiKey: key });
    const reg = (id: string, over: Partial<RegisterAgentBody> = {}): RegisterAgentBody => ({
      id,
      name: id,
      entity: 'default',
      hostname: 'h',
      queues: ['default'],
      version: 't',
      max_jobs: 10,
      ...over,
    });
    /** Pushes `n` items and has `agent` claim them through a poll; returns the item ids. */
    const claimed = async (c: LiftoffClient, agent: string, n: number, queue = 'default', entity = 'default') => {
      const ids: string[] = [];
      for (let i = 0; i < n; i++) ids.push((await admin.push(entity, queue, { spec })).id);
      const got = await c.poll(agent, { queues: [queue], max_items: n, wait_ms: 0 });
      expect(got.items.map((i) => i.item_id).sort()).toEqual([...ids].sort());
      return ids;
    };

    beforeAll(async () => {
      // Runs are declared lost after 60 min of silence; the suite moves the server's clock instead of waiting.
      b = await startBackendServer(
        backend,
        { leaseMs: 600 * MIN, heartbeatIntervalMs: 10 * MIN, runLostAfterMs: 60 * MIN, reapIntervalMs: 50 },
        { now: () => Date.now() + offset },
      );
      admin = b.client;
      agentKey = client((await admin.createKey({ name: 'agent-a', role: 'agent', entity: 'default' })).key);
      otherKey = client((await admin.createKey({ name: 'agent-b', role: 'agent', entity: 'default' })).key);
    });
    afterAll(async () => {
      await b?.close();
    });

    it('announces its protocol version at registration and on GET /api/agent-protocol', async () => {
      const r = await agentKey.registerAgent(reg('announced'));
      expect(r).toMatchObject({
        protocol_version: AGENT_PROTOCOL_VERSION,
        min_agent_protocol_version: MIN_AGENT_PROTOCOL_VERSION,
      });
      expect(await agentKey.agentProtocol()).toEqual({
        protocol_version: AGENT_PROTOCOL_VERSION,
        min_agent_protocol_version: MIN_AGENT_PROTOCOL_VERSION,
      });
    });

    it('serves an agent of protocol 1 through its single-item calls alone', async () => {
      // A protocol-1 agent sends no protocol_version and never calls sync.
      await agentKey.registerAgent(reg('old'));
      await agentKey.heartbeat('old', 'POLLING', 0);
      const [item] = await claimed(agentKey, 'old', 1);
      const run = await agentKey.ackItem(item as string, 'old');
      await agentKey.reportRun(run.id, { agent_id: 'old', state: 'running' });
      expect((await agentKey.appendLogs(run.id, 'old', 0, 'hello\n')).size).toBe(6);
      await agentKey.heartbeat('old', 'RUNNING', 1, [run.id]);
      await agentKey.reportRun(run.id, { agent_id: 'old', state: 'finished', exit_code: 0 });
      expect(await admin.getRun(run.id)).toMatchObject({ status: 'finished', exit_code: 0, log_size: 6 });
      expect((await admin.readLogs(run.id)).data).toBe('hello\n');
    });

    it.skipIf(backend !== 'postgres')(
      "stores a sync's log lines before its reports: while the lines wait, the run is not yet ended",
      async () => {
        await agentKey.registerAgent(reg('ordered'));
        const [item] = await claimed(agentKey, 'ordered', 1);
        const run = (await agentKey.ackItem(item as string, 'ordered')).id;
        // Another session holds log_chunks: the sync's log append waits on it, and so must its report.
        const pg = (await import('pg')).default;
        const holder = new pg.Client({ connectionString: b.databaseUrl });
        await holder.connect();
        try {
          await holder.query('BEGIN');
          await holder.query('LOCK TABLE log_chunks IN EXCLUSIVE MODE');
          const sync = agentKey.sync('ordered', {
            logs: [{ run_id: run, offset: 0, kind: 'note', data_base64: b64('[liftoff] run finished\n') }],
            reports: [{ run_id: run, state: 'finished', exit_code: 0 }],
          });
          await new Promise((r) => setTimeout(r, 500));
          expect((await admin.getRun(run)).status).toBe('starting');
          await holder.query('COMMIT');
          const res = await sync;
          expect(res.logs[0]).toMatchObject({ size: 23 });
          expect(res.reports[0]).toMatchObject({ run: { status: 'finished' } });
        } finally {
          await holder.end();
        }
        expect((await admin.readLogs(run)).data).toBe('[liftoff] run finished\n');
      },
    );

    it('applies a batch of acks, reports, logs and a heartbeat in one request', async () => {
      await agentKey.registerAgent(reg('batch'));
      const items = await claimed(agentKey, 'batch', 3);
      const acked = await agentKey.sync('batch', { acks: items.map((item_id) => ({ item_id })) });
      const runs = acked.acks.map((a) => a.run?.id as string);
      expect(acked.acks.map((a) => [a.item_id, a.run?.status, a.error])).toEqual(
        items.map((i) => [i, 'starting', undefined]),
      );
      // A retried ack (its answer lost) gets the same run back, as the single call does.
      expect((await agentKey.sync('batch', { acks: [{ item_id: items[0] as string }] })).acks[0]?.run?.id).toBe(
        runs[0],
      );
      const res = await agentKey.sync('batch', {
        heartbeat: { status: 'RUNNING', current_jobs: 3, run_ids: runs },
        reports: runs.map((run_id) => ({ run_id, state: 'running' as const })),
        logs: runs.map((run_id, i) => ({ run_id, offset: 0, data_base64: b64(`run ${i}\n`) })),
      });
      expect(res.stop_runs).toEqual([]);
      expect(res.reports.map((r) => r.run?.status)).toEqual(['running', 'running', 'running']);
      expect(res.logs.map((l) => l.size)).toEqual([6, 6, 6]);
      const done = await agentKey.sync('batch', {
        reports: runs.map((run_id) => ({ run_id, state: 'finished' as const, exit_code: 0 })),
        logs: runs.map((run_id) => ({ run_id, offset: 6, kind: 'note' as const, data_base64: b64('[liftoff] end\n') })),
      });
      expect(done.reports.every((r) => r.run?.status === 'finished')).toBe(true);
      for (const [i, id] of runs.entries()) {
        expect(await admin.getRun(id)).toMatchObject({ status: 'finished', agent_id: 'batch' });
        const page = await admin.readLogs(id);
        expect(page.data).toBe(`run ${i}\n[liftoff] end\n`);
        expect(page.notes).toEqual([{ offset: 6, size: 14 }]);
      }
      const agent = (await admin.listAgents('default')).agents.find((a) => a.id === 'batch');
      expect(agent).toMatchObject({ status: 'RUNNING', current_jobs: 3 });
    });

    it("writes each run of a batch with its own report, and each item with its run's state", async () => {
      await agentKey.registerAgent(reg('mixed'));
      const items = await claimed(agentKey, 'mixed', 3);
      const acked = await agentKey.sync('mixed', { acks: items.map((item_id) => ({ item_id })) });
      const [ok, bad, busy] = acked.acks.map((a) => a.run?.id as string) as [string, string, string];
      const res = await agentKey.sync('mixed', {
        reports: [
          { run_id: busy, state: 'running', warning: 'slow disk' },
          { run_id: ok, state: 'finished', exit_code: 0 },
          { run_id: bad, state: 'failed', exit_code: 3, error_stage: 'run', error_message: 'exit 3' },
        ],
      });
      expect(res.reports.map((r) => r.run?.status)).toEqual(['running', 'finished', 'failed']);
      expect(await admin.getRun(ok)).toMatchObject({
        status: 'finished',
        exit_code: 0,
        error_stage: null,
        warning: null,
      });
      expect(await admin.getRun(bad)).toMatchObject({
        status: 'failed',
        exit_code: 3,
        error_stage: 'run',
        error_message: 'exit 3',
      });
      const running = await admin.getRun(busy);
      expect(running).toMatchObject({ status: 'running', exit_code: null, ended_at: null, warning: 'slow disk' });
      expect(running.started_at).not.toBeNull();
      expect((await admin.getRun(ok)).ended_at).not.toBeNull();
      const states = await Promise.all(items.map(async (id) => (await admin.getItem(id)).state));
      const byRun = new Map(acked.acks.map((a) => [a.run?.id, a.item_id]));
      expect(states[items.indexOf(byRun.get(ok) as string)]).toBe('finished');
      expect(states[items.indexOf(byRun.get(bad) as string)]).toBe('failed');
      expect(states[items.indexOf(byRun.get(busy) as string)]).toBe('running');
    });

    it('answers an entry repeated within one batch as the single calls one after the other would', async () => {
      await agentKey.registerAgent(reg('twice'));
      const [item] = (await claimed(agentKey, 'twice', 1)) as [string];
      const acked = await agentKey.sync('twice', { acks: [{ item_id: item }, { item_id: item }] });
      const [first, second] = acked.acks;
      expect(first?.run?.id).toBeDefined();
      expect(second?.run?.id).toBe(first?.run?.id);
      const run_id = first?.run?.id as string;
      // The second report of the run reads what the first wrote: running, then finished with its start kept.
      const res = await agentKey.sync('twice', {
        reports: [
          { run_id, state: 'running' },
          { run_id, state: 'finished', exit_code: 0 },
          { run_id, state: 'failed', exit_code: 1 },
        ],
      });
      expect(res.reports.map((r) => r.run?.status ?? r.error?.code)).toEqual(['running', 'finished', 'CONFLICT']);
      const run = await admin.getRun(run_id);
      expect(run).toMatchObject({ status: 'finished', exit_code: 0 });
      expect(run.started_at).not.toBeNull();
      expect(run.ended_at).not.toBeNull();
    });
    it("refuses another agent's run, a foreign entity's run and a foreign item per entry, applying the rest", async () => {
      await admin.createTeam('blue');
      await admin.createQueue('blue', { name: 'bq', resource: 'local-process' });
      const blueKey = client((await admin.createKey({ name: 'blue-agent', role: 'agent', entity: 'blue' })).key);
      await blueKey.registerAgent(reg('blue-1', { entity: 'blue', queues: ['bq'] }));
      const [blueItem] = await claimed(blueKey, 'blue-1', 1, 'bq', 'blue');
      const blueRun = (await blueKey.ackItem(blueItem as string, 'blue-1')).id;

      await otherKey.registerAgent(reg('neighbour'));
      const [theirItem] = await claimed(otherKey, 'neighbour', 1);
      const theirRun = (await otherKey.ackItem(theirItem as string, 'neighbour')).id;

      await agentKey.registerAgent(reg('mixed'));
      const [mine, unacked] = await claimed(agentKey, 'mixed', 2);
      const myRun = (await agentKey.ackItem(mine as string, 'mixed')).id;
      const res = await agentKey.sync('mixed', {
        acks: [{ item_id: blueItem as string }, { item_id: unacked as string }, { item_id: theirItem as string }],
        reports: [
          { run_id: theirRun, state: 'failed' },
          { run_id: myRun, state: 'running' },
          { run_id: blueRun, state: 'failed' },
          { run_id: 'no-such-run', state: 'failed' },
        ],
        logs: [
          { run_id: theirRun, offset: 0, data_base64: b64('not yours\n') },
          { run_id: myRun, offset: 0, data_base64: b64('mine\n') },
          { run_id: blueRun, offset: 0, data_base64: b64('not yours either\n') },
        ],
      });
      expect(res.acks.map((a) => a.error?.code ?? a.run?.status)).toEqual(['NOT_FOUND', 'starting', 'CONFLICT']);
      // The foreign entity's run and item are answered exactly as unknown ones are.
      expect(res.acks[0]?.error?.message).toBe(`Item "${blueItem}" not found.`);
      expect(res.reports.map((r) => r.error?.code ?? r.run?.status)).toEqual([
        'FORBIDDEN',
        'running',
        'NOT_FOUND',
        'NOT_FOUND',
      ]);
      expect(res.reports[2]?.error?.message).toBe(res.reports[3]?.error?.message.replace('no-such-run', blueRun));
      expect(res.logs.map((l) => l.error?.code ?? l.size)).toEqual(['FORBIDDEN', 5, 'NOT_FOUND']);
      // Nothing of the refused entries landed; the good ones did.
      expect(await admin.getRun(theirRun)).toMatchObject({ status: 'starting', log_size: 0 });
      expect(await admin.getRun(blueRun)).toMatchObject({ status: 'starting', log_size: 0 });
      expect(await admin.getRun(myRun)).toMatchObject({ status: 'running', log_size: 5 });
      expect((await admin.getItem(theirItem as string)).claimed_by).toBe('neighbour');
      expect((await admin.getItem(unacked as string)).state).toBe('starting');

      // The whole request speaks for the agent of its URL: another key cannot send one for it.
      const e = await refusal(otherKey.sync('mixed', { reports: [{ run_id: myRun, state: 'failed' }] }));
      expect(e.code).toBe('AGENT_KEY_MISMATCH');
      expect((await admin.getRun(myRun)).status).toBe('running');
    });

    it('refuses a log at the wrong offset with CONFLICT inside a batch and stores the other logs', async () => {
      await agentKey.registerAgent(reg('offsets'));
      const items = await claimed(agentKey, 'offsets', 2);
      const [r1, r2] = (await agentKey.sync('offsets', { acks: items.map((item_id) => ({ item_id })) })).acks.map(
        (a) => a.run?.id as string,
      );
      await agentKey.sync('offsets', { logs: [{ run_id: r1 as string, offset: 0, data_base64: b64('abc\n') }] });
      const res = await agentKey.sync('offsets', {
        logs: [
          { run_id: r1 as string, offset: 9, data_base64: b64('gap\n') },
          { run_id: r2 as string, offset: 0, data_base64: b64('fine\n') },
          // A retried chunk already stored is accepted again without being stored twice.
          { run_id: r1 as string, offset: 0, data_base64: b64('abc\n') },
        ],
      });
      expect(res.logs[0]?.error?.code).toBe('CONFLICT');
      expect(res.logs[0]?.error?.message).toContain('resend from 4');
      expect(res.logs.slice(1).map((l) => l.size)).toEqual([5, 4]);
      expect((await admin.readLogs(r1 as string)).data).toBe('abc\n');
      expect((await admin.readLogs(r2 as string)).data).toBe('fine\n');
      // Log bytes travel as base64, so a NUL a job printed is kept (a JSON string of the API may not hold one).
      expect(
        (await agentKey.sync('offsets', { logs: [{ run_id: r2 as string, offset: 5, data_base64: b64('a\u0000b') }] }))
          .logs[0]?.size,
      ).toBe(8);
      expect((await admin.readLogs(r2 as string)).data).toBe('fine\na\u0000b');
    });

    it("caps a run's stored log inside a batch as the single upload does", async () => {
      await admin.createQueue('default', { name: 'capped', resource: 'local-process', max_log_bytes: 10 });
      await agentKey.registerAgent(reg('capper', { queues: ['capped'] }));
      const [item] = await claimed(agentKey, 'capper', 1, 'capped');
      const run = (await agentKey.sync('capper', { acks: [{ item_id: item as string }] })).acks[0]?.run?.id as string;
      const res = await agentKey.sync('capper', {
        logs: [{ run_id: run, offset: 0, data_base64: b64('0123456789abcdef\n') }],
      });
      expect(res.logs[0]?.size).toBe(17);
      const data = (await admin.readLogs(run)).data;
      expect(data.startsWith('0123456789[liftoff] log truncated')).toBe(true);
    });

    it('answers RUN_LOST for the lost run of a batch, applies the others, and names it in stop_runs', async () => {
      await agentKey.registerAgent(reg('silent'));
      const [gone] = await claimed(agentKey, 'silent', 1);
      const lostRun = (await agentKey.ackItem(gone as string, 'silent')).id;
      await agentKey.sync('silent', {
        logs: [{ run_id: lostRun, offset: 0, data_base64: b64('before\n') }],
        reports: [{ run_id: lostRun, state: 'running' }],
      });
      offset += 61 * MIN;
      for (let i = 0; i < 400 && (await admin.getRun(lostRun)).status !== 'lost'; i++)
        await new Promise((r) => setTimeout(r, 25));
      expect((await admin.getRun(lostRun)).status).toBe('lost');
      // Back from its silence, the agent got a new item meanwhile and reports both in one batch.
      const [fresh] = await claimed(agentKey, 'silent', 1);
      const res = await agentKey.sync('silent', {
        heartbeat: { status: 'RUNNING', current_jobs: 2, run_ids: [lostRun] },
        acks: [{ item_id: fresh as string }],
        reports: [{ run_id: lostRun, state: 'finished', exit_code: 0 }],
        logs: [{ run_id: lostRun, offset: 7, data_base64: b64('after\n') }],
      });
      expect(res.stop_runs).toEqual([lostRun]);
      expect(res.reports[0]?.error?.code).toBe('RUN_LOST');
      expect(res.logs[0]?.error?.code).toBe('RUN_LOST');
      const freshRun = res.acks[0]?.run?.id as string;
      expect(freshRun).toBeTruthy();
      const next = await agentKey.sync('silent', {
        reports: [
          { run_id: lostRun, state: 'failed' },
          { run_id: freshRun, state: 'running' },
        ],
      });
      expect(next.reports.map((r) => r.error?.code ?? r.run?.status)).toEqual(['RUN_LOST', 'running']);
      expect(await admin.getRun(lostRun)).toMatchObject({ status: 'lost', log_size: 7 });
      expect((await admin.readLogs(lostRun)).data).toBe('before\n');
    });

    it('keeps an agent that said it stopped KILLED when a heartbeat it sent before arrives after', async () => {
      await agentKey.registerAgent(reg('late-beat'));
      await agentKey.agentStopped('late-beat');
      // Both forms of a late heartbeat: the single call, and one batched in a sync (whose answer still comes).
      await agentKey.heartbeat('late-beat', 'POLLING', 0);
      const res = await agentKey.sync('late-beat', { heartbeat: { status: 'POLLING', current_jobs: 0, run_ids: [] } });
      expect(res.stop_runs).toEqual([]);
      const agent = (await admin.listAgents('default')).agents.find((a) => a.id === 'late-beat');
      expect(agent).toMatchObject({ status: 'KILLED', status_reason: 'stopped' });
      // An unknown agent is still told to register again.
      expect((await refusal(agentKey.heartbeat('never-registered', 'POLLING', 0))).code).toBe('NOT_FOUND');
    });

    it('keeps a silent agent alive when it only syncs (a sync is proof of life like a poll)', async () => {
      await agentKey.registerAgent(reg('syncer'));
      const before = (await admin.listAgents('default')).agents.find((a) => a.id === 'syncer')?.last_heartbeat_at;
      offset += 5_000;
      await agentKey.sync('syncer', {});
      const after = (await admin.listAgents('default')).agents.find((a) => a.id === 'syncer')?.last_heartbeat_at;
      expect(after).toBeGreaterThanOrEqual((before ?? 0) + 5_000);
    });

    it('refuses a batch past its bounds: too many entries (400) and too many bytes (413)', async () => {
      await agentKey.registerAgent(reg('greedy'));
      const many = Array.from({ length: SYNC_LIMITS.acks + 1 }, (_, i) => ({ item_id: `i-${i}` }));
      const e = await refusal(agentKey.sync('greedy', { acks: many }));
      expect(e.code).toBe('BAD_REQUEST');
      expect(e.message).toContain('acks');
      const chunk = 'A'.repeat(Math.ceil(SYNC_LIMITS.logEntryBytes / 3) * 4);
      const logs = Array.from({ length: Math.ceil(SYNC_BODY_BYTES / chunk.length) + 1 }, () => ({
        run_id: 'r',
        offset: 0,
        data_base64: chunk,
      }));
      const big = await refusal(agentKey.sync('greedy', { logs }));
      expect(big.code).toBe('PAYLOAD_TOO_LARGE');
      expect(big.httpStatus).toBe(413);
      const tooLong = await refusal(
        agentKey.sync('greedy', { logs: [{ run_id: 'r', offset: 0, data_base64: `${chunk}AAAA` }] }),
      );
      expect(tooLong.code).toBe('BAD_REQUEST');
    });
  });
}
