import { chmodSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseShell } from 'shell-quote';
import { codeDir } from '../helpers/jobs.js';
import {
  agentConfig,
  cleanupAll,
  cli,
  liftoff,
  ROOT,
  startServer,
  tempDir,
  type TestServer,
} from '../helpers/procs.js';

/** Every CLI failure is one clear line and a non-zero exit, never a stack trace. */
describe('CLI errors', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startServer();
  });
  afterAll(cleanupAll);

  const noStack = (out: string) => expect(out).not.toMatch(/\n\s+at /);

  it.each([
    [
      'an unreachable server',
      ['queue', 'list'],
      { LIFTOFF_BASE_URL: 'http://127.0.0.1:59999', LIFTOFF_API_KEY: 'k' },
      2,
      /^liftoff: error: Cannot reach the Liftoff server at http:\/\/127\.0\.0\.1:59999: connect ECONNREFUSED 127\.0\.0\.1:59999\. Is "liftoff server" running there\?/,
    ],
    ['a bad key', ['queue', 'list'], { LIFTOFF_API_KEY: 'lk_nope' }, 3, /^liftoff: error: Unknown API key\./],
    [
      'an unknown queue',
      ['launch', '-q', 'nope', '--git', 'https://example.com/r.git', '-E', 'python x.py'],
      {},
      2,
      /^liftoff: error: Queue "nope" not found in entity "default"\. List queues with "liftoff queue list"\.\n$/,
    ],
    [
      'a git URL that is really an option',
      ['launch', '--git', '--upload-pack=touch /tmp/pwned', '-E', 'x'],
      {},
      2,
      /Refused git URL "--upload-pack=touch \/tmp\/pwned": it starts with "-"/,
    ],
    [
      'shell syntax in the entry point',
      ['launch', '--git', 'https://e.com/r', '-E', 'python a.py && rm -rf /'],
      {},
      2,
      /contains shell syntax/,
    ],
    ['an unknown flag', ['launch', '--bogus'], {}, 2, /error: unknown option '--bogus'/],
    ['two sources', ['launch', '--git', 'https://e.com/r', '--code', '.', '-E', 'x'], {}, 2, /Give exactly one source/],
    [
      'a bad priority',
      ['launch', '--git', 'https://e.com/r', '-E', 'x', '-P', 'urgent'],
      {},
      2,
      /--priority must be one of critical, high, medium, low/,
    ],
  ])('reports %s', async (_label, args, env, code, message) => {
    const r = await cli(args, { ...server.env, ...env });
    expect(r.output).toMatch(message);
    expect(r.code).toBe(code);
    noStack(r.output);
  });

  it('reports an invalid agent config with one line per problem', async () => {
    const path = agentConfig(tempDir(), 'max_job: 3\nbuilder:\n  type: podman\n');
    const r = await cli(['launch-agent', '-q', 'default', '-c', path], server.env);
    expect(r.code).toBe(2);
    expect(r.output).toContain(`liftoff: error: ${path} is invalid:`);
    expect(r.output).toContain('unknown field "max_job": remove it or check its spelling');
    expect(r.output).toContain('field "builder.type" (value: "podman"): must be one of docker, kaniko, noop, buildah');
    noStack(r.output);
  });

  it('refuses to start without a queue, and for a queue it cannot serve as configured', async () => {
    const none = await cli(['launch-agent', '-c', agentConfig(tempDir(), 'entity: default\n')], server.env);
    expect(none.output).toContain('no queue to poll: pass -q QUEUE');
    // Every resource has a runner; a sagemaker queue needs an aws environment, which this agent lacks.
    await server.client.createQueue('default', { name: 'sm', resource: 'sagemaker' });
    const sm = await cli(['launch-agent', '-q', 'sm', '--name', 'sm-agent'], server.env);
    expect(sm.output).toContain('Queue "sm" runs sagemaker jobs, but: sagemaker queues need AWS: add `environment:');
    expect(sm.code).toBe(2);
  });

  it('refuses a code archive with entries escaping its directory at upload', async () => {
    const { Header } = await import('tar');
    const { gzipSync } = await import('node:zlib');
    const header = new Header({
      path: '../../etc/cron.d/evil',
      type: 'File',
      size: 0,
      mode: 0o644,
      mtime: new Date(0),
    });
    const block = Buffer.alloc(512);
    header.encode(block, 0);
    const archive = gzipSync(Buffer.concat([block, Buffer.alloc(1024)]));
    const e = await server.client.uploadArchive(archive).catch((err: Error) => err);
    expect((e as Error).message).toBe(
      'Refused code archive: entry "../../etc/cron.d/evil" climbs out of the archive with "..".',
    );
  });
});

