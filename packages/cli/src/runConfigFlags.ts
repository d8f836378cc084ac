import { BadRequestError } from '@liftoff/core/base';

/** commander's reducer for a repeatable flag. */
export const collect = (v: string, prev: string[] = []): string[] => [...prev, v];

/** `KEY=VALUE` flags (`--set`, `--set-var`, `--env`, `--sweep`) as a mapping; the first `=` splits. */
export function parsePairs(pairs: string[], flag: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const p of pairs) {
    const eq = p.indexOf('=');
    if (eq <= 0) throw new BadRequestError(`${flag} "${p}": expected KEY=VALUE.`);
    out[p.slice(0, eq)] = p.slice(eq + 1);
  }
  return out;
}

/**
 * `--set key=value` over a run config: dotted keys nest (a non-mapping on the way is replaced by one), values parse
 * as JSON when they can and stay strings otherwise. `base` is left as it was; the result is a new mapping. Shared by
 * `liftoff launch` and `liftoff runs rerun`, so a re-run changes a key exactly as a launch would have set it.
 */
export function applySets(base: Record<string, unknown>, sets: string[]): Record<string, unknown> {
  const config = structuredClone(base);
  for (const [key, raw] of Object.entries(parsePairs(sets, '--set'))) {
    let value: unknown = raw;
    try {
      value = JSON.parse(raw);
    } catch {
      value = raw;
    }
    const path = key.split('.');
    let cur = config;
    for (const seg of path.slice(0, -1)) {
      const next = cur[seg];
      cur = (cur[seg] = next && typeof next === 'object' && !Array.isArray(next) ? next : {}) as Record<
        string,
        unknown
      >;
    }
    cur[path[path.length - 1] as string] = value;
  }
  return config;
}
