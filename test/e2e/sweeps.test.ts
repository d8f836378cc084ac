import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SWEEP_LAUNCH_KEY_NOTES } from '@liftoff/core';
import {
  agentConfig,
  cleanupAll,
  cli,
  outputOf,
  startAgent,
  startServer,
  tempDir,
  until,
  type TestServer,
} from '../helpers/procs.js';

/** A small real training script: parses its W&B-style arguments, checks them against its run config, reports a loss. */
const TRAIN = `import argparse, json, os
p = argparse.ArgumentParser()
p.add_argument("--lr", type=float, required=True)
p.add_argument("--opt", required=True)
a = p.parse_args()
config = json.loads(os.environ["LIFTOFF_RUN_CONFIG"])
assert config["lr"] == a.lr and config["opt"] == a.opt, (config, a)
print("SWEEP " + os.environ["LIFTOFF_SWEEP_ID"])
print("CONFIG " + json.dumps(config, sort_keys=True))
penalty = {"adam": 0.0, "sgd": 0.5, "rmsprop": 0.25}[a.opt]
for step in range(3):
    print("LIFTOFF_METRICS " + json.dumps({"step": step, "loss": round(a.lr * 10 + penalty + 1 / (step + 1), 6)}))
`;

const SWEEP = `# W&B's grid example, with the trials' run config the base of each trial's parameters.
program: train.py
method: grid
metric:
  name: loss
  goal: minimize
parameters:
  lr:
    values: [0.1, 0.01]
  opt:
    values: [adam, sgd, rmsprop]
`;

/**
 * Issue 19's acceptance (the grid part): `liftoff sweep create` with a real server, agent and CLI; a 2x3 grid of a
 * real python script runs exactly 6 trials with the right run configs and arguments, two at a time.
 */
