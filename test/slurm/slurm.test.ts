import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { codeDir } from '../helpers/jobs.js';
import {
  agentConfig,
  cleanupAll,
  cli,
  jobWritableDir,
  outputOf,
  startAgent,
  startServer,
  tempDir,
  until,
  type TestAgent,
  type TestServer,
} from '../helpers/procs.js';
import { slurm, slurmAvailable, slurmJobIdOf, slurmState } from '../helpers/slurm.js';

/**
 * Issue #16 against the real one-node Slurm of scripts/services/slurm.sh: a real server and `liftoff launch-agent`
 * (as root, jobs submitted with --uid as liftoff-tester), jobs that are bash scripts talking to the test through
 * files in a shared dir. One server and one agent serve every case; the restart case runs last.
 */
const available = slurmAvailable();
const TESTER_UID = available ? Number(execFileSync('id', ['-u', 'liftoff-tester']).toString()) : -1;
const SECRET = 'agent-secret-value-7f3a';
const QUEUES = ['slurm', 'slurm-timeout', 'slurm-tpl'];

const JOB = `
echo "started uid=$(id -u) gpus=\${SLURM_GPUS_ON_NODE:-none} task=\${SLURM_ARRAY_TASK_ID:-none}"
env > "$SYNC/env-$TAG\${SLURM_ARRAY_TASK_ID:-}"
trap 'echo "got TERM"; exit 143' TERM
while [ -n "$WAIT" ] && [ ! -e "$SYNC/go-$TAG" ]; do sleep 0.1; done
echo "attempt \${SLURM_RESTART_COUNT:-0} done"
if [ "\${SLURM_ARRAY_TASK_ID:-}" = "\${FAIL_TASK:-x}" ]; then exit 5; fi
exit \${EXIT:-0}
`;

