import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { packDirectory } from '@liftoff/cli';
import { codeDir } from '../helpers/jobs.js';
import {
  alive,
  cleanupAll,
  cli,
  jobWritableDir,
  Proc,
  ROOT,
  sleep,
  startAgent,
  startServer,
  tempDir,
  until,
} from '../helpers/procs.js';

/** Acceptance 5 of the core issue, plus what happens to a run whose agent is killed mid-run. */
describe('agents and servers that die', () => {
  afterEach(cleanupAll);

  it('returns the item of a kill -9ed agent that had claimed but not started it, and marks the agent KILLED', async () => {
    const server = await startServer({ flags: ['--heartbeat-seconds', '0.5'] });
    const c = server.client;
    const fake = new Proc(
      spawn(
        process.execPath,
        [join(ROOT, 'test/helpers/fakeAgent.mjs'), server.url, server.apiKey, 'doomed', 'default'],
        {
          cwd: ROOT,
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      ),
    );
    await fake.waitFor(/registered/);
    const archive = await c.uploadArchive(await packDirectory(codeDir({ 'main.mjs': 'console.log("survived")' })));
    const item = await c.push('default', 'default', {
      spec: { source: { type: 'code', archive_id: archive.id }, entry_point: ['node', 'main.mjs'] },
    });
    await fake.waitFor(new RegExp(`claimed ${item.id}`));
    expect((await c.getItem(item.id)).state).toBe('claimed');

    const rescuer = await startAgent(server, { name: 'rescuer' });
    await sleep(500);
    expect((await c.getItem(item.id)).claimed_by).toBe('doomed'); // the live agent cannot steal a held claim
    fake.kill('SIGKILL');
    await fake.exited;

    const run = await until(async () => {
      const cur = await c.getItem(item.id);
      return cur.run_id && cur.state === 'finished' ? await c.getRun(cur.run_id) : undefined;
    });
    expect(run.agent_id).toBe(rescuer.name);
    expect((await c.readLogs(run.id)).data).toContain('survived');
    const agents = (await c.listAgents('default')).agents;
    expect(agents.find((a) => a.id === 'doomed')).toMatchObject({ status: 'KILLED', status_reason: 'heartbeat lost' });
  });

  it('keeps a pushed item across a server restart', async () => {
    const home = tempDir('liftoff-home-');
    const first = await startServer({ home });
    const archive = await first.client.uploadArchive(
      await packDirectory(codeDir({ 'main.mjs': 'console.log("after restart")' })),
    );
    const item = await first.client.push('default', 'default', {
      spec: { source: { type: 'code', archive_id: archive.id }, entry_point: ['node', 'main.mjs'] },
    });
    await first.stop();

    const second = await startServer({ home });
    expect(second.apiKey).toBe(first.apiKey);
    expect((await second.client.getItem(item.id)).state).toBe('pending');
    await startAgent(second);
    const done = await until(async () => {
      const cur = await second.client.getItem(item.id);
      return cur.state === 'finished' ? cur : undefined;
    });
    expect(done.run_id).toBeTruthy();
    expect((await second.client.readLogs(done.run_id as string)).data).toContain('after restart');
  });

  it('after kill -9 of an agent mid-run, the restarted agent re-adopts the job, and cancelling it stops the job', async () => {
    const server = await startServer();
    const work = jobWritableDir();
    const pidFile = join(work, 'pid');
    const dir = codeDir({
      'main.mjs': `import { writeFileSync } from 'node:fs'; writeFileSync(${JSON.stringify(pidFile)}, String(process.pid)); console.log('working'); setInterval(() => {}, 1000);`,
    });
    const agentData = join(server.home, 'agent-data');
    const agent = await startAgent(server, { name: 'phoenix', dataDir: agentData });
    const launch = await cli(['launch', '--code', dir, '-E', 'node main.mjs'], server.env);
    const itemId = launch.output.trim().split('\n').at(-1) as string;
    const pid = await until(async () => (existsSync(pidFile) ? Number(readFileSync(pidFile, 'utf8')) : undefined));
    expect(alive(pid)).toBe(true);

    agent.proc.kill('SIGKILL');
    await agent.proc.exited;
    expect(alive(pid)).toBe(true); // the job outlived its agent, under its supervisor

    const back = await startAgent(server, { name: 'phoenix', dataDir: agentData });
    const runId = (await server.client.getItem(itemId)).run_id as string;
    await back.proc.waitFor(new RegExp(`re-adopted run ${runId}`));
    expect(alive(pid)).toBe(true);
    await server.client.cancelRun(runId);
    const item = await until(async () => {
      const cur = await server.client.getItem(itemId);
      return ['finished', 'failed', 'stopped'].includes(cur.state) ? cur : undefined;
    });
    expect(item.state).toBe('stopped');
    expect(alive(pid)).toBe(false);
  });
});
