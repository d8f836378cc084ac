import { readdirSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { packDirectory } from '@liftoff/cli';
import { isTerminal, type LiftoffClient } from '@liftoff/core';
import { ChaosProxy, seeded } from '../helpers/chaosProxy.js';
import { codeDir } from '../helpers/jobs.js';
import {
  cleanupAll,
  jobWritableDir,
  onCleanup,
  outputOf,
  sleep,
  startAgent,
  startServer,
  type TestAgent,
  type TestServer,
} from '../helpers/procs.js';

const ITEMS = 24;
const LINES = 40;
/** Heartbeats every 0.5 s (KILLED after 1.5 s), runs of silent agents lost after 4 s. */
const FLAGS = ['--heartbeat-seconds', '0.5', '--run-lost-after-seconds', '4'];

/**
 * Each job notes its start with a file of its own in a shared dir (to count runs per item; jobs run as different
 * users, so they cannot append to one file), then prints numbered lines.
 */
const JOB = `
import { writeFileSync } from 'node:fs';
const [token, starts] = process.argv.slice(2);
writeFileSync(starts + '/' + token + '.' + process.pid, '');
for (let i = 1; i <= ${LINES}; i++) {
  console.log('line ' + i + ' of ' + token);
  await new Promise((r) => setTimeout(r, 25));
}
`;

/**
 * Issue 12's chaos test: agents killed at random (SIGKILL) and replaced under new names, the server killed twice
 * (SIGKILL, restarted on its data dir), and a proxy that drops the answers of a fifth of log uploads and status
 * reports after the server handled them. Every item must end, none may run twice, every finished run's log must hold
 * each line exactly once, and no agent that polls may be left KILLED.
 */
describe('chaos: agents and servers killed, answers lost', () => {
  afterAll(cleanupAll);

  it(`runs ${ITEMS} items to an end, none twice, with whole logs, through kills and lost answers`, async () => {
    const random = seeded(12);
    let server = await startServer({ flags: FLAGS });
    const proxy = new ChaosProxy(server.url, 0.2, random);
    const proxyUrl = await proxy.start();
    onCleanup(() => proxy.close());
    // What agents are given: the proxy's URL, which stays the same across server restarts.
    const viaProxy = (s: TestServer): TestServer => ({
      ...s,
      url: proxyUrl,
      env: { ...s.env, LIFTOFF_BASE_URL: proxyUrl },
    });

    await server.client.createQueue('default', { name: 'chaos', resource: 'local-process' });
    const starts = jobWritableDir();
    const archive = await server.client.uploadArchive(await packDirectory(codeDir({ 'main.mjs': JOB })));
    const tokens = new Map<string, string>();
    for (let n = 0; n < ITEMS; n++) {
      const token = `t${n}`;
      const item = await server.client.push('default', 'chaos', {
        spec: {
          source: { type: 'code', archive_id: archive.id },
          entry_point: ['node', 'main.mjs'],
          args: [token, starts],
        },
      });
      tokens.set(item.id, token);
    }

    let agents: TestAgent[] = [];
    let born = 0;
    const spawnAgent = async () => {
      agents.push(await startAgent(viaProxy(server), { name: `chaos-${born++}`, queues: ['chaos'], maxJobs: 2 }));
    };
    for (let i = 0; i < 3; i++) await spawnAgent();

    // The schedule: every 2 s an agent is killed and replaced; the server is killed at the 3rd and 6th step.
    for (let step = 1; step <= 8; step++) {
      await sleep(2_000);
      const victim = agents[Math.floor(random() * agents.length)];
      if (victim) {
        victim.proc.kill('SIGKILL');
        await victim.proc.exited;
        agents = agents.filter((a) => a !== victim);
      }
      if (step === 3 || step === 6) {
        server.proc.kill('SIGKILL');
        await server.proc.exited;
        server = await startServer({ home: server.home, flags: FLAGS });
        proxy.upstream = server.url;
      }
      await spawnAgent();
    }

    const client: LiftoffClient = server.client;
    const list = async () => (await client.listItems('default', 'chaos', { limit: 100 })).items;
    let items = await list();
    for (const end = Date.now() + 120_000; Date.now() < end && !items.every((i) => isTerminal(i.state));) {
      await sleep(500);
      items = await list().catch(() => items);
    }
    const unended = items.filter((i) => !isTerminal(i.state));
    const runsOf = await Promise.all(unended.map(async (i) => (i.run_id ? client.getRun(i.run_id) : undefined)));
    expect(
      unended.map((i, n) => ({ item: i.id, state: i.state, agent: runsOf[n]?.agent_id, run: runsOf[n]?.status })),
    ).toEqual([]);

    // None ran twice: a job notes its start once per run.
    const started = readdirSync(starts).map((f) => f.split('.')[0] ?? '');
    const counts = new Map<string, number>();
    for (const t of started) counts.set(t, (counts.get(t) ?? 0) + 1);
    expect([...counts.entries()].filter(([, n]) => n > 1)).toEqual([]);

    // Every finished run's output holds each line exactly once, in order.
    const finished = items.filter((i) => i.state === 'finished');
    expect(finished.length).toBeGreaterThan(ITEMS / 2);
    for (const item of finished) {
      const token = tokens.get(item.id) ?? '';
      const output = await outputOf(client, item.run_id ?? '');
      const expected = Array.from({ length: LINES }, (_, i) => `line ${i + 1} of ${token}\n`).join('');
      expect({ item: item.id, output }).toEqual({ item: item.id, output: expected });
    }
    // Whatever did not finish ended for a reason the server gave (its agent was killed: lost), never silently.
    for (const item of items.filter((i) => i.state !== 'finished')) expect(['lost', 'failed']).toContain(item.state);

    // The agents still alive poll: none is left KILLED.
    await sleep(1_500);
    const listed = (await client.listAgents('default')).agents;
    for (const a of agents) expect(listed.find((l) => l.name === a.name)?.status).not.toBe('KILLED');
    expect(proxy.dropped).toBeGreaterThan(0);
    console.log(
      `chaos: ${finished.length} finished, ${items.length - finished.length} lost with their agents, ${proxy.dropped} answers dropped, ${born} agents started`,
    );
  }, 300_000);
});