/** Acceptance 1 of the core issue: `liftoff up` prints a launch example that works as printed. */
describe('liftoff up', () => {
  afterAll(cleanupAll);

  it('starts a server and an embedded agent, and its printed example runs to completion', async () => {
    const home = tempDir('liftoff-up-');
    chmodSync(home, 0o711); // as root, up gives jobs users of their own, who must reach their work dirs under it
    const up = liftoff(['up', '--port', '0', '--data-dir', join(home, 'data')], { HOME: home });
    await up.waitFor(/Liftoff is up at (http:\/\/\S+)/);
    const [, example] = (await up.waitFor(/^\s+(npx liftoff launch .*)$/m)) as unknown as [string, string];
    const argv = parseShell(example).map(String);
    expect(argv.slice(0, 3)).toEqual(['npx', 'liftoff', 'launch']);
    const r = await cli(argv.slice(2), { HOME: home }, ROOT);
    expect(r.output).toContain('epoch 3/3');
    expect(r.code).toBe(0);
    expect(up.output).toContain(join(home, '.config', 'liftoff', 'credentials'));
    up.kill('SIGTERM');
    expect((await up.exited).code).toBe(0);
  });

  it('keeps working across restarts on the same data dir', async () => {
    const home = tempDir('liftoff-up-');
    chmodSync(home, 0o711); // as root, up gives jobs users of their own, who must reach their work dirs under it
    const first = liftoff(['up', '--port', '0', '--data-dir', join(home, 'data')], { HOME: home });
    await first.waitFor(/Liftoff is up/);
    first.kill('SIGTERM');
    await first.exited;
    const second = liftoff(['up', '--port', '0', '--data-dir', join(home, 'data')], { HOME: home });
    await second.waitFor(/Liftoff is up/);
    const r = await cli(['launch', '--code', codeDir({ 'a.py': 'print("again")' }), '-E', 'python3 a.py', '--wait'], {
      HOME: home,
    });
    expect(r.output).toContain('again');
    expect(r.code).toBe(0);
  });
});

describe('entry point splitting', () => {
  it('splits like a shell but expands nothing and refuses operators', async () => {
    const { splitCommand } = await import('@liftoff/cli');
    expect(splitCommand('python train.py --lr "0.1 0.2"')).toEqual(['python', 'train.py', '--lr', '0.1 0.2']);
    expect(splitCommand('sh -c "echo $HOME; echo tick $i"')).toEqual(['sh', '-c', 'echo $HOME; echo tick $i']);
    expect(() => splitCommand('a > b')).toThrow('contains shell syntax');
  });
});

describe('launch-agent logging', () => {
  afterAll(cleanupAll);

  it('writes its JSON log to --log-file', async () => {
    const server = await startServer();
    const logFile = join(tempDir(), 'agent.log');
    const agent = liftoff(['launch-agent', '-q', 'default', '--name', 'logged', '-l', logFile], server.env);
    await agent.waitFor(/polling/);
    agent.kill('SIGTERM');
    expect((await agent.exited).code).toBe(0);
    const { readFileSync } = await import('node:fs');
    const lines = readFileSync(logFile, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { msg: string; agent: string });
    expect(lines.some((l) => l.msg.includes('polling default') && l.agent === 'logged')).toBe(true);
    expect(lines.some((l) => l.msg === 'agent stopped')).toBe(true);
  });
});