describe('sweeps end to end', () => {
  let server: TestServer;
  let dir: string;

  beforeAll(async () => {
    server = await startServer();
    await server.client.createQueue('default', { name: 'sweep-proc', resource: 'local-process' });
    await startAgent(server, { queues: ['sweep-proc'], maxJobs: 2, config: agentConfig(tempDir(), '') });
    dir = tempDir('liftoff-sweep-e2e-');
    writeFileSync(join(dir, 'train.py'), TRAIN);
    writeFileSync(join(dir, 'sweep.yaml'), SWEEP);
  }, 120_000);
  afterAll(cleanupAll);

  it('a grid sweep over 2x3 values runs exactly 6 trials with the right run configs', async () => {
    const created = await cli(
      [
        'sweep',
        'create',
        '-q',
        'sweep-proc',
        join(dir, 'sweep.yaml'),
        '--code',
        dir,
        '--parallel',
        '2',
        '--set',
        'seed=7',
      ],
      server.env,
    );
    expect(created.code, created.output).toBe(0);
    const id = created.output.trim().split('\n').at(-1) ?? '';
    const done = await until(async () => {
      const s = await server.client.getSweep('default', id);
      return s.state === 'running' ? undefined : s;
    }, 180_000);
    expect(done).toMatchObject({ state: 'finished', reason: 'grid exhausted', trial_count: 6 });
    expect(done.trials?.map((t) => t.state)).toEqual(Array(6).fill('finished'));
    const configs: unknown[] = [];
    for (const t of done.trials ?? []) {
      const out = await outputOf(server.client, t.run_id ?? '');
      expect(out).toContain(`SWEEP ${id}`);
      const line = out.split('\n').find((l) => l.startsWith('CONFIG ')) ?? '';
      configs.push(JSON.parse(line.slice('CONFIG '.length)));
      const { lr, opt } = t.params as { lr: number; opt: string };
      const penalty = { adam: 0, sgd: 0.5, rmsprop: 0.25 }[opt] ?? NaN;
      expect(t.metric).toBeCloseTo(lr * 10 + penalty + 1 / 3, 5);
    }
    expect(configs).toEqual([
      { lr: 0.1, opt: 'adam', seed: 7 },
      { lr: 0.1, opt: 'sgd', seed: 7 },
      { lr: 0.1, opt: 'rmsprop', seed: 7 },
      { lr: 0.01, opt: 'adam', seed: 7 },
      { lr: 0.01, opt: 'sgd', seed: 7 },
      { lr: 0.01, opt: 'rmsprop', seed: 7 },
    ]);
    expect(done.best).toMatchObject({ number: 3, params: { lr: 0.01, opt: 'adam' } });

    const show = await cli(['sweep', 'show', id], server.env);
    expect(show.code, show.output).toBe(0);
    expect(show.output).toContain('state:  finished (grid exhausted)');
    expect(show.output).toContain('best:   trial 3: ');
    expect(show.output.split('\n').filter((l) => /^\d+ +finished /.test(l)).length).toBe(6);
    const list = await cli(['sweep', 'list'], server.env);
    expect(list.output).toContain(id);
    // A finished sweep cannot be resumed; the refusal is one line and exit 2.
    const resume = await cli(['sweep', 'resume', id], server.env);
    expect(resume.code).toBe(2);
    expect(resume.output).toContain(`liftoff: error: Sweep "${id}" is finished; resume applies to a paused sweep.`);
  }, 240_000);

  /** Creates a sweep from `yaml` with the CLI and waits for it to end. */
  const sweepOf = async (file: string, yaml: string, extra: string[] = []) => {
    writeFileSync(join(dir, file), yaml);
    const r = await cli(
      ['sweep', 'create', '-q', 'sweep-proc', join(dir, file), '--code', dir, '--parallel', '2', ...extra],
      server.env,
    );
    expect(r.code, r.output).toBe(0);
    const id = r.output.trim().split('\n').at(-1) ?? '';
    return until(async () => {
      const s = await server.client.getSweep('default', id);
      return s.state === 'running' ? undefined : s;
    }, 180_000);
  };

  it('a random sweep with run_cap: 10 runs 10 trials, each drawn from its distributions', async () => {
    const done = await sweepOf(
      'random.yaml',
      'program: train.py\nmethod: random\nmetric: {name: loss}\nrun_cap: 10\nparameters:\n' +
        '  lr: {distribution: log_uniform_values, min: 0.001, max: 0.1}\n  opt: {values: [adam, sgd, rmsprop]}\n',
    );
    expect(done).toMatchObject({ state: 'finished', reason: 'run_cap 10 reached', trial_count: 10 });
    expect(done.trials?.map((t) => t.state)).toEqual(Array(10).fill('finished'));
    const lrs = (done.trials ?? []).map((t) => (t.params as { lr: number }).lr);
    expect(lrs.every((lr) => lr >= 0.001 && lr <= 0.1)).toBe(true);
    expect(new Set(lrs).size).toBe(10);
  }, 240_000);

  it('a small bayes sweep runs to its run_cap, its best trial the lowest loss', async () => {
    const done = await sweepOf(
      'bayes.yaml',
      'program: train.py\nmethod: bayes\nmetric: {name: loss, goal: minimize}\nrun_cap: 8\nparameters:\n' +
        '  lr: {distribution: uniform, min: 0.0, max: 0.1}\n  opt: {value: adam}\n',
    );
    expect(done).toMatchObject({ state: 'finished', reason: 'run_cap 8 reached', trial_count: 8 });
    const metrics = (done.trials ?? []).map((t) => t.metric as number);
    // Its proposals stay in the support (uniform [0, 0.1]); how well it searches is the in-process test's job
    // (packages/server/test/sweepProposers.test.ts, fixed seeds), as this sweep's seed is its own.
    expect(
      (done.trials ?? []).every((t) => (t.params as { lr: number }).lr >= 0 && (t.params as { lr: number }).lr < 0.1),
    ).toBe(true);
    expect(metrics.every((m) => Number.isFinite(m))).toBe(true);
    expect(done.best?.metric).toBe(Math.min(...metrics));
  }, 240_000);

  it('a bad sweep file is refused before anything is uploaded, every problem on its own line', async () => {
    writeFileSync(
      join(dir, 'bad.yaml'),
      'method: grid\nmax_schedulers: 1\nparameters:\n  lr: {min: 0.0, max: 1.0}\n  opt: {values: []}\n',
    );
    const r = await cli(['sweep', 'create', '-q', 'sweep-proc', join(dir, 'bad.yaml'), '--code', dir], server.env);
    expect(r.code).toBe(2);
    expect(r.output).toContain('bad.yaml is invalid:\n');
    expect(r.output).toContain('  - unknown field "max_schedulers": remove it or check its spelling\n');
    expect(r.output).toContain('method grid needs "values" or "value", not distribution uniform');
    expect(r.output).toContain('field "parameters.opt.values" (value: []): must have at least 1 entries');
    expect((await server.client.listSweeps('default')).sweeps.length).toBe(3);
  });

  it("a W&B launch-sweep file's job runs every trial as that Liftoff job, each run config checked against its schema", async () => {
    writeFileSync(
      join(dir, 'schema.json'),
      JSON.stringify({
        type: 'object',
        properties: { lr: { type: 'number', maximum: 0.5 }, opt: { enum: ['adam', 'sgd', 'rmsprop'] } },
        required: ['lr', 'opt'],
      }),
    );
    const made = await cli(
      ['job', 'create', 'trainer', '--code', dir, '-E', 'python3 train.py', '--schema', join(dir, 'schema.json')],
      server.env,
    );
    expect(made.code, made.output).toBe(0);
    // W&B's launch-sweep shape: `job` (entity/project/name:alias) and a scheduler; no source flag given.
    writeFileSync(
      join(dir, 'job.yaml'),
      'job: default/sweeps/trainer:latest\nscheduler: {num_workers: 1}\nprogram: train.py\nmethod: grid\n' +
        'metric: {name: loss, goal: minimize}\nparameters:\n  lr: {values: [0.1, 0.2]}\n  opt: {value: sgd}\n',
    );
    const created = await cli(['sweep', 'create', '-q', 'sweep-proc', join(dir, 'job.yaml')], server.env);
    expect(created.code, created.output).toBe(0);
    expect(created.output).toContain('the trials run job trainer:v0');
    const id = created.output.trim().split('\n').at(-1) ?? '';
    const done = await until(async () => {
      const s = await server.client.getSweep('default', id);
      return s.state === 'running' ? undefined : s;
    }, 120_000);
    expect(done).toMatchObject({ state: 'finished', reason: 'grid exhausted', trial_count: 2 });
    expect(done.notes).toContain(SWEEP_LAUNCH_KEY_NOTES.job);
    for (const t of done.trials ?? []) {
      expect(t.state).toBe('finished');
      const item = await server.client.getItem(t.item_id);
      expect(item.spec.job).toEqual({ name: 'trainer', version: 'v0' });
      expect(item.spec.source.type).toBe('code');
      const line = (await outputOf(server.client, t.run_id ?? '')).split('\n').find((l) => l.startsWith('CONFIG '));
      expect(JSON.parse(line?.slice('CONFIG '.length) ?? 'null')).toEqual({
        lr: (t.params as { lr: number }).lr,
        opt: 'sgd',
      });
    }

    // -j with a grid whose first trial breaks the schema: refused, one line per problem, and no sweep is made.
    const before = (await server.client.listSweeps('default')).sweeps.length;
    writeFileSync(
      join(dir, 'badjob.yaml'),
      'program: train.py\nmethod: grid\nparameters:\n  lr: {values: [0.9]}\n  opt: {value: adam}\n',
    );
    const refused = await cli(
      ['sweep', 'create', '-q', 'sweep-proc', join(dir, 'badjob.yaml'), '-j', 'trainer:v0'],
      server.env,
    );
    expect(refused.code).toBe(2);
    expect(refused.output).toContain('The run config does not match the schema of job trainer:v0');
    expect(refused.output).toContain('  lr: must be <= 0.5');
    expect((await server.client.listSweeps('default')).sweeps.length).toBe(before);
    // A source flag and -j at once is refused too.
    const both = await cli(
      ['sweep', 'create', '-q', 'sweep-proc', join(dir, 'badjob.yaml'), '-j', 'trainer', '--code', dir],
      server.env,
    );
    expect(both.code).toBe(2);
    expect(both.output).toContain('Give exactly one source for the trials');
  }, 240_000);
});
