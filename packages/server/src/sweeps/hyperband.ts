import type { SweepEarlyTerminate, SweepMetric } from '@liftoff/core';

/** A trial as hyperband sees it: its metric's reported values in step order, and whether it still runs. */
export interface HyperbandTrial {
  id: string;
  running: boolean;
  history: readonly number[];
}

/** How far the bands go for a `min_iter` config without `s`: past any history a trial can report. */
const MAX_BAND = 1_000_000;

/**
 * The brackets (bands) in reported values, as W&B's sweep engine computes them: with `max_iter` and `s`,
 * max_iter/eta, max_iter/eta², … (s of them, floored, at least 1), ascending; with `min_iter`, min_iter, min_iter·eta,
 * min_iter·eta², … (`s` of them when given, else without end).
 */
export function hyperbandBands(et: SweepEarlyTerminate): number[] {
  const bands: number[] = [];
  if (et.max_iter !== undefined) {
    let band = et.max_iter;
    for (let i = 0; i < (et.s ?? 1); i++) {
      band /= et.eta;
      if (band < 1) break;
      bands.push(Math.floor(band));
    }
    return [...new Set(bands)].sort((a, b) => a - b);
  }
  let band = et.min_iter ?? 1;
  for (let i = 0; band <= MAX_BAND && (et.s === undefined || i < et.s); i++) {
    bands.push(Math.round(band));
    band *= et.eta;
  }
  return bands;
}

/**
 * The running trials hyperband stops (W&B's semantics). Values are turned so that lower is better. For each band,
 * the threshold is the value at index floor(n/eta) of the n trials' values at that band (sorted; trials that have
 * reached it, running or ended), so roughly the best 1/eta go on; a running trial is stopped when its value at the
 * last band it has passed is worse than that band's threshold. `strict` compares each trial's best value so far.
 * A band b is passed once a trial has reported more than b values (its value there is the (b+1)-th, W&B's index b).
 */
export function hyperbandStops(
  trials: readonly HyperbandTrial[],
  et: SweepEarlyTerminate,
  goal: SweepMetric['goal'],
): string[] {
  const sign = goal === 'maximize' ? -1 : 1;
  const histories = new Map(
    trials.map((t) => {
      let h = t.history.map((v) => sign * v);
      if (et.strict) {
        let best = Infinity;
        h = h.map((v) => (best = Math.min(best, v)));
      }
      return [t.id, h] as const;
    }),
  );
  const bands = hyperbandBands(et);
  const thresholds = bands.map((band) => {
    const at = [...histories.values()].filter((h) => h.length > band).map((h) => h[band] as number);
    if (!at.length) return Infinity;
    at.sort((a, b) => a - b);
    return at[Math.floor(at.length / et.eta)] ?? Infinity;
  });
  const stops: string[] = [];
  for (const t of trials) {
    if (!t.running) continue;
    const h = histories.get(t.id) ?? [];
    let last = -1;
    for (let i = 0; i < bands.length && (bands[i] ?? Infinity) < h.length; i++) last = i;
    if (last < 0) continue;
    const value = h[bands[last] ?? 0] as number;
    if (value > (thresholds[last] ?? Infinity)) stops.push(t.id);
  }
  return stops;
}