describe('queue switches for agents, run warnings and preempted runs', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startServer();
  });
  afterAll(cleanupAll);

  it('sets, updates and shows the start timeout, preemption retries and backoff, and the allowances', async () => {
    const created = await cli(
      [
        'queue',
        'create',
        'kq',
        '-r',
        'kubernetes',
        '--start-timeout',
        '600',
        '--preemption-retries',
        '2',
        '--preemption-backoff',
        '10',
        '--allow',
        'hostNetwork, privileged',
        '--lost-retries',
        '2',
        '--max-log-bytes',
        '4096',
      ],
      server.env,
    );
    expect(created.output).toBe('created queue default/kq (kubernetes)\n');
    expect(await server.client.getQueue('default', 'kq')).toMatchObject({
      start_timeout_seconds: 600,
      preemption_retries: 2,
      preemption_backoff_seconds: 10,
      allow: ['hostNetwork', 'privileged'],
      lost_retries: 2,
      max_log_bytes: 4096,
    });
    const shown = await cli(['queue', 'show', 'kq'], server.env);
    expect(shown.output).toContain(
      '  start timeout: 600s  preemption retries: 2  backoff: 10s  allow: hostNetwork,privileged  locked: none  lost retries: 2  log cap: 4096 bytes\n',
    );
    const updated = await cli(
      [
        'queue',
        'update',
        'kq',
        '--start-timeout',
        'none',
        '--allow',
        'none',
        '--preemption-retries',
        '0',
        '--lock',
        'spec.template.spec.serviceAccountName, metadata',
        '--lost-retries',
        '0',
        '--max-log-bytes',
        'none',
      ],
      server.env,
    );
    expect(updated.code).toBe(0);
    expect(updated.output).toContain(
      '  start timeout: none  preemption retries: 0  backoff: 10s  allow: none  locked: spec.template.spec.serviceAccountName,metadata  lost retries: 0  log cap: server\n',
    );
    const json = JSON.parse((await cli(['queue', 'show', 'kq', '--json'], server.env)).output) as Record<
      string,
      unknown
    >;
    expect(json).toMatchObject({
      start_timeout_seconds: null,
      preemption_retries: 0,
      allow: [],
      locked_keys: ['spec.template.spec.serviceAccountName', 'metadata'],
    });
  });

  it.each([
    [
      ['--allow', 'hostNetwork,sudo'],
      '--allow: unknown "sudo"; use a comma-separated list of hostPID, hostIPC, hostNetwork, privileged, hostPath, capabilities, secrets, serviceAccountToken, nodeName, unconfined, shareProcessNamespace, hostUsers, root, namespace:<name>, serviceAccount:<name>, or "none".',
    ],
    [['--preemption-retries', '101'], '--preemption-retries must be an integer from 0 to 100, got "101".'],
    [['--preemption-backoff', '1.5'], '--preemption-backoff must be an integer from 0 to 86400, got "1.5".'],
    [['--start-timeout', '0'], '--start-timeout must be a positive integer or "none", got "0".'],
    [['--lost-retries', '11'], '--lost-retries must be an integer from 0 to 10, got "11".'],
  ])('refuses queue update %j with one line naming what is allowed', async (flags, message) => {
    const r = await cli(['queue', 'update', 'kq', ...flags], server.env);
    expect(r.output).toBe(`liftoff: error: ${message}\n`);
    expect(r.code).toBe(2);
  });

  it('prints a run warning, marks it in the list, and explains a preempted run and its requeued item', async () => {
    const c = server.client;
    await c.registerAgent({
      id: 'cli-fake',
      name: 'cli-fake',
      entity: 'default',
      hostname: 'h',
      queues: ['default'],
      version: 't',
      max_jobs: 1,
    });
    const item = await c.push('default', 'default', {
      spec: { source: { type: 'git', url: 'https://example.com/r.git' }, entry_point: ['true'] },
    });
    await c.poll('cli-fake', { queues: ['default'], max_items: 1, wait_ms: 0 });
    const run = await c.ackItem(item.id, 'cli-fake');
    const warning = 'pod liftoff-abc: Unschedulable: 0/1 nodes are available: 1 Insufficient cpu.';
    await c.reportRun(run.id, { agent_id: 'cli-fake', state: 'starting', warning });

    const shown = await cli(['runs', 'show', run.id], server.env);
    expect(shown.output).toContain(`run ${run.id} on default/default: starting\n  warning: ${warning}\n`);
    const list = await cli(['runs', 'list'], server.env);
    const [header, row] = list.output.split('\n');
    expect(header).toMatch(/\s+WARNING$/);
    expect(row?.startsWith(`${run.id} `)).toBe(true);
    // Clipped to the column's 60 characters; `runs show` prints it whole.
    expect(row?.endsWith(`  ! ${warning.slice(0, 59)}…`)).toBe(true);

    await c.reportRun(run.id, {
      agent_id: 'cli-fake',
      state: 'preempted',
      error_message: 'pod evicted: spot node reclaimed',
    });
    const preempted = await cli(['runs', 'show', run.id], server.env);
    expect(preempted.output).toContain(`run ${run.id} on default/default: preempted\n`);
    expect(preempted.output).toContain('  preempted: pod evicted: spot node reclaimed\n');
    expect(preempted.output).toMatch(
      / {2}requeued \(attempt 2 pending, eligible at \d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ\)\n/,
    );
    const requeued = await cli(['runs', 'show', item.id], server.env);
    expect(requeued.output).toContain(`item ${item.id} on default/default: pending (position 1 in the queue)\n`);
    expect(requeued.output).toContain(`  preempted 1 time, last run ${run.id}\n`);
    expect(requeued.output).toMatch(/ {2}why pending: Requeued after preemption 1 of 3; eligible at \S+Z\.\n/);
  });
});

