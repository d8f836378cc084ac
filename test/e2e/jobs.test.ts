import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentConfig, cleanupAll, cli, startAgent, startServer, tempDir, type TestServer } from '../helpers/procs.js';

/**
 * Issue 21's acceptance: jobs from a code dir and a git repo, launched with different --set values, a new version
 * after an edit (latest moves, v0 still runs the old code byte for byte), a schema violation refused before it is
 * queued, and a re-run keeping its job version. Real server, agent and CLI processes.
 */
describe('jobs end to end', () => {
  let server: TestServer;
  let dir: string;
  let code: string;
  const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');
  // The job prints the sha256 of its own bytes and its run config.
  const program = (tag: string) =>
    `# ${tag}\nimport hashlib, os\n` +
    'print("CODE " + hashlib.sha256(open(__file__, "rb").read()).hexdigest())\n' +
    'print("CONFIG " + os.environ["LIFTOFF_RUN_CONFIG"])\n';

  beforeAll(async () => {
    server = await startServer();
    await startAgent(server, { config: agentConfig(tempDir(), 'git:\n  allow-file: true\n') });
    dir = tempDir('liftoff-jobs-e2e-');
    code = join(dir, 'code');
    mkdirSync(code);
    writeFileSync(join(code, 'train.py'), program('first'));
    writeFileSync(
      join(dir, 'schema.yaml'),
      'type: object\nproperties:\n  lr: {type: number, maximum: 1}\n  opt: {enum: [adam, sgd]}\nadditionalProperties: false\n',
    );
  });
  afterAll(cleanupAll);

  const lineOf = (output: string, tag: string) =>
    (output.split('\n').find((l) => l.startsWith(`${tag} `)) ?? '').slice(tag.length + 1);
  const runIdOf = (output: string) => (output.match(/run (\S+) started/) ?? [])[1] as string;

  it('creates a job from a code dir, launches it with different values, and keeps v0 after an edit', async () => {
    const v0 = await cli(
      ['job', 'create', 'train', '--code', code, '-E', 'python3 train.py', '--schema', join(dir, 'schema.yaml')],
      server.env,
    );
    expect(v0.code, v0.output).toBe(0);
    expect(v0.output).toContain('created default/train:v0');
    const same = await cli(
      ['job', 'create', 'train', '--code', code, '-E', 'python3 train.py', '--schema', join(dir, 'schema.yaml')],
      server.env,
    );
    expect(same.output).toContain('no changes: default/train:v0');
    const original = readFileSync(join(code, 'train.py'));

    const a = await cli(['launch', '-j', 'train', '--set', 'lr=0.1', '--wait'], server.env);
    const b = await cli(['launch', '-j', 'train:latest', '--set', 'lr=0.5', '--set', 'opt=sgd', '--wait'], server.env);
    for (const r of [a, b]) expect(r.code, r.output).toBe(0);
    expect(JSON.parse(lineOf(a.output, 'CONFIG'))).toEqual({ lr: 0.1 });
    expect(JSON.parse(lineOf(b.output, 'CONFIG'))).toEqual({ lr: 0.5, opt: 'sgd' });
    expect(lineOf(a.output, 'CODE')).toBe(sha(original));

    writeFileSync(join(code, 'train.py'), program('second'));
    const v1 = await cli(
      ['job', 'create', 'train', '--code', code, '-E', 'python3 train.py', '--schema', join(dir, 'schema.yaml')],
      server.env,
    );
    expect(v1.output).toContain('created default/train:v1');
    const shown = await cli(['job', 'list'], server.env);
    expect(shown.output).toMatch(/train\s+v1\s+2/);

    const latest = await cli(['launch', '-j', 'train', '--set', 'lr=0.2', '--wait'], server.env);
    expect(lineOf(latest.output, 'CODE')).toBe(sha(readFileSync(join(code, 'train.py'))));
    const old = await cli(['launch', '-j', 'train:v0', '--set', 'lr=0.3', '--wait'], server.env);
    expect(old.code, old.output).toBe(0);
    expect(lineOf(old.output, 'CODE')).toBe(sha(original));

    // A re-run of the finished v0 run keeps v0, though latest has moved on.
    const oldRun = runIdOf(old.output);
    expect((await cli(['runs', 'show', oldRun], server.env)).output).toContain('job: train:v0');
    const rerun = await cli(['runs', 'rerun', oldRun, '--set', 'lr=0.4'], server.env);
    expect(rerun.code, rerun.output).toBe(0);
    const itemId = (rerun.output.match(/^[0-9a-f-]{36}$/m) ?? [])[0] as string;
    const item = await server.client.getItem(itemId);
    expect(item.spec.job).toEqual({ name: 'train', version: 'v0' });
    const again = await cli(['runs', 'logs', '-f', await runOfItem(itemId)], server.env);
    expect(lineOf(again.output, 'CODE')).toBe(sha(original));
    expect(JSON.parse(lineOf(again.output, 'CONFIG'))).toEqual({ lr: 0.4 });
  });

  async function runOfItem(itemId: string): Promise<string> {
    for (;;) {
      const item = await server.client.getItem(itemId);
      if (item.run_id) return item.run_id;
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  it('refuses a run config that violates the schema before anything is queued, one line per problem', async () => {
    const before = (await server.client.getQueue('default', 'default')).pending;
    const r = await cli(['launch', '-j', 'train', '--set', 'lr=3', '--set', 'opt=adagrad', '--set', 'x=1'], server.env);
    expect(r.code).toBe(2);
    expect(r.output).toContain('nothing was queued');
    expect(r.output).toMatch(/^\s+lr: must be <= 1$/m);
    expect(r.output).toMatch(/^\s+opt: must be equal to one of the allowed values/m);
    expect(r.output).toMatch(/^\s+x: is not allowed by the schema$/m);
    expect((await server.client.getQueue('default', 'default')).pending).toBe(before);
    // A sweep's items are checked one by one (by the server, in one all-or-nothing batch).
    const sweep = await cli(['launch', '-j', 'train', '--sweep', 'lr=0.1,5'], server.env);
    expect(sweep.code).toBe(2);
    expect(sweep.output).toContain('items[1] of 2');
    expect(sweep.output).toMatch(/^\s+lr: must be <= 1\b/m);
    expect((await server.client.getQueue('default', 'default')).pending).toBe(before);
  });

  it('launches a job named by a W&B spec ("job": entity/project/name:alias)', async () => {
    const spec = join(dir, 'spec.json');
    writeFileSync(spec, JSON.stringify({ job: 'default/proj/train:v0', overrides: { run_config: { lr: 0.7 } } }));
    const r = await cli(['launch', '--spec', spec, '--wait'], server.env);
    expect(r.code, r.output).toBe(0);
    expect(lineOf(r.output, 'CODE')).toBe(sha(program('first')));
    expect(JSON.parse(lineOf(r.output, 'CONFIG'))).toEqual({ lr: 0.7 });
    writeFileSync(spec, JSON.stringify({ job: 'train:v0', overrides: { run_config: { lr: 7 } } }));
    expect((await cli(['launch', '--spec', spec], server.env)).output).toContain('lr: must be <= 1');
  });

  it('creates a job from a git repository pinned to the commit of its ref', async () => {
    const repo = join(dir, 'repo');
    mkdirSync(repo);
    const git = (...args: string[]) =>
      execFileSync('git', ['-C', repo, '-c', 'user.name=t', '-c', 'user.email=t@t', ...args], { encoding: 'utf8' });
    git('init', '-q', '-b', 'main');
    writeFileSync(join(repo, 'train.py'), program('git one'));
    git('add', '.');
    git('commit', '-qm', 'one');
    const first = git('rev-parse', 'HEAD').trim();
    const created = await cli(
      ['job', 'create', 'gitjob', '--git', `file://${repo}`, '--ref', 'main', '-E', 'python3 train.py', '--json'],
      server.env,
    );
    expect(created.code, created.output).toBe(0);
    expect((await server.client.jobVersion('default', 'gitjob', 'v0')).source).toEqual({
      type: 'git',
      url: `file://${repo}`,
      ref: first,
    });
    // The branch moves on; v0 stays at its commit.
    writeFileSync(join(repo, 'train.py'), program('git two'));
    git('commit', '-qam', 'two');
    const r1 = await cli(['launch', '-j', 'gitjob:v0', '--set', 'lr=0.1', '--wait'], server.env);
    const r2 = await cli(['launch', '-j', 'gitjob:v0', '--set', 'lr=0.9', '--wait'], server.env);
    for (const r of [r1, r2]) expect(r.code, r.output).toBe(0);
    expect(lineOf(r1.output, 'CODE')).toBe(sha(program('git one')));
    expect(JSON.parse(lineOf(r2.output, 'CONFIG'))).toEqual({ lr: 0.9 });
    const v1 = await cli(['job', 'create', 'gitjob', '--git', `file://${repo}`, '-E', 'python3 train.py'], server.env);
    expect(v1.output).toContain('created default/gitjob:v1');
    expect((await server.client.jobVersion('default', 'gitjob')).source).toMatchObject({
      ref: git('rev-parse', 'HEAD').trim(),
    });
  });
});
