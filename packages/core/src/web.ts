/**
 * `@liftoff/core/web`: what the browser UI shares with the server, without any node-only or heavy code. Values come
 * from dependency-free modules (states, the queue config text rule); the wire types of the HTTP API are exported as
 * types only, so the zod schemas they are inferred from never reach the bundle (checked by test/ui/static.test.ts:
 * the built UI holds no zod).
 */
export * from './states.js';
export * from './queueConfigText.js';
export type {
  Agent,
  Item,
  ItemSummary,
  LogReadResponse,
  LogSearchResponse,
  MetricKeySummary,
  MetricPoint,
  PendingReason,
  PushBody,
  Queue,
  Run,
  RunDetail,
  RunKeys,
  RunListResponse,
  RunListRow,
  RunMetricsResponse,
  RunOutput,
  TemplateVariableSchema,
  Whoami,
} from './api.js';
export type { JobSource, LaunchSpec } from './launchSpec.js';
export type { Job, JobVersion } from './jobs.js';
