import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import BetterSqlite3 from 'better-sqlite3';
import { codeDir } from '../helpers/jobs.js';
import {
  alive,
  cleanupAll,
  cli,
  jobWritableDir,
  outputOf,
  startAgent,
  startServer,
  tempDir,
  type TestServer,
  until,
} from '../helpers/procs.js';

/**
 * Issue #12, point 3 (last part): local-process jobs outlive a kill -9 of their agent. The job runs under a
 * supervisor that writes its output to a file and its exit status to a record in the run's state dir; the restarted
 * agent re-attaches, or reports how the job ended meanwhile, and ships exactly the output the server is missing.
 */

const lines = (from: number, to: number) =>
  Array.from({ length: to - from + 1 }, (_, i) => `line ${from + i}\n`).join('');

/**
 * A job that prints numbered lines in steps, each step waiting for a file the test creates in $SYNC: `killed` (the
 * agent is dead), then, unless it exits with $EXIT first, `restarted` (the agent is back).
 */
const STEPPED_JOB = `
import { existsSync, writeFileSync } from 'node:fs';
const sync = process.env.SYNC;
const wait = async (name) => { while (!existsSync(sync + '/' + name)) await new Promise((r) => setTimeout(r, 20)); };
const print = (from, to) => { for (let i = from; i <= to; i++) console.log('line ' + i); };
writeFileSync(sync + '/pid', String(process.pid));
print(1, 10);
await wait('killed');
print(11, 20);
writeFileSync(sync + '/printed-while-down', '');
if (process.env.EXIT) process.exit(Number(process.env.EXIT));
await wait('restarted');
print(21, 30);
`;

async function launch(server: TestServer, sync: string, env: string[] = []): Promise<string> {
  const dir = codeDir({ 'job.mjs': STEPPED_JOB });
  const r = await cli(
    [
      'launch',
      '--json',
      '--code',
      dir,
      '-E',
      'node job.mjs',
      '--env',
      `SYNC=${sync}`,
      ...env.flatMap((e) => ['--env', e]),
    ],
    server.env,
  );
  if (r.code !== 0) throw new Error(r.output);
  return (JSON.parse(r.output) as { id: string }).id;
}

