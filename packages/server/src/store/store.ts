import type { Kysely } from 'kysely';
import { ReadCaches } from '../caches.js';
import { Accounts } from './accounts.js';
import { Agents } from './agents.js';
import { Archives } from './archives.js';
import type { DialectName } from './database.js';
import { Dispatch } from './dispatch.js';
import { Entities } from './entities.js';
import { Items } from './items.js';
import { ApiKeys } from './keys.js';
import { Logs } from './logs.js';
import { LogWindows } from './logWindows.js';
import { Metrics } from './metrics.js';
import { Outputs } from './outputs.js';
import { Queues } from './queues.js';
import { reap, type ReapResult } from './reaper.js';
import { Runs } from './runs.js';
import { Secrets } from './secrets.js';
import type { Database } from './schema.js';
import { UploadTokens } from './uploadTokens.js';

export type { EntityRef } from './entities.js';
export type { ApiKeyRow } from './keys.js';
export type { RegisterAgentInput } from './agents.js';
export type { ReapResult } from './reaper.js';

/**
 * Every read and every state transition of Liftoff's objects, one module per aggregate: entities, keys and accounts;
 * queues; items (push, view, cancel); dispatch (the claim path: claim and ack); runs and their logs; agents; code
 * archives; and the reaper. Transitions that must be atomic run in one transaction or one conditional statement.
 */
export class Store {
  readonly entities: Entities;
  readonly keys: ApiKeys;
  readonly accounts: Accounts;
  readonly queues: Queues;
  readonly items: Items;
  readonly dispatch: Dispatch;
  readonly runs: Runs;
  readonly logs: Logs;
  /** Random access into stored logs: windows, line numbers, search (the log viewer's). */
  readonly logWindows: LogWindows;
  readonly metrics: Metrics;
  readonly agents: Agents;
  readonly archives: Archives;
  readonly secrets: Secrets;
  readonly outputs: Outputs;
  readonly uploadTokens: UploadTokens;
  /** Read caches of keys, entities, queues and agent bindings (caches.ts); server.ts attaches them to the bus. */
  readonly caches: ReadCaches;

  constructor(
    readonly db: Kysely<Database>,
    readonly dialect: DialectName,
    opts: { touchSkipMs?: number } = {},
  ) {
    this.caches = new ReadCaches(dialect);
    this.entities = new Entities(db, this.caches);
    this.keys = new ApiKeys(db, this.caches);
    this.accounts = new Accounts(db, this.caches);
    this.queues = new Queues(db, this.caches);
    this.items = new Items(db, this.queues, dialect);
    this.dispatch = new Dispatch(db, dialect);
    this.runs = new Runs(db, dialect);
    this.metrics = new Metrics(db);
    this.logs = new Logs(db, this.metrics, dialect);
    this.logWindows = new LogWindows(db);
    this.agents = new Agents(db, dialect, opts.touchSkipMs);
    this.archives = new Archives(db);
    this.secrets = new Secrets(db);
    this.outputs = new Outputs(db);
    this.uploadTokens = new UploadTokens(db);
  }

  /** See reaper.ts. */
  reap(now: number, silentSince: number, lostSince: number): Promise<ReapResult> {
    return reap(this.db, this.dialect, now, silentSince, lostSince);
  }

  async close(): Promise<void> {
    await this.db.destroy();
  }
}
