/**
 * `@liftoff/core/client`: the API client and the schemas it parses answers with, without the rest of core (no
 * agent-config parser and its YAML, no archive code and its tar). Commands that only talk to a server load this;
 * everything here is also exported by `@liftoff/core`.
 */
export { LiftoffClient, type ClientOptions } from './client.js';
