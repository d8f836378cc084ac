import { CholeskyDecomposition, Matrix } from 'ml-matrix';
import { leafPaths, type SweepConfig, type SweepLeaf, type SweepParameter } from '@liftoff/core';
import { quantize, sampleLeaves } from './distributions.js';
import { flattenValues, leafKey, nestValues, type LeafValues } from './params.js';
import { standardNormal, type Random } from './random.js';

/** A finished (or reporting) trial: its run config and the metric value the search compares (lower or higher). */
export interface ObservedTrial {
  config: Record<string, unknown>;
  value: number;
}

export interface BayesOptions {
  /** Random candidates scored by expected improvement per proposal. @default 1000 */
  candidates?: number;
  /** Candidates drawn around the best trial so far (in the unit cube, σ = 0.05). @default 500 */
  localCandidates?: number;
  /** Trials proposed at random before the model is used. @default 3 */
  initialRandom?: number;
}

/**
 * The bayes proposer: a Gaussian process over the trials so far, the next trial the candidate with the highest
 * expected improvement (W&B's bayes method is a GP too). No well-kept GP or TPE library supports Node 20 (npm has
 * small, unmaintained ones), so this is a small implementation over ml-matrix's Cholesky decomposition:
 * - each continuous leaf maps to [0, 1] (log-scaled for the log distributions, normals by ±3σ), each categorical one
 *   to one-hot coordinates, constants to none;
 * - an RBF kernel with unit signal variance on standardised metric values, its length scale chosen from a few by
 *   marginal likelihood, a small noise term for the jitter of real metrics;
 * - candidates are prior draws plus perturbations of the best trial, decoded back through each distribution's
 *   quantisation, so every proposal is one the config allows.
 */
export function proposeBayes(
  config: Pick<SweepConfig, 'parameters' | 'metric'>,
  observed: readonly ObservedTrial[],
  random: Random,
  options: BayesOptions = {},
): Record<string, unknown> {
  const { candidates = 1000, localCandidates = 500, initialRandom = 3 } = options;
  const leaves = leafPaths(config.parameters);
  const usable = observed.filter((o) => Number.isFinite(o.value));
  if (usable.length < initialRandom) return nestValues(config.parameters, sampleLeaves(config.parameters, random));

  const sign = config.metric?.goal === 'maximize' ? -1 : 1;
  const xs = usable.map((o) => encode(leaves, flattenValues(config.parameters, o.config)));
  const raw = usable.map((o) => sign * o.value);
  const mean = raw.reduce((a, b) => a + b, 0) / raw.length;
  const sd = Math.sqrt(raw.reduce((a, b) => a + (b - mean) ** 2, 0) / raw.length) || 1;
  const ys = raw.map((y) => (y - mean) / sd);
  const gp = fitGp(xs, ys);

  const bestIndex = ys.indexOf(Math.min(...ys));
  const best = xs[bestIndex] ?? [];
  const bestY = ys[bestIndex] ?? 0;
  let choice: LeafValues | undefined;
  let choiceEi = -Infinity;
  const consider = (values: LeafValues): void => {
    const x = encode(leaves, values);
    const { mu, variance } = gp.predict(x);
    const ei = expectedImprovement(mu, Math.sqrt(variance), bestY);
    if (ei > choiceEi) {
      choiceEi = ei;
      choice = values;
    }
  };
  for (let i = 0; i < candidates; i++) consider(sampleLeaves(config.parameters, random));
  const bestValues = flattenValues(config.parameters, usable[bestIndex]?.config ?? {});
  for (let i = 0; i < localCandidates; i++) consider(perturb(leaves, best, bestValues, random));
  return nestValues(config.parameters, choice ?? sampleLeaves(config.parameters, random));
}

/** A leaf's coordinate(s) in the unit cube. */
function encodeLeaf(p: SweepParameter, v: unknown): number[] {
  if (p.distribution === 'constant') return [];
  if (p.distribution === 'categorical') {
    const key = JSON.stringify(v);
    return (p.values ?? []).map((c) => (JSON.stringify(c) === key ? 1 : 0));
  }
  const x = typeof v === 'number' ? v : Number.NaN;
  const [lo, hi, f] = scale(p);
  return [Math.min(1, Math.max(0, (f(x) - lo) / (hi - lo || 1)))];
}

/** The bounds and transform that make a numeric leaf uniform-ish on [lo, hi]. */
function scale(p: SweepParameter): [number, number, (x: number) => number] {
  const min = p.min ?? 0;
  const max = p.max ?? 1;
  const mu = p.mu ?? 0;
  const sigma = p.sigma ?? 1;
  const id = (x: number): number => x;
  switch (p.distribution) {
    case 'log_uniform':
    case 'q_log_uniform':
      return [min, max, Math.log];
    case 'log_uniform_values':
    case 'q_log_uniform_values':
      return [Math.log(min), Math.log(max), Math.log];
    case 'inv_log_uniform':
      return [min, max, (x) => -Math.log(x)];
    case 'inv_log_uniform_values':
      return [Math.log(min), Math.log(max), (x) => -Math.log(x)];
    case 'normal':
    case 'q_normal':
      return [mu - 3 * sigma, mu + 3 * sigma, id];
    case 'log_normal':
    case 'q_log_normal':
      return [mu - 3 * sigma, mu + 3 * sigma, Math.log];
    case 'beta':
    case 'q_beta':
      // The support itself: [0, 1].
      return [0, 1, id];
    default:
      return [min, max, id];
  }
}

