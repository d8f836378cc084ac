import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { codeDir } from '../helpers/jobs.js';
import { alive, cleanupAll, cli, jobWritableDir, outputOf, startAgent, startServer, until } from '../helpers/procs.js';
import type { TestServer } from '../helpers/procs.js';

/**
 * Issue #20: the local-process jobs of an agent share one supervisor (packages/agent/src/runners/supervisor.ts)
 * instead of one each. What sharing adds: a supervisor killed from outside takes the records of all of the agent's
 * running jobs. Their runs must still end (failed, with the reason), their jobs must not stay behind, and the next
 * job gets a new supervisor. And the supervisor must not outlive the agent once nothing needs it.
 */

const LONG_JOB = `
import { writeFileSync } from 'node:fs';
writeFileSync(process.env.SYNC + '/pid-' + process.env.N, String(process.pid));
console.log('job ' + process.env.N + ' up');
setInterval(() => {}, 1000);
`;

async function launch(server: TestServer, entry: string, env: string[]): Promise<string> {
  const dir = codeDir({ 'job.mjs': LONG_JOB, 'hi.mjs': "console.log('hi');" });
  const r = await cli(
    ['launch', '--json', '--code', dir, '-E', entry, ...env.flatMap((e) => ['--env', e])],
    server.env,
  );
  if (r.code !== 0) throw new Error(r.output);
  return (JSON.parse(r.output) as { id: string }).id;
}

const ended = (server: TestServer, itemId: string) =>
  until(async () => {
    const cur = await server.client.getItem(itemId);
    return ['finished', 'failed', 'stopped'].includes(cur.state) ? cur : undefined;
  }, 60_000);

type ProcessRecord = { supervisor: { pid: number }; job: { pid: number } };
const recordOf = (dataDir: string, runId: string) =>
  JSON.parse(readFileSync(join(dataDir, 'runs', runId, 'process.json'), 'utf8')) as ProcessRecord;

/** The pid of the supervisor of this data dir (its argv names the dir), if one runs. */
function supervisorPid(dataDir: string): number | undefined {
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const argv = readFileSync(`/proc/${e}/cmdline`, 'utf8').split('\0');
      // Node's own flags come before the script (SUPERVISOR_NODE_FLAGS).
      const script = argv.findIndex((a) => a.endsWith('supervisor.js'));
      if (script > 0 && argv[script + 1] === join(dataDir, 'supervisor') && alive(Number(e))) {
        return Number(e);
      }
    } catch {
      // Gone meanwhile.
    }
  }
  return undefined;
}

/** The threads of a node started with default flags, once an fsync has started its libuv thread pool. */
async function threadsOfDefaultNode(): Promise<number> {
  const code = `const fs = require('node:fs');
    const fd = fs.openSync(process.execPath, 'r');
    fs.fsync(fd, () => { console.log(fs.readdirSync('/proc/self/task').length); process.exit(0); });`;
  const { stdout } = await promisify(execFile)(process.execPath, ['-e', code]);
  return Number(stdout.trim());
}

describe("the agent's job supervisor", () => {
  afterEach(cleanupAll);

  it('killed under a live agent: every run it held ends failed, its jobs are stopped, the next job gets a new one', async () => {
    const server = await startServer();
    const sync = jobWritableDir();
    const dataDir = join(server.home, 'agents', 'shared');
    await startAgent(server, { name: 'shared', dataDir, maxJobs: 2 });
    const items = [
      await launch(server, 'node job.mjs', [`SYNC=${sync}`, 'N=1']),
      await launch(server, 'node job.mjs', [`SYNC=${sync}`, 'N=2']),
    ];
    const runs: string[] = [];
    for (const itemId of items) {
      const runId = await until(async () => (await server.client.getItem(itemId)).run_id ?? undefined);
      runs.push(runId);
    }
    for (const [i, runId] of runs.entries()) {
      await until(async () => ((await outputOf(server.client, runId)).includes(`job ${i + 1} up`) ? true : undefined));
    }
    const [first, second] = runs.map((r) => recordOf(dataDir, r)) as [ProcessRecord, ProcessRecord];
    // One supervisor for both jobs.
    expect(second.supervisor.pid).toBe(first.supervisor.pid);
    expect(alive(first.job.pid) && alive(second.job.pid)).toBe(true);

    process.kill(first.supervisor.pid, 'SIGKILL');

    for (const itemId of items) {
      const item = await ended(server, itemId);
      expect(item.state).toBe('failed');
      const run = await server.client.getRun(item.run_id as string);
      expect(run.error_message).toContain("The job's supervisor ended without recording how the job ended");
    }
    await until(() => (alive(first.job.pid) || alive(second.job.pid) ? undefined : true));

    const after = await launch(server, 'node hi.mjs', []);
    const item = await ended(server, after);
    expect(item.state).toBe('finished');
    expect(await outputOf(server.client, item.run_id as string)).toBe('hi\n');
    const fresh = supervisorPid(dataDir);
    expect(fresh).toBeDefined();
    expect(fresh).not.toBe(first.supervisor.pid);
  });

  it('ends once its agent has stopped and no job is left', async () => {
    const server = await startServer();
    const dataDir = join(server.home, 'agents', 'brief');
    const agent = await startAgent(server, { name: 'brief', dataDir });
    const itemId = await launch(server, 'node hi.mjs', []);
    const item = await ended(server, itemId);
    expect(item.state).toBe('finished');
    const pid = supervisorPid(dataDir); // still serving its agent between jobs
    expect(pid).toBeDefined();
    // Fewer threads than a node with default flags that has used its thread pool as the supervisor has (it fsyncs):
    // every job is forked from it, and a fork costs more the more threads the forking process has.
    expect(readdirSync(`/proc/${pid}/task`).length).toBeLessThan(await threadsOfDefaultNode());

    await agent.stop();
    await until(() => (alive(pid as number) ? undefined : true));
    expect(existsSync(join(dataDir, 'supervisor', 'v1.sock'))).toBe(false);
  });
});