describe('launch --sweep', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startServer();
  });
  afterAll(cleanupAll);

  it('pushes one item per combination of the swept values in one request, each with its run config', async () => {
    const base = ['launch', '--git', 'https://example.com/r.git', '-E', 'python train.py', '--set', 'epochs=3'];
    const r = await cli([...base, '--sweep', 'lr=0.1,0.01', '--sweep', 'opt.name=adam,sgd'], server.env);
    expect(r.code).toBe(0);
    expect(r.output).toContain('queued 4 items on default/default');
    const ids = r.output.match(/^[0-9a-f-]{36}$/gm) ?? [];
    expect(ids).toHaveLength(4);
    const configs = await Promise.all(ids.map(async (id) => (await server.client.getItem(id)).spec.run_config));
    expect(configs).toEqual([
      { epochs: 3, lr: 0.1, opt: { name: 'adam' } },
      { epochs: 3, lr: 0.1, opt: { name: 'sgd' } },
      { epochs: 3, lr: 0.01, opt: { name: 'adam' } },
      { epochs: 3, lr: 0.01, opt: { name: 'sgd' } },
    ]);
    // All or none: one refused item (a priority the queue does not take) leaves nothing queued.
    const before = (await server.client.listItems('default', 'default')).items.length;
    const refused = await cli([...base, '--sweep', 'lr=1,2', '-P', 'high'], server.env);
    expect(refused.code).not.toBe(0);
    expect(refused.output).toContain('items[0] of 2');
    expect((await server.client.listItems('default', 'default')).items.length).toBe(before);
    const waited = await cli([...base, '--sweep', 'lr=1,2', '--wait'], server.env);
    expect(waited.output).toContain('--wait follows one item');
  });
});
