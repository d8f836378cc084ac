import { describe, expect, it } from 'vitest';
import { BUILT_RUNNERS, RESOURCE_TYPES, hasBuiltRunner } from '@liftoff/core/web';
import { RUNNERS } from '../src/runners/index.js';

/**
 * Issue 18: the UI and the CLI mark queues whose resource type no agent of this release runs, from core's
 * BUILT_RUNNERS (browser-safe, so the UI can import it). It must name exactly the agent's runners.
 */
describe('built runners', () => {
  it('lists exactly the resource types the agent has a runner for', () => {
    expect([...BUILT_RUNNERS].sort()).toEqual(Object.keys(RUNNERS).sort());
  });
  it('marks only listed types as runnable', () => {
    for (const r of RESOURCE_TYPES) expect(hasBuiltRunner(r)).toBe(r in RUNNERS);
    expect(hasBuiltRunner('mainframe')).toBe(false);
  });
});