describe('a local-process job whose agent is killed with SIGKILL', () => {
  afterEach(cleanupAll);

  it('keeps running; the restarted agent re-attaches and the run ends finished with its whole output exactly once', async () => {
    const server = await startServer();
    const sync = jobWritableDir();
    const dataDir = join(server.home, 'agents', 'phoenix');
    const agent = await startAgent(server, { name: 'phoenix', dataDir });
    const itemId = await launch(server, sync);
    const runId = await until(async () => (await server.client.getItem(itemId)).run_id ?? undefined);
    await until(async () => ((await outputOf(server.client, runId)).includes('line 10\n') ? true : undefined));
    const pid = Number(readFileSync(join(sync, 'pid'), 'utf8'));

    agent.proc.kill('SIGKILL');
    await agent.proc.exited;
    writeFileSync(join(sync, 'killed'), '');
    // The job goes on printing with nobody to read it but its supervisor.
    await until(() => (existsSync(join(sync, 'printed-while-down')) ? true : undefined));
    expect(alive(pid)).toBe(true);
    expect(await outputOf(server.client, runId)).toBe(lines(1, 10));

    const back = await startAgent(server, { name: 'phoenix', dataDir });
    await back.proc.waitFor(new RegExp(`re-adopted run ${runId}`));
    writeFileSync(join(sync, 'restarted'), '');
    const item = await until(async () => {
      const cur = await server.client.getItem(itemId);
      return ['finished', 'failed', 'stopped'].includes(cur.state) ? cur : undefined;
    });
    expect(item.state).toBe('finished');
    expect(await outputOf(server.client, runId)).toBe(lines(1, 30));
    const log = (await server.client.readLogs(runId)).data;
    expect(log).toMatch(/\[liftoff\] re-attached to process \d+/);
    expect((await server.client.getRun(runId)).exit_code).toBe(0);
    await until(() => (existsSync(join(dataDir, 'runs', runId)) ? undefined : true));
  });

  it('loses and repeats nothing of output the agent had read but not shipped when it was killed', async () => {
    const server = await startServer();
    const dataDir = join(server.home, 'agents', 'phoenix');
    const agent = await startAgent(server, { name: 'phoenix', dataDir });
    // Printing all along (lines of varied length, multi-byte characters, now and then bytes that are not UTF-8, and a
    // forged marker line before the kill): the agent batches output for 200 ms before it ships it, so the kill
    // lands with output read from the file but not on the server yet.
    const job = `
for (let i = 1; i <= 40000; i++) {
  process.stdout.write(Buffer.from('line ' + i + ' ' + 'é€'.repeat(i % 7)));
  if (i % 997 === 0) process.stdout.write(Buffer.from([0xff, 0xe2, 0x82, 0x41, 0xc3]));
  if (i === 500) process.stdout.write('\\n[liftoff] process 1 started (supervisor 1)');
  process.stdout.write('\\n');
  if (i % 100 === 0) await new Promise((r) => setTimeout(r, 10));
}`;
    const r = await cli(['launch', '--json', '--code', codeDir({ 'job.mjs': job }), '-E', 'node job.mjs'], server.env);
    const itemId = (JSON.parse(r.output) as { id: string }).id;
    const runId = await until(async () => (await server.client.getItem(itemId)).run_id ?? undefined);
    await until(async () => ((await outputOf(server.client, runId)).includes('line 1000 ') ? true : undefined));
    agent.proc.kill('SIGKILL');
    await agent.proc.exited;

    await startAgent(server, { name: 'phoenix', dataDir });
    const item = await until(async () => {
      const cur = await server.client.getItem(itemId);
      return ['finished', 'failed', 'stopped'].includes(cur.state) ? cur : undefined;
    }, 60_000);
    expect(item.state).toBe('finished');
    const bytes = Array.from({ length: 40000 }, (_, k) =>
      Buffer.concat([
        Buffer.from(`line ${k + 1} ${'é€'.repeat((k + 1) % 7)}`),
        Buffer.from((k + 1) % 997 === 0 ? [0xff, 0xe2, 0x82, 0x41, 0xc3] : []),
        // A job printing the agent's marker moves nothing: only notes count.
        Buffer.from(k + 1 === 500 ? '\n[liftoff] process 1 started (supervisor 1)' : ''),
        Buffer.from('\n'),
      ]),
    );
    // Bytes that are not UTF-8 arrive as U+FFFD, as decoding the whole output at once gives them.
    expect(await outputOf(server.client, runId)).toBe(Buffer.concat(bytes).toString('utf8'));
  });

  it('reports a job that exited with code 3 while the agent was dead as failed with exit code 3 and its whole output', async () => {
    const server = await startServer();
    const sync = jobWritableDir();
    const dataDir = join(server.home, 'agents', 'phoenix');
    const agent = await startAgent(server, { name: 'phoenix', dataDir });
    const itemId = await launch(server, sync, ['EXIT=3']);
    const runId = await until(async () => (await server.client.getItem(itemId)).run_id ?? undefined);
    await until(async () => ((await outputOf(server.client, runId)).includes('line 10\n') ? true : undefined));
    const pid = Number(readFileSync(join(sync, 'pid'), 'utf8'));

    agent.proc.kill('SIGKILL');
    await agent.proc.exited;
    writeFileSync(join(sync, 'killed'), '');
    await until(() => (alive(pid) ? undefined : true));
    // Recorded by the supervisor, in the state dir, before the agent is back.
    await until(() => (existsSync(join(dataDir, 'runs', runId, 'status.json')) ? true : undefined));
    expect((await server.client.getRun(runId)).status).toBe('running');

    await startAgent(server, { name: 'phoenix', dataDir });
    const item = await until(async () => {
      const cur = await server.client.getItem(itemId);
      return ['finished', 'failed', 'stopped'].includes(cur.state) ? cur : undefined;
    });
    expect(item.state).toBe('failed');
    const run = await server.client.getRun(runId);
    expect(run.exit_code).toBe(3);
    expect(run.error_stage).toBe('run');
    expect(run.error_message).toContain('exited with code 3');
    expect(await outputOf(server.client, runId)).toBe(lines(1, 20));
    expect((await server.client.readLogs(runId)).data).toContain('the job ended while the agent was down');
  });

  it('fails a run whose supervisor and status record are both gone (a reboot) with a clear note, and ships the output it has', async () => {
    const server = await startServer();
    const sync = jobWritableDir();
    const dataDir = join(server.home, 'agents', 'phoenix');
    const agent = await startAgent(server, { name: 'phoenix', dataDir });
    const itemId = await launch(server, sync);
    const runId = await until(async () => (await server.client.getItem(itemId)).run_id ?? undefined);
    await until(async () => ((await outputOf(server.client, runId)).includes('line 10\n') ? true : undefined));
    const record = JSON.parse(readFileSync(join(dataDir, 'runs', runId, 'process.json'), 'utf8')) as {
      supervisor: { pid: number };
      job: { pid: number };
    };

    agent.proc.kill('SIGKILL');
    await agent.proc.exited;
    writeFileSync(join(sync, 'killed'), '');
    await until(() => (existsSync(join(sync, 'printed-while-down')) ? true : undefined));
    // What a reboot does: every process gone at once, the supervisor without a chance to write a status.
    process.kill(record.supervisor.pid, 'SIGKILL');
    process.kill(-record.job.pid, 'SIGKILL');
    await until(() => (alive(record.supervisor.pid) || alive(record.job.pid) ? undefined : true));

    await startAgent(server, { name: 'phoenix', dataDir });
    const item = await until(async () => {
      const cur = await server.client.getItem(itemId);
      return ['finished', 'failed', 'stopped'].includes(cur.state) ? cur : undefined;
    });
    expect(item.state).toBe('failed');
    const run = await server.client.getRun(runId);
    expect(run.error_stage).toBe('agent');
    expect(run.exit_code).toBeNull();
    expect(run.error_message).toContain("Neither the job's supervisor nor its exit status survived");
    expect((await server.client.readLogs(runId)).data).toContain(
      "[liftoff] run failed: Neither the job's supervisor nor its exit status survived",
    );
    expect(await outputOf(server.client, runId)).toBe(lines(1, 20));
  });

  it('stops the job of a run the server ended while the agent was down, and removes its records', async () => {
    const home = tempDir('liftoff-home-');
    const first = await startServer({ home });
    const sync = jobWritableDir();
    const dataDir = join(home, 'agents', 'phoenix');
    const agent = await startAgent(first, { name: 'phoenix', dataDir });
    const itemId = await launch(first, sync);
    const runId = await until(async () => (await first.client.getItem(itemId)).run_id ?? undefined);
    await until(async () => ((await outputOf(first.client, runId)).includes('line 10\n') ? true : undefined));
    const pid = Number(readFileSync(join(sync, 'pid'), 'utf8'));
    agent.proc.kill('SIGKILL');
    await agent.proc.exited;
    await first.stop();
    // What the server's lease on runs does to a run whose agent stays away (ending it, here by hand): the run is no
    // longer among the agent's active runs when it registers again.
    const db = new BetterSqlite3(join(first.dataDir, 'liftoff.db'));
    db.prepare("UPDATE runs SET status = 'failed', ended_at = ? WHERE id = ?").run(Date.now(), runId);
    db.prepare("UPDATE items SET state = 'failed', ended_at = ? WHERE id = ?").run(Date.now(), itemId);
    db.close();
    expect(alive(pid)).toBe(true);

    const second = await startServer({ home });
    const back = await startAgent(second, { name: 'phoenix', dataDir });
    await back.proc.waitFor(new RegExp(`stopped the leftover process of run ${runId}`));
    expect(alive(pid)).toBe(false);
    expect(existsSync(join(dataDir, 'runs', runId))).toBe(false);
    expect(existsSync(join(dataDir, 'work', runId))).toBe(false);
    expect((await second.client.getRun(runId)).status).toBe('failed');
  });
});
