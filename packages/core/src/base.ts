/**
 * `@liftoff/core/base`: the parts of core that import no dependency (no zod, yaml, tar or undici): error classes,
 * states, paths, plain constants and the version. The CLI builds its commands and help from these alone, so that
 * `liftoff --help` does not pay for the schemas; everything here is also exported by `@liftoff/core`.
 */
export * from './errors.js';
export * from './states.js';
export * from './paths.js';
export * from './allowances.js';
export { LIFTOFF_VERSION } from './version.js';
export * from './logPages.js';
export * from './outputPaths.js';
export * from './queueConfigText.js';
