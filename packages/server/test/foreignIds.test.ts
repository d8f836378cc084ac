import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { create as createTar } from 'tar';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LiftoffClient } from '@liftoff/core';
import { BACKENDS, pgAvailable } from '../../../test/helpers/postgres.js';
import { startBackendServer, type BackendServer } from './factory.js';

/** Which id a route is aimed at: an entity name, or the id of an item, run, agent, archive or key. */
type Target = 'entity' | 'item' | 'run' | 'agent' | 'archive' | 'key';
interface Route {
  name: string;
  target: Target;
  method: string;
  path: (id: string, own: Own) => string;
  body?: (id: string, own: Own) => unknown;
  /** Sent as application/gzip instead of JSON. */
  gzip?: boolean;
  /** A route of the agent protocol (agent keys may call it); else agent keys may only GET. */
  protocol?: boolean;
}
/** The caller's own agent, for protocol calls aimed at a foreign item or run. */
interface Own {
  agent: string;
}

const spec = { source: { type: 'git' as const, url: 'https://git.example.com/x.git' }, entry_point: ['true'] };

/** Every route of packages/server/src/routes/*.ts that takes an id or an entity. */
const ROUTES: Route[] = [
  { name: 'get entity', target: 'entity', method: 'GET', path: (e) => `/api/entities/${e}` },
  {
    name: 'patch entity',
    target: 'entity',
    method: 'PATCH',
    path: (e) => `/api/entities/${e}`,
    body: () => ({ max_concurrency: 1 }),
  },
  { name: 'list members', target: 'entity', method: 'GET', path: (e) => `/api/entities/${e}/members` },
  {
    name: 'add member',
    target: 'entity',
    method: 'POST',
    path: (e) => `/api/entities/${e}/members`,
    body: () => ({ user: 'bob' }),
  },
  { name: 'remove member', target: 'entity', method: 'DELETE', path: (e) => `/api/entities/${e}/members/alice` },
  {
    name: 'mint agent key',
    target: 'entity',
    method: 'POST',
    path: () => '/api/keys',
    body: (e) => ({ name: 'x', role: 'agent', entity: e }),
  },
  { name: 'revoke key', target: 'key', method: 'DELETE', path: (k) => `/api/keys/${k}` },
  { name: 'list queues', target: 'entity', method: 'GET', path: (e) => `/api/entities/${e}/queues` },
  {
    name: 'create queue',
    target: 'entity',
    method: 'POST',
    path: (e) => `/api/entities/${e}/queues`,
    body: () => ({ name: 'evil', resource: 'local-process' }),
  },
  { name: 'get queue', target: 'entity', method: 'GET', path: (e) => `/api/entities/${e}/queues/rq` },
  {
    name: 'update queue',
    target: 'entity',
    method: 'PATCH',
    path: (e) => `/api/entities/${e}/queues/rq`,
    body: () => ({ max_concurrency: 1 }),
  },
  { name: 'delete queue', target: 'entity', method: 'DELETE', path: (e) => `/api/entities/${e}/queues/rq` },
  { name: 'list items', target: 'entity', method: 'GET', path: (e) => `/api/entities/${e}/queues/rq/items` },
  {
    name: 'push',
    target: 'entity',
    method: 'POST',
    path: (e) => `/api/entities/${e}/queues/rq/items`,
    body: () => ({ spec }),
  },
  { name: 'list runs', target: 'entity', method: 'GET', path: (e) => `/api/entities/${e}/runs` },
  { name: 'list agents', target: 'entity', method: 'GET', path: (e) => `/api/entities/${e}/agents` },
  {
    name: 'register agent',
    target: 'entity',
    method: 'POST',
    path: () => '/api/agents',
    body: (e) => ({ id: 'intruder', name: 'i', entity: e, hostname: 'h', queues: ['rq'], version: 't', max_jobs: 1 }),
    protocol: true,
  },
  {
    name: 'upload archive',
    target: 'entity',
    method: 'POST',
    path: (e) => `/api/code-archives?entity=${e}`,
    gzip: true,
  },
  { name: 'get item', target: 'item', method: 'GET', path: (i) => `/api/items/${i}` },
  { name: 'cancel item', target: 'item', method: 'POST', path: (i) => `/api/items/${i}/cancel` },
  {
    name: 'ack item',
    target: 'item',
    method: 'POST',
    path: (i) => `/api/items/${i}/ack`,
    body: (_i, own) => ({ agent_id: own.agent }),
    protocol: true,
  },
  {
    name: 'release item',
    target: 'item',
    method: 'POST',
    path: (i) => `/api/items/${i}/release`,
    body: (_i, own) => ({ agent_id: own.agent }),
    protocol: true,
  },
  { name: 'get run', target: 'run', method: 'GET', path: (r) => `/api/runs/${r}` },
  { name: 'run metrics', target: 'run', method: 'GET', path: (r) => `/api/runs/${r}/metrics` },
  { name: 'cancel run', target: 'run', method: 'POST', path: (r) => `/api/runs/${r}/cancel` },
  {
    name: 'report run',
    target: 'run',
    method: 'POST',
    path: (r) => `/api/runs/${r}/status`,
    body: (_r, own) => ({ agent_id: own.agent, state: 'failed' }),
    protocol: true,
  },
  {
    name: 'append logs',
    target: 'run',
    method: 'POST',
    path: (r, own) => `/api/runs/${r}/logs?offset=0&agent_id=${own.agent}`,
    body: () => 'forged\n',
    protocol: true,
  },
  { name: 'read logs', target: 'run', method: 'GET', path: (r) => `/api/runs/${r}/logs` },
  { name: 'log stream', target: 'run', method: 'GET', path: (r) => `/api/runs/${r}/logs/stream` },
  {
    name: 'heartbeat',
    target: 'agent',
    method: 'POST',
    path: (a) => `/api/agents/${a}/heartbeat`,
    body: () => ({ status: 'POLLING', current_jobs: 0 }),
    protocol: true,
  },
  {
    name: 'poll',
    target: 'agent',
    method: 'POST',
    path: (a) => `/api/agents/${a}/poll`,
    body: () => ({ queues: ['rq'], max_items: 1, wait_ms: 0 }),
    protocol: true,
  },
  { name: 'stop agent', target: 'agent', method: 'POST', path: (a) => `/api/agents/${a}/stop`, body: () => ({}) },
  { name: 'agent stopped', target: 'agent', method: 'POST', path: (a) => `/api/agents/${a}/stopped`, protocol: true },
  { name: 'download archive', target: 'archive', method: 'GET', path: (a) => `/api/code-archives/${a}` },
];

