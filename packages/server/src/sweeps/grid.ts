import { leafPaths, NotSupportedError, type SweepConfig, type SweepLeaf } from '@liftoff/core';
import { leafKey, nestValues, type LeafValues } from './params.js';

/** The values grid takes for a leaf: `values`, or the one `value`; anything continuous is refused, as W&B does. */
function gridValues(leaf: SweepLeaf): readonly unknown[] {
  const p = leaf.param;
  if (p.distribution === 'categorical') return p.values ?? [];
  if (p.distribution === 'constant') return [p.value];
  throw new NotSupportedError(
    `parameter "${leafKey(leaf)}" has distribution ${String(p.distribution)}: method grid needs "values" or "value" for every parameter`,
  );
}

/** How many trials the grid has: the product of the leaves' value counts. */
export function gridSize(config: Pick<SweepConfig, 'parameters'>): number {
  return leafPaths(config.parameters).reduce((n, leaf) => n * gridValues(leaf).length, 1);
}

/**
 * Grid trial `trial` (0-based): the combination at that index, the last parameter varying fastest, or undefined
 * once the grid is exhausted. Indexing (rather than remembering what ran) makes trial numbers idempotent: the same
 * number is the same combination on any replica and after any restart.
 */
export function proposeGrid(
  config: Pick<SweepConfig, 'parameters'>,
  trial: number,
): Record<string, unknown> | undefined {
  const leaves = leafPaths(config.parameters);
  const lists = leaves.map(gridValues);
  if (!Number.isInteger(trial) || trial < 0 || trial >= gridSize(config)) return undefined;
  const values: LeafValues = new Map();
  let rest = trial;
  for (let i = leaves.length - 1; i >= 0; i--) {
    const list = lists[i] ?? [];
    const leaf = leaves[i];
    if (!leaf) continue;
    values.set(leafKey(leaf), list[rest % list.length]);
    rest = Math.floor(rest / list.length);
  }
  return nestValues(config.parameters, values);
}
