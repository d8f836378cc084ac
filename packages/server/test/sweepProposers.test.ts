import { describe, expect, it } from 'vitest';
import { NotSupportedError, parseSweepConfig, type SweepConfig, type SweepParameter } from '@liftoff/core';
import { proposeBayes, type ObservedTrial } from '../src/sweeps/bayes.js';
import { proposeRandom, sampleLeaf } from '../src/sweeps/distributions.js';
import { gridSize, proposeGrid } from '../src/sweeps/grid.js';
import { hyperbandBands, hyperbandStops, type HyperbandTrial } from '../src/sweeps/hyperband.js';
import { seededRandom, trialSeed } from '../src/sweeps/random.js';

const configOf = (raw: unknown): SweepConfig => parseSweepConfig(raw, 'test').config;

describe('grid', () => {
  const config = configOf({
    method: 'grid',
    parameters: {
      opt: { parameters: { lr: { values: [0.1, 0.01] }, m: { value: 0.9 } } },
      bs: { values: [16, 32, 64] },
    },
  });
  it('enumerates every combination once, in order, nested as the config nests them, then is exhausted', () => {
    expect(gridSize(config)).toBe(6);
    const trials = [0, 1, 2, 3, 4, 5].map((n) => proposeGrid(config, n));
    expect(trials).toEqual([
      { opt: { lr: 0.1, m: 0.9 }, bs: 16 },
      { opt: { lr: 0.1, m: 0.9 }, bs: 32 },
      { opt: { lr: 0.1, m: 0.9 }, bs: 64 },
      { opt: { lr: 0.01, m: 0.9 }, bs: 16 },
      { opt: { lr: 0.01, m: 0.9 }, bs: 32 },
      { opt: { lr: 0.01, m: 0.9 }, bs: 64 },
    ]);
    expect(proposeGrid(config, 6)).toBeUndefined();
    expect(proposeGrid(config, -1)).toBeUndefined();
    // The same number is the same combination however often it is asked for (restarts, replicas).
    expect(proposeGrid(config, 4)).toEqual(trials[4]);
  });
  it('refuses continuous parameters, as W&B does', () => {
    const random = configOf({ method: 'random', parameters: { lr: { min: 0.1, max: 1.0 } } });
    expect(() => proposeGrid(random, 0)).toThrow(NotSupportedError);
    expect(() => gridSize(random)).toThrow(/parameter "lr" has distribution uniform: method grid needs/);
  });
});

/** n draws of one parameter from seed 7. */
function draws(p: SweepParameter, n = 4000): number[] {
  const leaf = configOf({ method: 'random', parameters: { x: p } }).parameters.x as SweepParameter;
  const random = seededRandom(7);
  return Array.from({ length: n }, () => sampleLeaf(leaf, random) as number);
}
const mean = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
const sd = (xs: readonly number[]): number => Math.sqrt(mean(xs.map((x) => (x - mean(xs)) ** 2)));
const share = (xs: readonly number[], pred: (x: number) => boolean): number => xs.filter(pred).length / xs.length;
const isMultiple = (x: number, q: number): boolean => Math.abs(x / q - Math.round(x / q)) < 1e-9;

