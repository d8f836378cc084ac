import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { packDirectory } from '@liftoff/cli';
import { LiftoffClient, LiftoffError, type Run } from '@liftoff/core';
import { BUSYBOX, containersOfRun, docker, dockerAvailable } from '../helpers/docker.js';
import { codeDir } from '../helpers/jobs.js';
import {
  alive,
  cleanupAll,
  jobWritableDir,
  onCleanup,
  startAgent,
  startServer,
  type TestServer,
  until,
} from '../helpers/procs.js';

/** A job's pid, written into `file`; killed at cleanup if the test left it running (an orphan of a killed agent). */
async function jobPid(file: string): Promise<number> {
  const pid = await until(async () => (existsSync(file) ? Number(readFileSync(file, 'utf8')) : undefined));
  onCleanup(() => {
    if (alive(pid)) process.kill(pid, 'SIGKILL');
  });
  return pid;
}

async function push(server: TestServer, queue: string, main: string) {
  const archive = await server.client.uploadArchive(await packDirectory(codeDir({ 'main.mjs': main })));
  return server.client.push('default', queue, {
    spec: { source: { type: 'code', archive_id: archive.id }, entry_point: ['node', 'main.mjs'] },
  });
}

async function runningRun(server: TestServer, itemId: string): Promise<Run> {
  return until(async () => {
    const item = await server.client.getItem(itemId);
    const run = item.run_id ? await server.client.getRun(item.run_id) : undefined;
    return run?.status === 'running' ? run : undefined;
  });
}

/**
 * The run lease with real agents: heartbeats every 0.5 s (KILLED after 1.5 s of silence) and runs lost after 3 s.
 */
describe('runs of agents that go silent', () => {
  afterEach(cleanupAll);
  const flags = ['--heartbeat-seconds', '0.5', '--run-lost-after-seconds', '3'];

  it('ends the run of a kill -9ed agent lost, reruns it elsewhere (lost_retries 1), and refuses the late report', async () => {
    const server = await startServer({ flags });
    const c = server.client;
    await c.createQueue('default', { name: 'lease', resource: 'local-process', lost_retries: 1 });
    const work = jobWritableDir();
    const first = join(work, 'first');
    const item = await push(
      server,
      'lease',
      `import { existsSync, writeFileSync } from 'node:fs';
if (existsSync(${JSON.stringify(first)})) console.log('second attempt done');
else { writeFileSync(${JSON.stringify(first)}, String(process.pid)); console.log('first attempt'); setInterval(() => {}, 1000); }`,
    );
    const doomed = await startAgent(server, { name: 'doomed', queues: ['lease'] });
    const lostRun = await runningRun(server, item.id);
    expect(lostRun.agent_id).toBe('doomed');
    await jobPid(first);
    doomed.proc.kill('SIGKILL');
    await doomed.proc.exited;

    const rescuer = await startAgent(server, { name: 'rescuer', queues: ['lease'] });
    const done = await until(async () => {
      const cur = await c.getItem(item.id);
      return cur.state === 'finished' ? cur : undefined;
    });
    expect(done.lost_runs).toBe(1);
    expect(done.run_id).not.toBe(lostRun.id);
    const rerun = await c.getRun(done.run_id as string);
    expect(rerun).toMatchObject({ agent_id: rescuer.name, status: 'finished', exit_code: 0 });
    expect((await c.readLogs(rerun.id)).data).toContain('second attempt done');
    const lost = await c.getRun(lostRun.id);
    expect(lost).toMatchObject({ status: 'lost', error_stage: 'agent' });
    expect(lost.error_message).toContain('item requeued (lost retry 1 of 1)');

    // The dead agent's identity speaking up late (its job finished after all) is fenced off.
    const late = await new LiftoffClient({ baseUrl: server.url, apiKey: doomed.key })
      .reportRun(lostRun.id, { agent_id: 'doomed', state: 'finished', exit_code: 0 })
      .then(() => undefined)
      .catch((e: unknown) => e);
    expect(late).toBeInstanceOf(LiftoffError);
    expect((late as LiftoffError).code).toBe('RUN_LOST');
    expect((await c.getRun(lostRun.id)).status).toBe('lost');
    expect((await c.getItem(item.id)).state).toBe('finished');
  });

  it('tells an agent that was frozen past the lease to stop its lost run, and has it POLLING again', async () => {
    const server = await startServer({ flags });
    const c = server.client;
    const work = jobWritableDir();
    const pidFile = join(work, 'pid');
    const item = await push(
      server,
      'default',
      `import { writeFileSync } from 'node:fs'; writeFileSync(${JSON.stringify(pidFile)}, String(process.pid));
setInterval(() => console.log('tick'), 200);`,
    );
    const frozen = await startAgent(server, { name: 'frozen' });
    const run = await runningRun(server, item.id);
    const pid = await jobPid(pidFile);

    frozen.proc.kill('SIGSTOP');
    onCleanup(() => frozen.proc.kill('SIGCONT'));
    await until(async () => ((await c.getRun(run.id)).status === 'lost' ? true : undefined));
    expect((await c.getItem(item.id)).state).toBe('lost');
    frozen.proc.kill('SIGCONT');

    await frozen.proc.waitFor(new RegExp(`run ${run.id} was declared lost by the server`));
    await until(async () => (alive(pid) ? undefined : true));
    await frozen.proc.waitFor(new RegExp(`run ${run.id} stopped after it was declared lost; not reported`));
    const agent = await until(async () => {
      const a = (await c.listAgents('default')).agents.find((x) => x.id === 'frozen');
      return a?.status === 'POLLING' ? a : undefined;
    });
    expect(agent.status_reason).toBeNull();
    expect((await c.getRun(run.id)).status).toBe('lost');
  });
});

describe.skipIf(!dockerAvailable())('containers of runs declared lost', () => {
  afterEach(cleanupAll);
  const flags = ['--heartbeat-seconds', '0.5', '--run-lost-after-seconds', '3'];

  it('a restarted agent removes the container of a run the server declared lost while it was away', async () => {
    const server = await startServer({ flags });
    await server.client.createQueue('default', { name: 'boxes', resource: 'local-container' });
    const dataDir = join(server.home, 'agents', 'boxer');
    const first = await startAgent(server, { name: 'boxer', queues: ['boxes'], dataDir });
    const item = await server.client.push('default', 'boxes', {
      spec: { source: { type: 'image', image: BUSYBOX }, entry_point: ['sh', '-c', 'sleep 600'] },
    });
    const run = await runningRun(server, item.id);
    onCleanup(() => {
      for (const c of containersOfRun(run.id)) docker('rm', '-f', c);
    });
    first.proc.kill('SIGKILL');
    await first.proc.exited;
    await until(async () => ((await server.client.getRun(run.id)).status === 'lost' ? true : undefined));
    expect(containersOfRun(run.id)).toHaveLength(1);

    await startAgent(server, { name: 'boxer', queues: ['boxes'], dataDir });
    await until(async () => (containersOfRun(run.id).length === 0 ? true : undefined));
  }, 120_000);
});
