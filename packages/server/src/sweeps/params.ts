import { leafPaths, type SweepLeaf, type SweepParameter } from '@liftoff/core';

/** One value per leaf, by the leaf's dotted run-config key. */
export type LeafValues = Map<string, unknown>;

export const leafKey = (leaf: SweepLeaf): string => leaf.keys.join('.');

/** The trial's run config: leaf values put back into the nesting of the config's `parameters`. */
export function nestValues(parameters: Record<string, SweepParameter>, values: LeafValues): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const leaf of leafPaths(parameters)) {
    let at = out;
    for (const k of leaf.keys.slice(0, -1)) {
      const next = (at[k] ??= {}) as Record<string, unknown>;
      at = next;
    }
    at[leaf.keys[leaf.keys.length - 1] ?? ''] = values.get(leafKey(leaf));
  }
  return out;
}

/** The leaf values a run config holds (the inverse of nestValues). */
export function flattenValues(parameters: Record<string, SweepParameter>, config: Record<string, unknown>): LeafValues {
  const values: LeafValues = new Map();
  for (const leaf of leafPaths(parameters)) {
    let at: unknown = config;
    for (const k of leaf.keys)
      at = at !== null && typeof at === 'object' ? (at as Record<string, unknown>)[k] : undefined;
    values.set(leafKey(leaf), at);
  }
  return values;
}
