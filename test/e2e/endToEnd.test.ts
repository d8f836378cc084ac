import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { codeDir, gitRepo, PRINT_SCRIPT } from '../helpers/jobs.js';
import { agentConfig, cleanupAll, cli, startAgent, startServer, tempDir, type TestServer } from '../helpers/procs.js';

/** Acceptance 2 of the core issue: real server and agent processes run code-directory and git jobs. */
describe('end to end: liftoff server + liftoff launch-agent', () => {
  let server: TestServer;

  beforeAll(async () => {
    server = await startServer();
    // The git jobs clone file:// repositories, which agents refuse unless their config allows it.
    await startAgent(server, { maxJobs: 2, config: agentConfig(tempDir(), 'git:\n  allow-file: true\n') });
  });
  afterAll(cleanupAll);

  it('runs a code-directory job to finished with its output in the logs', async () => {
    const dir = codeDir({ 'main.mjs': PRINT_SCRIPT });
    const r = await cli(
      [
        'launch',
        '--code',
        dir,
        '-E',
        'node main.mjs',
        '--set',
        'lr=0.1',
        '--set',
        'model.depth=3',
        '--wait',
        '--',
        '--epochs',
        '2',
      ],
      server.env,
    );
    expect(r.output).toMatch(/hello from \w+ queue default/);
    expect(r.output).toContain('config {"lr":0.1,"model":{"depth":3}}');
    expect(r.output).toContain('args ["--epochs","2"]');
    expect(r.code).toBe(0);
    const runId = /run (\w+) finished/.exec(r.output)?.[1] as string;
    const run = await server.client.getRun(runId);
    expect(run.status).toBe('finished');
    expect(run.exit_code).toBe(0);
    const logs = await server.client.readLogs(runId);
    expect(logs.data).toMatch(/hello from \w+ queue default/);
    expect(logs.complete).toBe(true);
  });

  it('runs a git job at a branch and at a commit', async () => {
    const repo = gitRepo({ 'main.mjs': PRINT_SCRIPT, 'sub/data.txt': 'x' });
    const byBranch = await cli(
      ['launch', '--git', repo.url, '--ref', 'main', '-E', 'node main.mjs', '--wait'],
      server.env,
    );
    expect(byBranch.output).toContain(`checked out ${repo.commit}`);
    expect(byBranch.output).toMatch(/hello from \w+ queue default/);
    expect(byBranch.code).toBe(0);
    const bySha = await cli(
      ['launch', '--git', repo.url, '--ref', repo.commit, '-E', 'node main.mjs', '--wait'],
      server.env,
    );
    expect(bySha.code).toBe(0);
    const byDefault = await cli(['launch', '--git', repo.url, '-E', 'node main.mjs', '--wait'], server.env);
    expect(byDefault.code).toBe(0);
  });

  it('reports a job exiting 3 as failed with exit code 3, and --wait exits 3', async () => {
    const dir = codeDir({ 'main.mjs': PRINT_SCRIPT });
    const r = await cli(['launch', '--code', dir, '-E', 'node main.mjs', '--env', 'EXIT_CODE=3', '--wait'], server.env);
    expect(r.code).toBe(3);
    const runId = /run (\w+) failed/.exec(r.output)?.[1] as string;
    const run = await server.client.getRun(runId);
    expect(run).toMatchObject({ status: 'failed', exit_code: 3, error_stage: 'run' });
    expect(run.error_message).toContain('exited with code 3');
    const item = await server.client.getItem(run.item_id);
    expect(item.state).toBe('failed');
  });

  it('fails a job whose git ref does not exist at stage agent', async () => {
    const repo = gitRepo({ 'main.mjs': PRINT_SCRIPT });
    const r = await cli(
      ['launch', '--git', repo.url, '--ref', 'no-such-branch', '-E', 'node main.mjs', '--wait'],
      server.env,
    );
    expect(r.code).toBe(1);
    expect(r.output).toContain('git ref "no-such-branch" was not found');
    const runId = /run (\w+) failed/.exec(r.output)?.[1] as string;
    expect(await server.client.getRun(runId)).toMatchObject({ status: 'failed', error_stage: 'agent' });
  });

  it('fails a job whose program does not exist at stage run', async () => {
    const dir = codeDir({ 'main.mjs': PRINT_SCRIPT });
    const r = await cli(['launch', '--code', dir, '-E', 'no-such-program-xyz', '--wait'], server.env);
    expect(r.code).toBe(1);
    expect(r.output).toContain('Could not start "no-such-program-xyz"');
  });

  it("streams a job's output live, before the job ends", async () => {
    const dir = codeDir({ 'main.mjs': "console.log('first line'); setTimeout(() => console.log('last line'), 2500);" });
    const launched = await cli(['launch', '--code', dir, '-E', 'node main.mjs', '--json'], server.env);
    const itemId = (JSON.parse(launched.output) as { id: string }).id;
    let runId: string | null = null;
    while (!runId) runId = (await server.client.getItem(itemId)).run_id;
    let firstSeenAt = 0;
    let text = '';
    const run = await server.client.followLogs(runId, (t) => {
      text += t;
      if (!firstSeenAt && text.includes('first line')) firstSeenAt = Date.now();
    });
    const endedAt = Date.now();
    expect(run.status).toBe('finished');
    expect(text).toContain('last line');
    expect(firstSeenAt).toBeGreaterThan(0);
    expect(endedAt - firstSeenAt).toBeGreaterThan(1_500);
    expect((run.ended_at ?? 0) - (run.started_at ?? 0)).toBeGreaterThan(2_000);
  });

  it('lists runs, queues and agents as tables and JSON', async () => {
    const runs = await cli(['runs', 'list'], server.env);
    expect(runs.output.split('\n')[0]).toMatch(/^RUN\s+QUEUE\s+STATUS\s+EXIT\s+STAGE/);
    const agents = await cli(['agents', 'list', '--json'], server.env);
    const parsed = JSON.parse(agents.output) as Array<{ status: string; hostname: string }>;
    expect(parsed[0]?.status).toMatch(/POLLING|RUNNING/);
    const queues = await cli(['queue', 'list'], server.env);
    expect(queues.output).toMatch(/default\s+local-process/);
  });
});