describe('random: every distribution samples its law (4000 draws, fixed seed, bounds ~5 standard errors wide)', () => {
  it('constant and categorical (uniform and with probabilities)', () => {
    expect(new Set(draws({ value: 'x' } as SweepParameter, 50) as unknown[])).toEqual(new Set(['x']));
    const c = draws({ values: [1, 2, 3] });
    for (const v of [1, 2, 3]) expect(share(c, (x) => x === v)).toBeCloseTo(1 / 3, 1);
    const p = draws({ values: [1, 2, 3], probabilities: [0.5, 0.25, 0.25] });
    expect(Math.abs(share(p, (x) => x === 1) - 0.5)).toBeLessThan(0.04);
    expect(Math.abs(share(p, (x) => x === 3) - 0.25)).toBeLessThan(0.04);
  });
  it('int_uniform: integers min..max inclusive, each about equally often', () => {
    const xs = draws({ distribution: 'int_uniform', min: 1, max: 8 });
    expect(xs.every((x) => Number.isInteger(x) && x >= 1 && x <= 8)).toBe(true);
    for (let v = 1; v <= 8; v++) expect(Math.abs(share(xs, (x) => x === v) - 1 / 8)).toBeLessThan(0.03);
  });
  it('uniform and q_uniform', () => {
    const u = draws({ distribution: 'uniform', min: -1, max: 3 });
    expect(u.every((x) => x >= -1 && x < 3)).toBe(true);
    expect(Math.abs(mean(u) - 1)).toBeLessThan(0.1);
    expect(Math.abs(share(u, (x) => x < 0) - 0.25)).toBeLessThan(0.04);
    const q = draws({ distribution: 'q_uniform', min: 0, max: 100, q: 10 });
    expect(q.every((x) => isMultiple(x, 10) && x >= 0 && x <= 100)).toBe(true);
    expect(new Set(q).size).toBe(11);
  });
  it('log_uniform (exponents) and log_uniform_values, q_log_uniform and q_log_uniform_values', () => {
    const e = draws({ distribution: 'log_uniform', min: -9, max: -3 });
    expect(e.every((x) => Math.log(x) >= -9 && Math.log(x) <= -3)).toBe(true);
    expect(Math.abs(mean(e.map(Math.log)) + 6)).toBeLessThan(0.15);
    const v = draws({ distribution: 'log_uniform_values', min: 0.0001, max: 0.1 });
    expect(v.every((x) => x >= 0.0001 && x <= 0.1)).toBe(true);
    expect(Math.abs(mean(v.map(Math.log10)) + 2.5)).toBeLessThan(0.07);
    // A uniform would put ~90% above 0.01; log-uniform puts one third there.
    expect(Math.abs(share(v, (x) => x > 0.01) - 1 / 3)).toBeLessThan(0.04);
    const qe = draws({ distribution: 'q_log_uniform', min: 0, max: 6, q: 1 });
    expect(qe.every((x) => Number.isInteger(x) && x >= 1 && x <= Math.round(Math.exp(6)))).toBe(true);
    const qv = draws({ distribution: 'q_log_uniform_values', min: 16, max: 512, q: 16 });
    expect(qv.every((x) => isMultiple(x, 16) && x >= 16 && x <= 512)).toBe(true);
    expect(share(qv, (x) => x <= 64)).toBeGreaterThan(0.3);
  });
  it('inv_log_uniform (exp(-U)) and inv_log_uniform_values (1/X, X log-uniform)', () => {
    const e = draws({ distribution: 'inv_log_uniform', min: 1, max: 5 });
    expect(e.every((x) => x >= Math.exp(-5) && x <= Math.exp(-1))).toBe(true);
    expect(Math.abs(mean(e.map((x) => -Math.log(x))) - 3)).toBeLessThan(0.1);
    const v = draws({ distribution: 'inv_log_uniform_values', min: 1, max: 100 });
    expect(v.every((x) => x >= 0.01 && x <= 1)).toBe(true);
    expect(Math.abs(mean(v.map((x) => -Math.log10(x))) - 1)).toBeLessThan(0.05);
  });
  it('normal, q_normal, log_normal, q_log_normal (defaults mu 0, sigma 1)', () => {
    const n = draws({ distribution: 'normal', mu: 0, sigma: 2 });
    expect(Math.abs(mean(n))).toBeLessThan(0.15);
    expect(Math.abs(sd(n) - 2)).toBeLessThan(0.15);
    expect(Math.abs(share(n, (x) => Math.abs(x) < 2) - 0.6827)).toBeLessThan(0.04);
    const d = draws({ distribution: 'normal' });
    expect(Math.abs(sd(d) - 1)).toBeLessThan(0.08);
    const qn = draws({ distribution: 'q_normal', mu: 10, sigma: 3, q: 2 });
    expect(qn.every((x) => isMultiple(x, 2))).toBe(true);
    expect(Math.abs(mean(qn) - 10)).toBeLessThan(0.3);
    const ln = draws({ distribution: 'log_normal', mu: 1, sigma: 0.5 });
    expect(ln.every((x) => x > 0)).toBe(true);
    expect(Math.abs(mean(ln.map(Math.log)) - 1)).toBeLessThan(0.05);
    expect(Math.abs(sd(ln.map(Math.log)) - 0.5)).toBeLessThan(0.04);
    const qln = draws({ distribution: 'q_log_normal', q: 1 });
    expect(qln.every((x) => Number.isInteger(x) && x >= 0)).toBe(true);
  });
  it('beta (a, b; the a < 1 path too) and q_beta, on [0, 1]', () => {
    const b = draws({ distribution: 'beta', a: 2, b: 5 });
    expect(b.every((x) => x >= 0 && x <= 1)).toBe(true);
    // Beta(2, 5): mean 2/7, sd sqrt(10 / (49 · 8)) ≈ 0.1597.
    expect(Math.abs(mean(b) - 2 / 7)).toBeLessThan(0.015);
    expect(Math.abs(sd(b) - 0.1597)).toBeLessThan(0.012);
    // Beta(1/2, 1/2), the arcsine law: mean 1/2, sd sqrt(1/8), P(x < 0.1) = (2/π) asin(√0.1) ≈ 0.2048.
    const arcsine = draws({ distribution: 'beta', a: 0.5, b: 0.5 });
    expect(Math.abs(mean(arcsine) - 0.5)).toBeLessThan(0.03);
    expect(Math.abs(sd(arcsine) - Math.sqrt(1 / 8))).toBeLessThan(0.015);
    expect(Math.abs(share(arcsine, (x) => x < 0.1) - 0.2048)).toBeLessThan(0.035);
    const qb = draws({ distribution: 'q_beta', a: 5, b: 5, q: 0.1 });
    expect(qb.every((x) => isMultiple(x, 0.1) && x >= 0 && x <= 1)).toBe(true);
    expect(Math.abs(mean(qb) - 0.5)).toBeLessThan(0.02);
    // q defaults to 1, as for W&B's other quantized distributions: 0 or 1, about half each for a = b.
    const q1 = draws({ distribution: 'q_beta', a: 3, b: 3 });
    expect(new Set(q1)).toEqual(new Set([0, 1]));
    expect(Math.abs(share(q1, (x) => x === 1) - 0.5)).toBeLessThan(0.04);
  });
  it('a trial draws from a generator of its own: same seed, same trial; neighbouring trials differ', () => {
    const config = configOf({
      method: 'random',
      parameters: { a: { distribution: 'uniform', min: 0, max: 1 }, b: { values: [1, 2, 3, 4] } },
    });
    const trial = (n: number): Record<string, unknown> => proposeRandom(config, seededRandom(trialSeed(42, n)));
    expect(trial(3)).toEqual(trial(3));
    const firsts = new Set([0, 1, 2, 3, 4, 5, 6, 7].map((n) => trial(n).a));
    expect(firsts.size).toBe(8);
    expect(trial(3)).not.toEqual(proposeRandom(config, seededRandom(trialSeed(43, 3))));
  });
});