/** A unit coordinate back to a value the leaf's distribution can produce (the inverse of encodeLeaf). */
function decodeLeaf(p: SweepParameter, u: number): number {
  const [lo, hi] = scale(p);
  const t = lo + u * (hi - lo);
  const inverse: Record<string, (t: number) => number> = {
    log_uniform: Math.exp,
    q_log_uniform: Math.exp,
    log_uniform_values: Math.exp,
    q_log_uniform_values: Math.exp,
    log_normal: Math.exp,
    q_log_normal: Math.exp,
    inv_log_uniform: (t) => Math.exp(-t),
    inv_log_uniform_values: (t) => Math.exp(-t),
  };
  const x = (inverse[p.distribution ?? ''] ?? ((t: number) => t))(t);
  if (p.distribution === 'int_uniform') return Math.round(x);
  if (p.distribution?.startsWith('q_')) return quantize(x, p.q ?? 1);
  return x;
}

function encode(leaves: readonly SweepLeaf[], values: LeafValues): number[] {
  return leaves.flatMap((l) => encodeLeaf(l.param, values.get(leafKey(l))));
}

/** A candidate near the best trial: continuous leaves moved by N(0, 0.05) in the unit cube, categoricals kept 80%. */
function perturb(
  leaves: readonly SweepLeaf[],
  best: readonly number[],
  bestValues: LeafValues,
  random: Random,
): LeafValues {
  const values: LeafValues = new Map();
  let at = 0;
  for (const leaf of leaves) {
    const p = leaf.param;
    const key = leafKey(leaf);
    if (p.distribution === 'constant') {
      values.set(key, p.value);
    } else if (p.distribution === 'categorical') {
      const list = p.values ?? [];
      at += list.length;
      values.set(key, random() < 0.8 ? bestValues.get(key) : list[Math.floor(random() * list.length)]);
    } else {
      const u = Math.min(1, Math.max(0, (best[at] ?? 0.5) + 0.05 * standardNormal(random)));
      at += 1;
      values.set(key, decodeLeaf(p, u));
    }
  }
  return values;
}

interface Gp {
  predict(x: readonly number[]): { mu: number; variance: number };
}

const NOISE = 1e-4;
const LENGTH_SCALES = [0.05, 0.1, 0.2, 0.4, 0.8];

function rbf(a: readonly number[], b: readonly number[], length: number): number {
  let d = 0;
  for (let i = 0; i < a.length; i++) d += ((a[i] ?? 0) - (b[i] ?? 0)) ** 2;
  return Math.exp(-d / (2 * length * length));
}

/** The GP posterior with the length scale of highest log marginal likelihood. */
function fitGp(xs: readonly number[][], ys: readonly number[]): Gp {
  const y = Matrix.columnVector([...ys]);
  let best: { lml: number; length: number; alpha: Matrix; kInv: Matrix } | undefined;
  for (const length of LENGTH_SCALES) {
    const k = new Matrix(xs.map((a, i) => xs.map((b, j) => rbf(a, b, length) + (i === j ? NOISE : 0))));
    const chol = new CholeskyDecomposition(k);
    if (!chol.isPositiveDefinite()) continue;
    const alpha = chol.solve(y);
    const l = chol.lowerTriangularMatrix;
    let logDet = 0;
    for (let i = 0; i < xs.length; i++) logDet += Math.log(l.get(i, i));
    const lml = -0.5 * y.transpose().mmul(alpha).get(0, 0) - logDet;
    if (!best || lml > best.lml) best = { lml, length, alpha, kInv: chol.solve(Matrix.eye(xs.length)) };
  }
  if (!best) return { predict: () => ({ mu: 0, variance: 1 }) };
  const { length } = best;
  const alpha = best.alpha.to1DArray();
  const kInv = best.kInv.to2DArray();
  return {
    predict(x) {
      const ks = xs.map((a) => rbf(a, x, length));
      let mu = 0;
      for (let i = 0; i < ks.length; i++) mu += (ks[i] ?? 0) * (alpha[i] ?? 0);
      let quad = 0;
      for (let i = 0; i < ks.length; i++) {
        let row = 0;
        const kRow = kInv[i] ?? [];
        for (let j = 0; j < ks.length; j++) row += (kRow[j] ?? 0) * (ks[j] ?? 0);
        quad += (ks[i] ?? 0) * row;
      }
      return { mu, variance: Math.max(1e-12, 1 - quad) };
    },
  };
}

/** Expected improvement below `best` (we minimise), with a small exploration margin. */
function expectedImprovement(mu: number, sigma: number, best: number, xi = 0.01): number {
  const z = (best - mu - xi) / sigma;
  return (best - mu - xi) * normalCdf(z) + sigma * normalPdf(z);
}

const normalPdf = (z: number): number => Math.exp(-0.5 * z * z) / Math.sqrt(2 * Math.PI);

/** Φ(z) from erf (Abramowitz–Stegun 7.1.26, error below 1.5e-7: ample for ranking candidates). */
function normalCdf(z: number): number {
  const x = Math.abs(z) / Math.SQRT2;
  const t = 1 / (1 + 0.3275911 * x);
  const poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
  const erf = 1 - poly * Math.exp(-x * x);
  return z >= 0 ? 0.5 * (1 + erf) : 0.5 * (1 - erf);
}
