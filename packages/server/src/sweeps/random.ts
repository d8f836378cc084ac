import { uniformFloat64 } from 'pure-rand/distribution/uniformFloat64';
import { xoroshiro128plus } from 'pure-rand/generator/xoroshiro128plus';

/** A source of uniform numbers in [0, 1); proposers take one injected so tests (and restarts) replay them. */
export type Random = () => number;

/** A seeded generator (pure-rand's xoroshiro128+, 53 random bits per number). */
export function seededRandom(seed: number): Random {
  const rng = xoroshiro128plus(seed | 0);
  return () => uniformFloat64(rng);
}

/**
 * The seed of trial `trial` of a sweep seeded `sweepSeed`: each trial draws from a generator of its own, so trial
 * n's random parameters are the same however often (and on whichever replica) they are proposed.
 */
export function trialSeed(sweepSeed: number, trial: number): number {
  // 32-bit FNV-1a over both numbers: distinct, well-spread seeds for neighbouring trial numbers.
  let h = 0x811c9dc5;
  for (const n of [sweepSeed, trial]) {
    for (let i = 0; i < 4; i++) {
      h ^= (n >>> (i * 8)) & 0xff;
      h = Math.imul(h, 0x01000193);
    }
  }
  return h | 0;
}

/** A standard normal draw (Box–Muller; 1 - u keeps the logarithm's argument in (0, 1]). */
export function standardNormal(random: Random): number {
  const u = 1 - random();
  const v = random();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}