describe('bayes beats random on a known function', () => {
  // A quadratic bowl with its minimum 0 at (0.3, -1.2), opt "b" adding 0.5: regret is the best value found.
  const config = configOf({
    method: 'bayes',
    metric: { name: 'loss', goal: 'minimize' },
    parameters: {
      x: { distribution: 'uniform', min: -2, max: 2 },
      y: { distribution: 'uniform', min: -2, max: 2 },
      opt: { values: ['a', 'b'] },
    },
  });
  const loss = (c: Record<string, unknown>): number =>
    ((c.x as number) - 0.3) ** 2 + ((c.y as number) + 1.2) ** 2 + (c.opt === 'b' ? 0.5 : 0);
  const BUDGET = 20;
  function regret(method: 'bayes' | 'random', seed: number, goal: 'minimize' | 'maximize' = 'minimize'): number {
    const observed: ObservedTrial[] = [];
    const sign = goal === 'maximize' ? -1 : 1;
    const cfg = { ...config, metric: { name: 'loss', goal } };
    for (let n = 0; n < BUDGET; n++) {
      const random = seededRandom(trialSeed(seed, n));
      const c =
        method === 'bayes'
          ? proposeBayes(cfg, observed, random, { candidates: 600, localCandidates: 300 })
          : proposeRandom(cfg, random);
      observed.push({ config: c, value: sign * loss(c) });
    }
    return Math.min(...observed.map((o) => sign * o.value));
  }
  const seeds = Array.from({ length: 20 }, (_, i) => i + 1);
  it(`over 20 seeds and ${BUDGET} trials each, bayes's mean regret is under a fifth of random's and under 0.03`, () => {
    const bayes = mean(seeds.map((s) => regret('bayes', s)));
    const random = mean(seeds.map((s) => regret('random', s)));
    // Random search's expected best of 20 draws here is about 0.5 (area 16, half the draws on opt b; 0.75 on these
    // seeds): the bound is one random proposals fail, as the first assertion shows on these very seeds.
    expect(random).toBeGreaterThan(0.3);
    expect(bayes).toBeLessThan(0.03);
    expect(bayes).toBeLessThan(random / 5);
  });
  it('maximize goals are searched upwards', () => {
    const bayes = mean(seeds.slice(0, 5).map((s) => regret('bayes', s, 'maximize')));
    expect(bayes).toBeLessThan(0.05);
  });
  it('proposes only what the config allows (quantised, integer, categorical values)', () => {
    const q = configOf({
      method: 'bayes',
      metric: { name: 'm' },
      parameters: {
        units: { distribution: 'q_uniform', min: 32, max: 256, q: 32 },
        layers: { min: 1, max: 6 },
        lr: { distribution: 'log_uniform_values', min: 0.0001, max: 0.1 },
        act: { values: ['relu', 'tanh'] },
      },
    });
    const observed: ObservedTrial[] = [];
    for (let n = 0; n < 12; n++) {
      const c = proposeBayes(q, observed, seededRandom(trialSeed(5, n)), { candidates: 200, localCandidates: 100 });
      expect(isMultiple(c.units as number, 32) && (c.units as number) >= 32 && (c.units as number) <= 256).toBe(true);
      expect(Number.isInteger(c.layers) && (c.layers as number) >= 1 && (c.layers as number) <= 6).toBe(true);
      expect((c.lr as number) >= 0.0001 && (c.lr as number) <= 0.1).toBe(true);
      expect(['relu', 'tanh']).toContain(c.act);
      observed.push({ config: c, value: Math.abs(Math.log10(c.lr as number) + 2) + (c.layers as number) / 10 });
    }
  });
});

