import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BUSYBOX, cleanupDockerAfter, dockerAvailable } from '../helpers/docker.js';
import { codeDir } from '../helpers/jobs.js';
import { PROBE_SCRIPT, envKeys } from '../helpers/probe.js';
import { agentConfig, cleanupAll, cli, startAgent, startServer, tempDir, type TestServer } from '../helpers/procs.js';

/** Issue #11, points 2 and 4: job environments from an allow-list; `${VAR}` macros only for what the agent allows. */

const AGENT_SECRETS = {
  AWS_SECRET_ACCESS_KEY: 'agent-aws-secret',
  GITHUB_TOKEN: 'agent-gh-token',
  PASSED_ON: 'operator-chose-this',
  REGION_FOR_MACROS: 'eu-test-1',
  LANG: 'C.UTF-8',
  TZ: 'Europe/Berlin',
};
const CONFIG = 'job-env: [PASSED_ON]\nmacro-env: [REGION_FOR_MACROS]\nstopped_run_timeout: 2\n';

describe('the job environment and macros on a local-process queue', () => {
  let server: TestServer;

  beforeAll(async () => {
    server = await startServer();
    await startAgent(server, { config: agentConfig(tempDir(), CONFIG), env: AGENT_SECRETS, maxJobs: 2 });
  });
  afterAll(cleanupAll);

  it("is the base, job-env's names, the spec's env and LIFTOFF_*: nothing else of the agent's", async () => {
    const dir = codeDir({ 'probe.py': PROBE_SCRIPT });
    const r = await cli(['launch', '--code', dir, '-E', 'python3 probe.py', '--env', 'MINE=1', '--wait'], server.env);
    expect(r.code).toBe(0);
    const keys = envKeys(r.output);
    const runVars = [
      'LIFTOFF_ENTITY',
      'LIFTOFF_ITEM_ID',
      'LIFTOFF_OUTPUT_DIR',
      'LIFTOFF_QUEUE',
      'LIFTOFF_RUN_CONFIG',
      'LIFTOFF_RUN_ID',
    ];
    // USER/LOGNAME: a job with a uid of its own (as root) has no passwd entry for getpass.getuser() to find.
    const base =
      process.getuid?.() === 0 ? ['HOME', 'LANG', 'LOGNAME', 'PATH', 'TZ', 'USER'] : ['HOME', 'LANG', 'PATH', 'TZ'];
    expect(keys).toEqual([...base, ...runVars, 'MINE', 'PASSED_ON'].sort());
  });

  it('refuses ${VAR} of an agent variable not in macro-env, before anything runs, naming the variable and the fix', async () => {
    const dir = codeDir({ 'probe.py': PROBE_SCRIPT });
    const r = await cli(
      [
        'launch',
        '--code',
        dir,
        '-E',
        'python3 probe.py',
        '--resource-args',
        JSON.stringify({ labels: ['${AWS_SECRET_ACCESS_KEY}'] }),
        '--wait',
      ],
      server.env,
    );
    expect(r.code).not.toBe(0);
    expect(r.output).not.toContain('ENVKEYS'); // the job never started
    expect(r.output).not.toContain('agent-aws-secret');
    const runId = /run (\w+) failed/.exec(r.output)?.[1] as string;
    const run = await server.client.getRun(runId);
    expect(run.error_stage).toBe('agent');
    expect(run.error_message).toContain('${AWS_SECRET_ACCESS_KEY}');
    expect(run.error_message).toContain('add AWS_SECRET_ACCESS_KEY to macro-env');
  });
});

describe.skipIf(!dockerAvailable())('the job environment and macros on a container queue', () => {
  let server: TestServer;
  const agents: string[] = [];

  beforeAll(async () => {
    server = await startServer();
    await server.client.createQueue('default', { name: 'box', resource: 'local-container', resource_args: {} });
    const agent = await startAgent(server, {
      queues: ['box'],
      config: agentConfig(tempDir(), CONFIG),
      env: AGENT_SECRETS,
      maxJobs: 2,
    });
    agents.push(agent.name);
    cleanupDockerAfter(() => agents);
  });
  afterAll(cleanupAll);

  it("holds none of the agent's variables but job-env's, and expands only macro-env's", async () => {
    const r = await cli(
      [
        'launch',
        '-q',
        'box',
        '--image',
        BUSYBOX,
        '-E',
        'env',
        '--resource-args',
        JSON.stringify({ env: { WHERE: '${REGION_FOR_MACROS}', RUN: '${run_id}' } }),
        '--wait',
      ],
      server.env,
    );
    expect(r.code).toBe(0);
    const runId = /run (\w+) finished/.exec(r.output)?.[1] as string;
    expect(r.output).toContain('WHERE=eu-test-1');
    expect(r.output).toContain(`RUN=${runId}`);
    expect(r.output).toContain('PASSED_ON=operator-chose-this');
    for (const secret of ['agent-aws-secret', 'agent-gh-token', 'LIFTOFF_API_KEY', 'Europe/Berlin']) {
      expect(r.output).not.toContain(secret);
    }
  });

  it('refuses a container whose resource args pull an agent secret through ${VAR}; nothing is created', async () => {
    const r = await cli(
      [
        'launch',
        '-q',
        'box',
        '--image',
        BUSYBOX,
        '-E',
        'env',
        '--resource-args',
        JSON.stringify({ env: { LEAK: '${GITHUB_TOKEN}' } }),
        '--wait',
      ],
      server.env,
    );
    expect(r.code).not.toBe(0);
    expect(r.output).not.toContain('agent-gh-token');
    const runId = /run (\w+) failed/.exec(r.output)?.[1] as string;
    const run = await server.client.getRun(runId);
    expect(run.error_stage).toBe('agent');
    expect(run.error_message).toContain('${GITHUB_TOKEN}');
    const { containersOfRun } = await import('../helpers/docker.js');
    expect(containersOfRun(runId)).toEqual([]);
  });
});
