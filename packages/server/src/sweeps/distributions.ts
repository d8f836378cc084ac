import { leafPaths, type SweepConfig, type SweepParameter } from '@liftoff/core';
import { leafKey, nestValues, type LeafValues } from './params.js';
import { standardNormal, type Random } from './random.js';

/** W&B's defaults for parameters that omit them. */
const DEFAULT_MU = 0;
const DEFAULT_SIGMA = 1;
const DEFAULT_Q = 1;

/** x rounded to the nearest multiple of q (W&B's quantized distributions: round(x / q) * q). */
export const quantize = (x: number, q: number): number => {
  const r = Math.round(x / q) * q;
  // Keep 0.1-step values printable (0.30000000000000004 → 0.3) without changing integers.
  return Number.isInteger(q) ? r : Number(r.toPrecision(12));
};

/**
 * A Gamma(shape, 1) draw: Marsaglia and Tsang's method (2000) for shape >= 1; below 1, Gamma(shape + 1)·U^(1/shape),
 * their boost for small shapes.
 */
export function gammaDraw(shape: number, random: Random): number {
  if (shape < 1) return gammaDraw(shape + 1, random) * (1 - random()) ** (1 / shape);
  const d = shape - 1 / 3;
  const c = 1 / Math.sqrt(9 * d);
  for (;;) {
    const x = standardNormal(random);
    const v = (1 + c * x) ** 3;
    if (v <= 0) continue;
    const u = 1 - random();
    if (Math.log(u) < 0.5 * x * x + d - d * v + d * Math.log(v)) return d * v;
  }
}

/** A Beta(a, b) draw in [0, 1], as X / (X + Y) for X ~ Gamma(a), Y ~ Gamma(b). */
export function betaDraw(a: number, b: number, random: Random): number {
  const x = gammaDraw(a, random);
  const y = gammaDraw(b, random);
  return x + y > 0 ? x / (x + y) : a / (a + b);
}

/** A categorical draw: by `probabilities` when given, else uniform over `values`. */
function categorical(
  values: readonly unknown[],
  probabilities: readonly number[] | undefined,
  random: Random,
): unknown {
  const u = random();
  if (!probabilities) return values[Math.min(values.length - 1, Math.floor(u * values.length))];
  let acc = 0;
  for (let i = 0; i < values.length; i++) {
    acc += probabilities[i] ?? 0;
    if (u < acc) return values[i];
  }
  return values[values.length - 1];
}

/**
 * One draw of a leaf parameter, as W&B's sweep engine defines each distribution: `log_uniform` and `q_log_uniform`
 * take exponents as min/max, the `_values` forms take the values; `inv_log_uniform` is exp(-U) for U uniform over
 * [min, max], `inv_log_uniform_values` is 1/X for X log-uniform over [min, max]; `beta` is Beta(a, b) on [0, 1]
 * and `q_beta` that rounded to a multiple of q.
 */
export function sampleLeaf(p: SweepParameter, random: Random): unknown {
  const min = p.min ?? 0;
  const max = p.max ?? 1;
  const mu = p.mu ?? DEFAULT_MU;
  const sigma = p.sigma ?? DEFAULT_SIGMA;
  const q = p.q ?? DEFAULT_Q;
  const uniform = (a: number, b: number): number => a + (b - a) * random();
  const normal = (): number => mu + sigma * standardNormal(random);
  switch (p.distribution) {
    case 'constant':
      return p.value;
    case 'categorical':
      return categorical(p.values ?? [], p.probabilities, random);
    case 'int_uniform':
      return Math.min(max, min + Math.floor(random() * (max - min + 1)));
    case 'uniform':
      return uniform(min, max);
    case 'q_uniform':
      return quantize(uniform(min, max), q);
    case 'log_uniform':
      return Math.exp(uniform(min, max));
    case 'log_uniform_values':
      return Math.exp(uniform(Math.log(min), Math.log(max)));
    case 'q_log_uniform':
      return quantize(Math.exp(uniform(min, max)), q);
    case 'q_log_uniform_values':
      return quantize(Math.exp(uniform(Math.log(min), Math.log(max))), q);
    case 'inv_log_uniform':
      return Math.exp(-uniform(min, max));
    case 'inv_log_uniform_values':
      return 1 / Math.exp(uniform(Math.log(min), Math.log(max)));
    case 'normal':
      return normal();
    case 'q_normal':
      return quantize(normal(), q);
    case 'log_normal':
      return Math.exp(normal());
    case 'q_log_normal':
      return quantize(Math.exp(normal()), q);
    case 'beta':
      return betaDraw(p.a ?? 1, p.b ?? 1, random);
    case 'q_beta':
      return quantize(betaDraw(p.a ?? 1, p.b ?? 1, random), q);
    case undefined:
      throw new Error('a parameter reached the sampler without a distribution (parseSweepConfig fills it in)');
  }
}

/** One draw of every leaf, in config order. */
export function sampleLeaves(parameters: Record<string, SweepParameter>, random: Random): LeafValues {
  const values: LeafValues = new Map();
  for (const leaf of leafPaths(parameters)) values.set(leafKey(leaf), sampleLeaf(leaf.param, random));
  return values;
}

/** The random proposer: trial n's run config, drawn from its own generator (never exhausted; run_cap ends it). */
export function proposeRandom(config: Pick<SweepConfig, 'parameters'>, random: Random): Record<string, unknown> {
  return nestValues(config.parameters, sampleLeaves(config.parameters, random));
}