describe('hyperband', () => {
  it('brackets from max_iter/s/eta and from min_iter/eta', () => {
    expect(hyperbandBands({ type: 'hyperband', max_iter: 27, s: 2, eta: 3 })).toEqual([3, 9]);
    expect(hyperbandBands({ type: 'hyperband', max_iter: 81, s: 3, eta: 3 })).toEqual([3, 9, 27]);
    expect(hyperbandBands({ type: 'hyperband', min_iter: 3, eta: 3, s: 3 })).toEqual([3, 9, 27]);
    expect(hyperbandBands({ type: 'hyperband', min_iter: 2, eta: 2 }).slice(0, 5)).toEqual([2, 4, 8, 16, 32]);
  });
  const et = { type: 'hyperband' as const, min_iter: 3, eta: 3 };
  /** A loss curve starting at `start` and falling 10% per step, `steps` values long. */
  const curve = (start: number, steps: number): number[] => Array.from({ length: steps }, (_, i) => start * 0.9 ** i);
  it('stops running trials whose value at a passed bracket is in the bottom part; keeps good and young ones', () => {
    const trials: HyperbandTrial[] = [
      ...[1, 1.1, 1.2, 1.3, 1.4, 1.5].map((s, i) => ({ id: `done${i}`, running: false, history: curve(s, 10) })),
      { id: 'poor', running: true, history: curve(5, 4) },
      { id: 'good', running: true, history: curve(0.9, 4) },
      { id: 'young-poor', running: true, history: curve(5, 3) },
      { id: 'poor-ended', running: false, history: curve(6, 4) },
    ];
    expect(hyperbandStops(trials, et, 'minimize')).toEqual(['poor']);
    // At the second bracket (index 9) the poor trial is judged again, against the trials that got that far.
    const late = [...trials.slice(0, 6), { id: 'late', running: true, history: [...curve(1, 4), ...curve(3, 6)] }];
    expect(hyperbandStops(late, et, 'minimize')).toEqual(['late']);
    // For a maximised metric the low values are the poor ones.
    const up = trials.map((t) => ({ ...t, history: t.history.map((v) => -v) }));
    expect(hyperbandStops(up, et, 'maximize')).toEqual(['poor']);
  });
  it('strict compares the best value so far', () => {
    const trials: HyperbandTrial[] = [
      ...[1, 1.1, 1.2].map((s, i) => ({ id: `d${i}`, running: false, history: curve(s, 5) })),
      // Once good, then worse at the bracket: only strict mode keeps it.
      { id: 'dip', running: true, history: [0.1, 3, 3, 3] },
    ];
    expect(hyperbandStops(trials, et, 'minimize')).toEqual(['dip']);
    expect(hyperbandStops(trials, { ...et, strict: true }, 'minimize')).toEqual([]);
  });
});
