import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { create as createTar } from 'tar';
import { LiftoffClient, LiftoffError, readCredentials, type LaunchSpecInput } from '@liftoff/core';
import { startServer, type RunningServer } from '@liftoff/server';

let home: string;
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

beforeAll(async () => {
  home = mkdtempSync(join(tmpdir(), 'liftoff-api-'));
  server = await startServer({
    host: '127.0.0.1',
    port: 0,
    dataDir: join(home, 'data'),
    env: { HOME: home },
    settings: { leaseMs: 400, heartbeatIntervalMs: 60_000, pollTimeoutMs: 2_000, reapIntervalMs: 50 },
  });
  const creds = readCredentials(join(home, '.config', 'liftoff', 'credentials'));
  c = new LiftoffClient({ baseUrl: server.url, apiKey: creds?.api_key ?? '' });
  const chunks: Buffer[] = [];
  for await (const b of createTar({ gzip: true, cwd: home, portable: true }, ['.config']) as AsyncIterable<Buffer>)
    chunks.push(b);
  archiveId = (await c.uploadArchive(Buffer.concat(chunks))).id;
});
afterAll(async () => {
  await server.close();
  rmSync(home, { recursive: true, force: true });
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
    expect((await error(c.createQueue('default', { name: '-bad', resource: 'local-process' }))).message).toMatch(
      /body\.name/,
    );
    expect((await error(c.createQueue('default', { name: 'default' }))).code).toBe('CONFLICT');
    const wrongArgs = await error(
      c.createQueue('default', { name: 'q1', resource: 'local-process', resource_args: { kubernetes: {} } }),
    );
    expect(wrongArgs.message).toContain('may only hold a "local-process" section');
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
    expect(item.position).toBe(1);
  });

  it('orders by priority then FIFO and reports positions', async () => {
    await c.createQueue('default', { name: 'prio', resource: 'local-process' });
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
    const got = await c.poll('slow', { queues: ['lease'], max_items: 1, wait_ms: 0 });
    expect(got.items[0]?.item_id).toBe(item.id);
    await sleep(800);
    expect((await c.getItem(item.id)).state).toBe('pending');
    expect((await error(c.ackItem(item.id, 'slow'))).code).toBe('CONFLICT');
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
    await register('intruder', ['logs']);
    expect((await error(c.appendLogs(run.id, 'intruder', 13, 'x'))).code).toBe('FORBIDDEN');
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
