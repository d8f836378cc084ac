import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { LiftoffClient, readCredentials } from '@liftoff/core';
import type { BackendServer } from '../factory.js';
import type { Caller, Pool } from './requests.js';

/**
 * The fuzz suite's world. `default` holds the seeded data, made with the server admin key and compared before and
 * after; the fuzzer acts as the team `fuzz` (its admin, a member, its agent), with no key, with a wrong key, and
 * as the server admin for reads only, so nothing it may legitimately do can change the seed.
 */
export interface FuzzWorld {
  keys: Record<Exclude<Caller, 'none'>, string>;
  /** Names and ids the fuzzer draws path parameters from: its own and the seed's. */
  pool: Pool;
  snapshot(): Promise<unknown>;
}

const gitSpec = (n: number) => ({
  spec: {
    source: { type: 'git' as const, url: `https://git.example.com/r${n}.git` },
    entry_point: ['python', 'train.py'],
    run_config: { lr: n / 10, layers: [n, n * 2] },
  },
});

export async function buildWorld(s: BackendServer): Promise<FuzzWorld> {
  const admin = s.client;
  const url = s.server.url;
  const as = (apiKey: string) => new LiftoffClient({ baseUrl: url, apiKey });

  // The seed, in the default entity.
  await admin.createQueue('default', { name: 'seeded', max_concurrency: 3 });
  const seededItems: string[] = [];
  for (let n = 0; n < 4; n++) seededItems.push((await admin.push('default', 'seeded', gitSpec(n))).id);
  await admin.registerAgent({
    id: 'seed-agent',
    name: 'seed-agent',
    entity: 'default',
    hostname: 'seed-host',
    queues: ['seeded'],
    version: 'fuzz',
    max_jobs: 1,
  });
  await admin.poll('seed-agent', { queues: ['seeded'], max_items: 1, wait_ms: 0 });
  const seededRun = await admin.ackItem(seededItems[0] ?? '', 'seed-agent');
  await admin.reportRun(seededRun.id, { agent_id: 'seed-agent', state: 'running' });
  await admin.appendLogs(seededRun.id, 'seed-agent', 0, 'epoch 1 loss 0.5\n');
  await admin.cancelItem(seededItems[3] ?? '');
  // An empty tar (its end marker only).
  const seededArchive = await admin.uploadArchive(gzipSync(Buffer.alloc(1024)), 'default');

  // The fuzzer's own team.
  await admin.createTeam('fuzz');
  await admin.createUser('fz-admin');
  await admin.createUser('fz-member');
  await admin.addMember('fuzz', 'fz-admin');
  await admin.addMember('fuzz', 'fz-member');
  const tenantAdmin = (await admin.createKey({ name: 'fz-admin-key', role: 'admin', user: 'fz-admin' })).key;
  const member = (await admin.createKey({ name: 'fz-member-key', role: 'member', user: 'fz-member' })).key;
  const agent = (await admin.createKey({ name: 'fz-agent-key', role: 'agent', entity: 'fuzz' })).key;
  const ta = as(tenantAdmin);
  await ta.createQueue('fuzz', { name: 'fq' });
  const tenantItem = (await ta.push('fuzz', 'fq', gitSpec(9))).id;
  const ag = as(agent);
  await ag.registerAgent({
    id: 'fz-agent',
    name: 'fz-agent',
    entity: 'fuzz',
    hostname: 'fz-host',
    queues: ['fq'],
    version: 'fuzz',
    max_jobs: 2,
  });
  await ag.poll('fz-agent', { queues: ['fq'], max_items: 1, wait_ms: 0 });
  const tenantRun = await ag.ackItem(tenantItem, 'fz-agent');
  const tenantPending = (await ta.push('fuzz', 'fq', gitSpec(10))).id;

  const snapshot = async () => {
    const queues = await admin.listQueues('default');
    const items = await admin.listItems('default', 'seeded', { limit: 100 });
    const details = await Promise.all(seededItems.map((id) => admin.getItem(id)));
    return {
      entity: await admin.getEntity('default'),
      queues,
      items,
      details,
      runs: await admin.listRuns('default'),
      run: await admin.getRun(seededRun.id),
      logs: await admin.readLogs(seededRun.id),
      agents: (await admin.listAgents('default')).agents.map((a) => ({ ...a, last_heartbeat_at: 0 })),
    };
  };

  return {
    keys: { reader: readerKey(s), tenantAdmin, member, agent, wrong: 'lk_' + 'A'.repeat(43) },
    pool: {
      entity: ['fuzz', 'default', 'fz-admin'],
      queue: ['fq', 'seeded', 'default'],
      user: ['fz-member', 'fz-admin'],
      agents: ['fz-agent', 'seed-agent'],
      runs: [tenantRun.id, seededRun.id],
      items: [tenantItem, tenantPending, ...seededItems],
      'code-archives': [seededArchive.id],
      any: ['00000000-0000-7000-8000-000000000000'],
    },
    snapshot,
  };
}

/** The server admin key, from the credentials file the server wrote on its first start. */
function readerKey(s: BackendServer): string {
  const key = readCredentials(join(s.home, '.config', 'liftoff', 'credentials'))?.api_key;
  if (!key) throw new Error('the server wrote no admin credentials');
  return key;
}