describe.skipIf(!available)('the Slurm runner against a real Slurm', () => {
  let server: TestServer;
  let agent: TestAgent;
  let sync: string;
  let root: string;
  let config: string;
  let dataDir: string;
  let tag = 0;

  beforeAll(async () => {
    server = await startServer();
    sync = jobWritableDir();
    const base = tempDir('liftoff-slurm-root-');
    chmodSync(base, 0o711);
    root = join(base, 'runs');
    config = agentConfig(
      base,
      [
        'stopped_run_timeout: 5',
        'run-as: {user: liftoff-tester}',
        `slurm: {transport: local, workdir-root: ${root}, poll-seconds: 0.5}`,
        '',
      ].join('\n'),
    );
    for (const [name, timeout] of [
      ['slurm', null],
      ['slurm-timeout', 4],
    ] as const) {
      await server.client.createQueue('default', { name, resource: 'slurm', start_timeout_seconds: timeout });
    }
    // A queue whose owner sets the time limit from a template variable and locks the partition.
    await server.client.createQueue('default', {
      name: 'slurm-tpl',
      resource: 'slurm',
      resource_args: { slurm: { partition: 'debug', time: '{{minutes}}', gres: 'gpu:{{gpus}}' } },
      template_variables: {
        minutes: { schema: { type: 'integer', minimum: 1, maximum: 30 } },
        gpus: { schema: { type: 'integer', enum: [1, 2], default: 1 } },
      },
      locked_keys: ['partition'],
    });
    dataDir = join(server.home, 'agents', 'slurm-agent');
    agent = await startAgent(server, {
      queues: QUEUES,
      name: 'slurm-agent',
      maxJobs: 10,
      config,
      dataDir,
      env: { LIFTOFF_TEST_AGENT_SECRET: SECRET },
    });
  }, 60_000);
  const launched: string[] = [];
  afterAll(async () => {
    await cleanupAll();
    // A failed case can leave its job waiting for the test: nothing of this suite stays in Slurm.
    for (const name of ['liftoff-blocker', 'liftoff-orphan', ...launched.map((r) => `liftoff-${r}`)]) {
      execFileSync('scancel', [`--name=${name}`]);
    }
  });

  const launch = async (
    env: Record<string, string> = {},
    opts: { queue?: string; args?: unknown; vars?: string[] } = {},
  ) => {
    const t = `t${++tag}`;
    const dir = codeDir({ 'job.sh': JOB });
    const r = await cli(
      [
        'launch',
        '--json',
        '-q',
        opts.queue ?? 'slurm',
        '--code',
        dir,
        '-E',
        'bash job.sh',
        ...Object.entries({ SYNC: sync, TAG: t, ...env }).flatMap(([k, v]) => ['--env', `${k}=${v}`]),
        ...(opts.args ? ['--resource-args', JSON.stringify({ slurm: opts.args })] : []),
        ...(opts.vars ?? []).flatMap((v) => ['--set-var', v]),
      ],
      server.env,
    );
    expect(r.code, r.output).toBe(0);
    const itemId = (JSON.parse(r.output) as { id: string }).id;
    const runId = await until(async () => (await server.client.getItem(itemId)).run_id ?? undefined);
    launched.push(runId);
    return { itemId, runId, tag: t, go: () => writeFileSync(join(sync, `go-${t}`), '') };
  };
  const ended = (runId: string, ms = 60_000) =>
    until(async () => {
      const run = await server.client.getRun(runId);
      return ['finished', 'failed', 'stopped', 'preempted', 'lost'].includes(run.status) ? run : undefined;
    }, ms);
  const logOf = async (runId: string) => (await server.client.readLogs(runId)).data;
  const outputHas = (runId: string, text: string, ms = 30_000) =>
    until(async () => ((await outputOf(server.client, runId)).includes(text) ? true : undefined), ms);

  it('runs a code job as the job user with live output; exit 0 finishes and exit 3 fails with its code', async () => {
    const ok = await launch({ WAIT: '1' });
    // Live: the first line is on the server while the job still waits for the test.
    await outputHas(ok.runId, `started uid=${TESTER_UID} gpus=none task=none`);
    // The state comes with the next squeue tick (output may be read first).
    await until(async () => ((await server.client.getRun(ok.runId)).status === 'running' ? true : undefined));
    const jobId = slurmJobIdOf(await logOf(ok.runId));
    expect(slurmState(jobId ?? '')?.state).toBe('RUNNING');
    // The env file is the job user's, 0600; the agent's own environment never reached the job.
    const envFile = statSync(join(root, ok.runId, 'env'));
    expect([envFile.uid, envFile.mode & 0o777]).toEqual([TESTER_UID, 0o600]);
    const env = execFileSync('cat', [join(sync, `env-${ok.tag}`)]).toString();
    expect(env).toContain(`LIFTOFF_RUN_ID=${ok.runId}`);
    expect(env).not.toContain(SECRET);
    expect(env).not.toContain('LIFTOFF_API_KEY');
    expect(env).not.toContain('LIFTOFF_TEST_AGENT_SECRET');
    ok.go();
    const done = await ended(ok.runId);
    expect(done).toMatchObject({ status: 'finished', exit_code: 0 });
    expect(await outputOf(server.client, ok.runId)).toMatch(/started .*\nattempt 0 done\n$/);
    // Once the job ended its env file (the run's secrets) is gone from the shared filesystem; its output stays.
    expect(existsSync(join(root, ok.runId, 'env'))).toBe(false);
    expect(existsSync(join(root, ok.runId, `slurm-${jobId}.out`))).toBe(true);

    const bad = await launch({ EXIT: '3' });
    const failed = await ended(bad.runId);
    expect(failed).toMatchObject({ status: 'failed', exit_code: 3 });
    expect(failed.error_message).toMatch(/FAILED with exit code 3/);
  });

  it('refuses an sbatch option Liftoff owns, naming the key, before submitting anything', async () => {
    const r = await launch({}, { args: { partition: 'debug', sbatch: { export: 'ALL' } } });
    const run = await ended(r.runId);
    expect(run.status).toBe('failed');
    expect(run.error_message).toContain('resource_args.slurm.sbatch.export');
    expect(await logOf(r.runId)).not.toMatch(/slurm job \d+ submitted/);
  });

  it('a queue template fills sbatch options from --set-var values, and its locked partition cannot be overridden', async () => {
    const r = await launch({ WAIT: '1' }, { queue: 'slurm-tpl', vars: ['minutes=7', 'gpus=2'] });
    await outputHas(r.runId, 'started');
    expect(await outputOf(server.client, r.runId)).toContain('gpus=2');
    // Slurm itself holds the filled-in options: 7 minutes on the debug partition.
    const job = slurm('scontrol', ['-o', 'show', 'job', slurmJobIdOf(await logOf(r.runId)) ?? '']);
    expect(job).toMatch(/ TimeLimit=00:07:00 /);
    expect(job).toMatch(/ Partition=debug /);
    r.go();
    expect(await ended(r.runId)).toMatchObject({ status: 'finished', exit_code: 0 });
    expect((await server.client.getRun(r.runId)).spec.resource_args).toEqual({
      slurm: { partition: 'debug', time: 7, gres: 'gpu:2' },
    });

    const code = codeDir({ 'job.sh': JOB });
    const refused = async (extra: string[], message: RegExp) => {
      const out = await cli(['launch', '-q', 'slurm-tpl', '--code', code, '-E', 'bash job.sh', ...extra], server.env);
      expect(out.code, out.output).toBe(2);
      expect(out.output).toMatch(message);
    };
    await refused(['--set-var', 'minutes=31'], /Template variable "minutes" must be at most 30/);
    await refused(['--set-var', 'minutes=5', '--set-var', 'gpus=3'], /Template variable "gpus" must be one of 1, 2/);
    await refused(
      ['--set-var', 'minutes=5', '--resource-args', JSON.stringify({ slurm: { partition: 'other' } })],
      /Queue "slurm-tpl" locks resource_args\.slurm\.partition: its owner sets it\./,
    );
    await refused(
      ['--set-var', 'minutes=5', '--resource-args', JSON.stringify({ slurm: { time: '60' } })],
      /sets resource_args\.slurm\.time from its template variable \{\{minutes\}\}/,
    );
  });

  it('gives --gres=gpu:1 to the job, and runs a 0-2 array as one run with per-task lines, failing on a failed task', async () => {
    const gpu = await launch({}, { args: { gres: 'gpu:1' } });
    expect(await ended(gpu.runId)).toMatchObject({ status: 'finished' });
    expect(await outputOf(server.client, gpu.runId)).toContain('gpus=1');

    const arr = await launch({}, { args: { array: '0-2' } });
    expect(await ended(arr.runId)).toMatchObject({ status: 'finished', exit_code: 0 });
    const out = await outputOf(server.client, arr.runId);
    for (const t of [0, 1, 2]) {
      expect(out).toContain(`[task ${t}] started uid=${TESTER_UID} gpus=none task=${t}\n`);
      expect(out).toContain(`[task ${t}] attempt 0 done\n`);
    }
    const bad = await launch({ FAIL_TASK: '1' }, { args: { array: '0-2' } });
    const failed = await ended(bad.runId);
    expect(failed).toMatchObject({ status: 'failed', exit_code: 5 });
    expect(failed.error_message).toMatch(/^Array task 1 ended FAILED with exit code 5/);
  });

  it('runs the entry point through srun for several tasks, each with the run environment', async () => {
    const r = await launch({}, { args: { ntasks: 2 } });
    expect(await ended(r.runId)).toMatchObject({ status: 'finished', exit_code: 0 });
    const out = await outputOf(server.client, r.runId);
    // Two tasks under srun --export=ALL: both started, both saw the run's variables (SYNC/TAG wrote their env files).
    expect(out.match(/started uid=/g)).toHaveLength(2);
    expect(out.match(/attempt 0 done/g)).toHaveLength(2);
    expect(execFileSync('cat', [join(sync, `env-${r.tag}`)]).toString()).toMatch(/^SLURM_STEP_ID=0$/m);
  });

  it('an agent whose Slurm CLI cannot run refuses to start, naming the cause', async () => {
    // A PATH with getent (the run-as user is looked up) but no Slurm client.
    const bin = tempDir('liftoff-noslurm-');
    symlinkSync('/usr/bin/getent', join(bin, 'getent'));
    const started = startAgent(server, {
      queues: ['slurm'],
      name: 'slurm-agent-nocli',
      config,
      env: { PATH: bin },
    });
    // The agent exits (it does not hang on to the failed spawn), and says why.
    await expect(started).rejects.toThrow(/^process exited \(2\) before/);
    await expect(started).rejects.toThrow(
      /Queue "slurm" runs slurm jobs, but: Slurm does not answer on the agent host: sinfo could not run: .*ENOENT/,
    );
  });

  it('cancels a running job (its SIGTERM trap runs) with scancel, and the run is stopped', async () => {
    const r = await launch({ WAIT: '1' });
    await outputHas(r.runId, 'started');
    await server.client.cancelRun(r.runId);
    expect(await ended(r.runId)).toMatchObject({ status: 'stopped' });
    expect(await outputOf(server.client, r.runId)).toContain('got TERM');
    const log = await logOf(r.runId);
    expect(log).toMatch(/cancelling slurm job \d+ with scancel: .*KillWait \(2 sec\)/);
    expect(slurmState(slurmJobIdOf(log) ?? '')?.state ?? 'CANCELLED').toBe('CANCELLED');
  });

  it('a job cancelled outside Liftoff (scancel by someone else) fails, saying so', async () => {
    const r = await launch({ WAIT: '1' });
    await outputHas(r.runId, 'started');
    slurm('scancel', [slurmJobIdOf(await logOf(r.runId)) ?? '']);
    const run = await ended(r.runId);
    expect(run.status).toBe('failed');
    expect(run.error_message).toBe('The Slurm job was cancelled outside Liftoff (scancel by a user or an admin).');
  });

  it('a job pending on Resources shows the reason as its warning, is cancelled pending, and hits the start timeout', async () => {
    // Both fake GPUs taken by a job outside Liftoff: a gpu:1 job then waits with reason Resources.
    slurm('sbatch', ['--job-name=liftoff-blocker', '--gres=gpu:2', '-o', '/dev/null', '--wrap=sleep 300']);
    const pending = await launch({}, { args: { gres: 'gpu:1' } });
    const run = await until(async () => {
      const cur = await server.client.getRun(pending.runId);
      return cur.warning?.includes('Resources') ? cur : undefined;
    });
    expect(run).toMatchObject({ status: 'starting', warning: 'pending in Slurm: Resources' });
    await server.client.cancelRun(pending.runId);
    expect(await ended(pending.runId)).toMatchObject({ status: 'stopped' });

    const stuck = await launch({}, { queue: 'slurm-timeout', args: { gres: 'gpu:1' } });
    const timedOut = await ended(stuck.runId);
    expect(timedOut.status).toBe('failed');
    expect(timedOut.error_message).toMatch(/start timeout of 4 s: pending in Slurm: Resources/);
    expect(slurmState(slurmJobIdOf(await logOf(stuck.runId)) ?? '')?.state ?? 'CANCELLED').toBe('CANCELLED');
    slurm('scancel', ['--name=liftoff-blocker']);
  });

  it('scontrol requeue: the same job runs again, the run is re-followed with a note, and no second item appears', async () => {
    const r = await launch({ WAIT: '1' }, { args: { requeue: true } });
    await outputHas(r.runId, 'started');
    const jobId = slurmJobIdOf(await logOf(r.runId)) ?? '';
    slurm('scontrol', ['requeue', jobId]);
    await until(async () => ((await logOf(r.runId)).includes('requeued by Slurm (restart 1)') ? true : undefined));
    // Back to starting, the same run, with Slurm's reason as its warning.
    expect(await server.client.getRun(r.runId)).toMatchObject({
      status: 'starting',
      warning: 'requeued by Slurm; pending in Slurm: BeginTime',
    });
    // Slurm holds a requeued job back for its credential lifetime (120 s): released now, as an admin would.
    slurm('scontrol', ['update', `jobid=${jobId}`, 'starttime=now']);
    await until(async () =>
      (await outputOf(server.client, r.runId)).split('started').length === 3 ? true : undefined,
    );
    r.go();
    expect(await ended(r.runId)).toMatchObject({ status: 'finished' });
    expect(await outputOf(server.client, r.runId)).toContain('attempt 1 done');
    const items = await server.client.listItems('default', 'slurm');
    expect(items.items.filter((i) => i.state === 'pending' || i.state === 'running')).toEqual([]);
    const runs = await server.client.listRuns('default', { queue: 'slurm', limit: 100 });
    expect(runs.runs.filter((x) => x.item_id === r.itemId).map((x) => x.id)).toEqual([r.runId]);
  });

  it('agent kill -9: a running job is re-adopted without duplicate lines, a purged one ends from its exit-code file, an orphan is cancelled', async () => {
    const keep = await launch({ WAIT: '1' });
    const gone = await launch({ WAIT: '1', EXIT: '4' });
    // Two more whose ids the agent "did not record": it died between sbatch and writing the id (see below).
    const unrecorded = await launch({ WAIT: '1' });
    const unrecordedGone = await launch({ WAIT: '1', EXIT: '6' });
    for (const r of [keep, gone, unrecorded, unrecordedGone]) await outputHas(r.runId, 'started');
    const agentId = (await server.client.listAgents('default')).agents.find((a) => a.name === 'slurm-agent')?.id;
    agent.proc.kill('SIGKILL');
    await agent.proc.exited;
    // While the agent is down: one job ends and Slurm forgets it (MinJobAge=5); an orphan of this agent appears.
    gone.go();
    unrecordedGone.go();
    // What an agent killed between sbatch and recording the id leaves: the record written before sbatch, no id.
    for (const r of [unrecorded, unrecordedGone]) {
      const file = join(dataDir, 'runs', r.runId, 'slurm.json');
      const { jobId, ...before } = JSON.parse(readFileSync(file, 'utf8')) as { jobId: string };
      expect(jobId).toBe(slurmJobIdOf(await logOf(r.runId)));
      writeFileSync(file, JSON.stringify(before));
    }
    for (const r of [gone, unrecordedGone]) {
      const job = slurmJobIdOf(await logOf(r.runId)) ?? '';
      await until(() => (slurmState(job) ? undefined : true), 180_000);
    }
    const orphan = slurm('sbatch', [
      '--parsable',
      '--job-name=liftoff-orphan',
      `--comment=liftoff-run-id:orphanrun liftoff-agent:${agentId}`,
      '-o',
      '/dev/null',
      '--wrap=sleep 300',
    ]).trim();
    agent = await startAgent(server, {
      queues: QUEUES,
      name: 'slurm-agent',
      maxJobs: 10,
      config,
      dataDir,
      env: { LIFTOFF_TEST_AGENT_SECRET: SECRET },
    });
    await agent.proc.waitFor(new RegExp(`re-adopted run ${keep.runId}`));
    const fromFile = await ended(gone.runId);
    expect(fromFile).toMatchObject({ status: 'failed', exit_code: 4 });
    expect(await logOf(gone.runId)).toContain('its end comes from its exit-code file');
    await until(() => (['CANCELLED', undefined].includes(slurmState(orphan)?.state) ? true : undefined));
    // Found by name while Slurm knows it; by its exit-code file once Slurm forgot it.
    const byName = await logOf(unrecorded.runId);
    expect(byName).toMatch(/re-adopted slurm job \d+, found by its name in squeue/);
    const byFile = await ended(unrecordedGone.runId);
    expect(byFile).toMatchObject({ status: 'failed', exit_code: 6 });
    expect(await logOf(unrecordedGone.runId)).toMatch(/re-adopted slurm job \d+, named by its exit-code file/);
    keep.go();
    unrecorded.go();
    for (const r of [keep, unrecorded]) {
      expect(await ended(r.runId)).toMatchObject({ status: 'finished' });
      const out = await outputOf(server.client, r.runId);
      expect(out.match(/started/g)).toHaveLength(1);
      expect(out).toMatch(/^started .*\nattempt 0 done\n$/);
    }
  }, 240_000);
});
