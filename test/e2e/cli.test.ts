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
      /^liftoff: error: Cannot reach the Liftoff server at http:\/\/127\.0\.0\.1:59999: fetch failed: connect ECONNREFUSED 127\.0\.0\.1:59999\. Is "liftoff server" running there\?/,
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
    expect(r.output).toContain('field "builder.type" (value: "podman"): must be one of docker, kaniko, noop');
    noStack(r.output);
  });

  it('refuses a valid W&B config naming a builder it cannot use yet', async () => {
    const path = agentConfig(
      tempDir(),
      'entity: default\nmax_jobs: -1\nqueues:\n  - default\nbuilder:\n  type: kaniko\n  build-context-store: s3://bucket/contexts/\n',
    );
    const r = await cli(['launch-agent', '-c', path], server.env);
    expect(r.code).toBe(2);
    expect(r.output).toContain('builder type "kaniko" is not supported yet');
  });

  it('refuses to start without a queue, and for a queue whose runner it lacks', async () => {
    const none = await cli(['launch-agent', '-c', agentConfig(tempDir(), 'entity: default\n')], server.env);
    expect(none.output).toContain('no queue to poll: pass -q QUEUE');
    await server.client.createQueue('default', { name: 'k8s', resource: 'kubernetes' });
    const k8s = await cli(['launch-agent', '-q', 'k8s', '--name', 'k8s-agent'], server.env);
    expect(k8s.output).toContain('Queue "k8s" runs kubernetes jobs, which this Liftoff agent cannot run yet');
    expect(k8s.code).toBe(2);
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