const UNKNOWN: Record<Target, string> = {
  entity: 'nosuch',
  item: '0190aaaa-0000-7000-8000-000000000000',
  run: 'zzzzzzzz',
  agent: 'nosuch-agent',
  archive: '0190bbbb-0000-7000-8000-000000000000',
  key: '0190cccc-0000-7000-8000-000000000000',
};

/**
 * Issue 12, point 5: outside the caller's entities every id is a 404, and a foreign id's answer is byte for byte an
 * unknown id's (the id itself aside). Team red holds a queue, items, a run, an agent, an archive and an agent key;
 * bob (admin of team blue) and blue's agent key aim every route at them and at unknown ids.
 */
for (const backend of BACKENDS) {
  describe.skipIf(backend === 'postgres' && !pgAvailable)(`foreign ids look unknown on ${backend}`, () => {
    let b: BackendServer;
    const red: Record<Target, string> = {
      entity: 'red',
      item: '',
      run: '',
      agent: 'red-agent-1',
      archive: '',
      key: '',
    };
    const keys = { bob: '', blueAgent: '' };
    const own: Own = { agent: 'blue-agent-1' };

    beforeAll(async () => {
      b = await startBackendServer(backend);
      const admin = b.client;
      const client = (key: string) => new LiftoffClient({ baseUrl: b.server.url, apiKey: key });
      await admin.createUser('alice');
      await admin.createUser('bob');
      await admin.createTeam('red');
      await admin.createTeam('blue');
      await admin.addMember('red', 'alice', 'admin');
      await admin.addMember('blue', 'bob', 'admin');
      const alice = client((await admin.createKey({ name: 'alice', role: 'admin', user: 'alice' })).key);
      keys.bob = (await admin.createKey({ name: 'bob', role: 'admin', user: 'bob' })).key;
      const redAgentKey = await alice.createKey({ name: 'red-agents', role: 'agent', entity: 'red' });
      red.key = redAgentKey.id as string;
      const redAgent = client(redAgentKey.key);
      keys.blueAgent = (await client(keys.bob).createKey({ name: 'blue-agents', role: 'agent', entity: 'blue' })).key;
      await alice.createQueue('red', { name: 'rq', resource: 'local-process' });
      await client(keys.bob).createQueue('blue', { name: 'rq', resource: 'local-process' });
      red.archive = (await alice.uploadArchive(await tarball(), 'red')).id;
      const running = await alice.push('red', 'rq', { spec });
      red.item = (await alice.push('red', 'rq', { spec })).id;
      const reg = { hostname: 'h', queues: ['rq'], version: 't', max_jobs: 2 };
      await redAgent.registerAgent({ id: red.agent, name: red.agent, entity: 'red', ...reg });
      await redAgent.poll(red.agent, { queues: ['rq'], max_items: 2, wait_ms: 0 });
      red.run = (await redAgent.ackItem(running.id, red.agent)).id;
      await redAgent.reportRun(red.run, { agent_id: red.agent, state: 'running' });
      await client(keys.blueAgent).registerAgent({ id: own.agent, name: own.agent, entity: 'blue', ...reg });
    });
    afterAll(async () => {
      await b?.close();
    });

    const call = async (key: string, r: Route, id: string) => {
      const body = r.body?.(id, own);
      const res = await fetch(`${b.server.url}${r.path(id, own)}`, {
        method: r.method,
        headers: {
          authorization: `Bearer ${key}`,
          ...(r.gzip
            ? { 'content-type': 'application/gzip' }
            : body === undefined
              ? {}
              : { 'content-type': typeof body === 'string' ? 'text/plain' : 'application/json' }),
        },
        body: r.gzip
          ? new Uint8Array(await tarball())
          : body === undefined
            ? undefined
            : typeof body === 'string'
              ? body
              : JSON.stringify(body),
      });
      return { status: res.status, body: (await res.text()).replaceAll(id, '<ID>') };
    };

    it.each([
      ['bob, admin of another team (user key)', 'bob'],
      ["another team's agent key", 'blueAgent'],
    ] as const)('answers %s exactly as for unknown ids, on every route', async (_who, which) => {
      const key = keys[which];
      const seen: string[] = [];
      for (const r of ROUTES) {
        const foreign = await call(key, r, red[r.target]);
        const unknown = await call(key, r, UNKNOWN[r.target]);
        // Refusals that depend on the caller alone are 403 whatever the id: an agent key on a user route, a user key
        // registering an agent or speaking for its entity's agent (bound to another key). Everything aimed at an id
        // outside the caller's entities is 404.
        const keyOnly =
          which === 'blueAgent'
            ? r.method !== 'GET' && !r.protocol
            : r.name === 'register agent' || (!!r.protocol && (r.target === 'item' || r.target === 'run'));
        expect({ route: r.name, ...foreign }).toEqual({ route: r.name, ...unknown });
        expect({ route: r.name, status: foreign.status }).toEqual({ route: r.name, status: keyOnly ? 403 : 404 });
        seen.push(r.name);
      }
      expect(seen).toHaveLength(ROUTES.length);
    });
  });
}

let cached: Buffer | undefined;
async function tarball(): Promise<Buffer> {
  if (cached) return cached;
  const dir = mkdtempSync(join(tmpdir(), 'liftoff-foreign-'));
  writeFileSync(join(dir, 'a.txt'), 'a');
  const chunks: Buffer[] = [];
  for await (const c of createTar({ gzip: true, cwd: dir, portable: true }, ['a.txt']) as AsyncIterable<Buffer>)
    chunks.push(c);
  rmSync(dir, { recursive: true, force: true });
  cached = Buffer.concat(chunks);
  return cached;
}
