import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  ConfigInvalidError,
  SWEEP_LAUNCH_KEY_NOTES,
  leafPaths,
  parseSweepConfig,
  parseSweepConfigYaml,
  sweepTrialCommand,
  type ParsedSweepConfig,
} from '@liftoff/core';

const FIXTURES = join(import.meta.dirname, 'fixtures', 'sweeps');
const load = (name: string): ParsedSweepConfig =>
  parseSweepConfigYaml(readFileSync(join(FIXTURES, name), 'utf8'), name);

/** Each leaf's run-config key (dotted) and distribution, in the config's order. */
const distributions = (p: ParsedSweepConfig): Record<string, string | undefined> =>
  Object.fromEntries(leafPaths(p.config.parameters).map((l) => [l.keys.join('.'), l.param.distribution]));

function problemsOf(text: string): string[] {
  let caught: unknown;
  try {
    parseSweepConfigYaml(text, 'sweep.yaml');
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(ConfigInvalidError);
  const error = caught as ConfigInvalidError;
  expect(error.code).toBe('CONFIG_INVALID');
  expect(error.message).toBe(`sweep.yaml is invalid:\n${error.problems.map((p) => `  - ${p}`).join('\n')}`);
  return error.problems;
}

describe('W&B-format sweep files load unchanged', () => {
  const cases: {
    file: string;
    method: string;
    leaves: Record<string, string>;
    notes?: string[];
    check?: (p: ParsedSweepConfig) => void;
  }[] = [
    {
      file: 'docs-grid.yaml',
      method: 'grid',
      leaves: { optimizer: 'categorical', batch_size: 'categorical' },
      check: (p) => expect(p.config.metric).toEqual({ name: 'val_loss', goal: 'minimize' }),
    },
    {
      file: 'docs-random.yaml',
      method: 'random',
      // Integer bounds infer int_uniform, float bounds (even 0.0 and 1.0) uniform, as W&B's Python loader does.
      leaves: { batch_size: 'categorical', epochs: 'int_uniform', lr: 'uniform', dropout: 'uniform' },
      check: (p) => {
        expect(p.config.run_cap).toBe(10);
        expect(p.config.name).toBe('sweep');
      },
    },
    {
      file: 'docs-bayes-hyperband.yaml',
      method: 'bayes',
      leaves: { learning_rate: 'log_uniform_values', units: 'q_uniform', activation: 'categorical' },
      check: (p) => {
        expect(p.config.metric?.target).toBe(0.1);
        expect(p.config.early_terminate).toEqual({ type: 'hyperband', min_iter: 3, eta: 3 });
        expect(p.config.parameters.activation?.probabilities).toEqual([0.5, 0.25, 0.25]);
      },
    },
    {
      file: 'docs-hyperband-max-iter.yaml',
      method: 'random',
      leaves: { lr: 'uniform' },
      check: (p) => expect(p.config.early_terminate).toEqual({ type: 'hyperband', max_iter: 27, s: 2, eta: 3 }),
    },
    {
      file: 'docs-distributions.yaml',
      method: 'random',
      leaves: {
        fixed: 'constant',
        pick: 'categorical',
        layers: 'int_uniform',
        frac: 'uniform',
        width: 'q_uniform',
        exp_lr: 'log_uniform',
        lr: 'log_uniform_values',
        q_exp: 'q_log_uniform',
        batch: 'q_log_uniform_values',
        inv_exp: 'inv_log_uniform',
        inv: 'inv_log_uniform_values',
        noise: 'normal',
        q_noise: 'q_normal',
        scale: 'log_normal',
        q_scale: 'q_log_normal',
      },
    },
    {
      file: 'docs-nested.yaml',
      method: 'random',
      leaves: { 'optimizer.learning_rate': 'categorical', 'optimizer.momentum': 'constant', epochs: 'constant' },
    },
    {
      file: 'docs-command-macros.yaml',
      method: 'grid',
      leaves: { lr: 'categorical' },
      check: (p) =>
        expect(sweepTrialCommand(p.config, { lr: 0.1 })).toEqual([
          '/usr/bin/env',
          'python3',
          'train.py',
          '-b',
          'your-training-config',
          '--lr=0.1',
          'lr=0.1',
        ]),
    },
    {
      file: 'launch-sweep.yaml',
      method: 'bayes',
      leaves: { learning_rate: 'uniform' },
      notes: [SWEEP_LAUNCH_KEY_NOTES.scheduler, SWEEP_LAUNCH_KEY_NOTES.launch, SWEEP_LAUNCH_KEY_NOTES.job],
      check: (p) => expect(p.config.run_cap).toBe(5),
    },
    {
      file: 'launch-sweep-image.yaml',
      method: 'random',
      leaves: { seed: 'categorical' },
      notes: [SWEEP_LAUNCH_KEY_NOTES.scheduler, SWEEP_LAUNCH_KEY_NOTES.image_uri],
    },
  ];
  for (const c of cases) {
    it(c.file, () => {
      const parsed = load(c.file);
      expect(parsed.config.method).toBe(c.method);
      expect(distributions(parsed)).toEqual(c.leaves);
      expect(parsed.notes).toEqual(c.notes ?? []);
      c.check?.(parsed);
    });
  }

  it('a JSON body (no int/float distinction) infers int_uniform from integral numbers', () => {
    const parsed = parseSweepConfig(
      { method: 'random', parameters: { a: { min: 1, max: 4 }, b: { min: 0.5, max: 2 } } },
      'body',
    );
    expect(distributions(parsed)).toEqual({ a: 'int_uniform', b: 'uniform' });
  });
});

describe('bad sweep files are refused with one line per problem, all at once', () => {
  const cases: { name: string; yaml: string; problems: string[] }[] = [
    {
      name: 'unknown keys at every level and a bad method',
      yaml: `method: hyperopt\nmax_schedulers: 2\nmetric: {name: loss, goal: lower, impute: 0}\nparameters:\n  lr: {min: 0.1, max: 1, step: 2}\n`,
      problems: [
        'unknown field "max_schedulers": remove it or check its spelling',
        'field "method" (value: "hyperopt"): must be one of grid, random, bayes',
        'field "metric.goal" (value: "lower"): must be one of minimize, maximize',
        'unknown field "metric.impute": remove it or check its spelling',
        'unknown field "parameters.lr.step": remove it or check its spelling',
      ],
    },
    {
      name: 'distribution rules',
      yaml: [
        'method: random',
        'parameters:',
        '  a: {distribution: int_uniform, min: 0.5, max: 3}',
        '  b: {distribution: log_uniform_values, min: 0, max: 1}',
        '  c: {distribution: uniform, min: 2, max: 1}',
        '  d: {distribution: uniform, min: 0, max: 1, q: 2}',
        '  e: {values: [1, 2], probabilities: [0.5]}',
        '  f: {values: [1, 2], probabilities: [0.5, 0.6]}',
        '  g: {distribution: normal, sigma: 0}',
        '  h: {mu: 1}',
        '  i: {distribution: beta}',
        '  j: {distribution: beta, a: 0, b: 2}',
        '  k: {distribution: q_beta, a: 2, b: 2, mu: 1}',
        '  l: {distribution: gamma}',
        '',
      ].join('\n'),
      problems: [
        'field "parameters.a.min" (value: 0.5): must be an integer for distribution int_uniform',
        'field "parameters.b.min" (value: 0): must be greater than 0 for distribution log_uniform_values',
        'field "parameters.c.max" (value: 1): must be greater than min (2)',
        'field "parameters.d.q" (value: 2): is not used by distribution uniform: remove it',
        'field "parameters.e.probabilities" (value: [0.5]): must have one entry per value (2)',
        'field "parameters.f.probabilities" (value: [0.5,0.6]): must sum to 1',
        'field "parameters.g.sigma" (value: 0): must be greater than 0',
        'field "parameters.h" (value: {"mu":1}): needs "value", "values", "min" and "max", "parameters" or a "distribution" (one of constant, categorical, int_uniform, uniform, q_uniform, log_uniform, log_uniform_values, q_log_uniform, q_log_uniform_values, inv_log_uniform, inv_log_uniform_values, normal, q_normal, log_normal, q_log_normal, beta, q_beta)',
        'field "parameters.i.a" (value: missing): is required for distribution beta',
        'field "parameters.i.b" (value: missing): is required for distribution beta',
        'field "parameters.j.a" (value: 0): must be greater than 0',
        'field "parameters.k.mu" (value: 1): is not used by distribution q_beta: remove it',
        'field "parameters.l.distribution" (value: "gamma"): must be one of constant, categorical, int_uniform, uniform, q_uniform, log_uniform, log_uniform_values, q_log_uniform, q_log_uniform_values, inv_log_uniform, inv_log_uniform_values, normal, q_normal, log_normal, q_log_normal, beta, q_beta',
      ],
    },
    {
      name: 'cross-key rules: grid over a range, bayes and hyperband without a metric, macros',
      yaml: [
        'method: grid',
        'early_terminate: {type: hyperband, max_iter: 9}',
        'command: [python3, "${program}", "${args_json_file}"]',
        'parameters:',
        '  lr: {min: 0.1, max: 1.0}',
        '  opt:',
        '    parameters:',
        '      m: {distribution: normal}',
        '',
      ].join('\n'),
      problems: [
        'field "early_terminate.s" (value: missing): is required with max_iter (the number of brackets)',
        'field "metric" (value: missing): is required with early_terminate',
        'field "parameters.lr" (value: {"min":0.1,"max":1,"distribution":"uniform"}): method grid needs "values" or "value", not distribution uniform',
        'field "parameters.opt.parameters.m" (value: {"distribution":"normal"}): method grid needs "values" or "value", not distribution normal',
        'field "command[2]" (value: "${args_json_file}"): unknown macro ${args_json_file}: the macros are ${env}, ${interpreter}, ${program}, ${args}, ${args_no_hyphens}, ${args_json}',
        'field "program" (value: missing): is required: the command uses ${program}',
      ],
    },
    {
      name: 'a launch-sweep job reference that is not [entity/[project/]]name[:alias]',
      yaml: 'method: random\njob: a/b/c/d\nparameters: {x: {values: [1]}}\n',
      problems: ['field "job" (value: "a/b/c/d"): must be [entity/[project/]]name[:alias]'],
    },
    {
      name: 'missing method and parameters',
      yaml: 'metric: {name: loss}\n',
      problems: [
        'field "method" (value: missing): must be one of grid, random, bayes',
        'field "parameters" (value: missing): is required (record)',
      ],
    },
    {
      name: 'bayes without a metric; hyperband without min_iter or max_iter',
      yaml: 'method: bayes\nearly_terminate: {type: hyperband, eta: 1}\nparameters: {a: {values: [1]}}\n',
      problems: [
        'field "early_terminate.eta" (value: 1): must be greater than 1',
        'field "early_terminate.min_iter" (value: missing): hyperband needs min_iter or max_iter',
        'field "metric" (value: missing): is required for method bayes (it models the metric)',
        'field "metric" (value: missing): is required with early_terminate',
      ],
    },
    {
      name: 'not YAML',
      yaml: 'method: [grid\n',
      problems: [],
    },
    {
      name: 'a list at the top',
      yaml: '- method: grid\n',
      problems: ['the top level must be a mapping of keys (method, metric, parameters, ...)'],
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const problems = problemsOf(c.yaml);
      if (c.name === 'not YAML') {
        expect(problems.length).toBeGreaterThan(0);
        expect(problems[0]).toMatch(/^it is not valid YAML at line \d+, column \d+: /);
      } else {
        expect(problems.sort()).toEqual([...c.problems].sort());
      }
    });
  }
});

describe('trial commands', () => {
  it('W&B default command around program; booleans, nulls and nested values as W&B writes them', () => {
    expect(
      sweepTrialCommand({ program: 'train.py' }, { lr: 0.5, on: true, none: null, opt: { m: 0.9 }, name: 'a b' }),
    ).toEqual([
      '/usr/bin/env',
      'python3',
      'train.py',
      '--lr=0.5',
      '--on=True',
      '--none=None',
      '--opt={"m":0.9}',
      '--name=a b',
    ]);
  });
  it('a macro inside a longer argument is substituted in place; no command means the source entry point', () => {
    expect(sweepTrialCommand({ command: ['run', '--cfg=${args_json}', 'x${args}'] }, { a: 1, b: 'z' })).toEqual([
      'run',
      '--cfg={"a":1,"b":"z"}',
      'x--a=1 --b=z',
    ]);
    expect(sweepTrialCommand({}, { a: 1 })).toBeUndefined();
  });
});
