import { existsSync } from 'node:fs';
import { join } from 'node:path';
import pino, { type Logger } from 'pino';
import { ConfigInvalidError, credentialsPath, readCredentials, writeCredentials, type Env } from '@liftoff/core';
import { buildApp, type TlsFiles } from './app.js';
import { openArtifactStore, type ArtifactStore, type ArtifactStoreConfig } from './artifacts/index.js';
import { generateKey, hashKey } from './auth.js';
import { LocalBus, type Bus } from './bus.js';
import { DEFAULT_SETTINGS, type AppContext, type ServerSettings } from './context.js';
import { Metrics } from './metrics.js';
import { privateDataDir, privateFiles, type DataDirMode } from './dataDir.js';
import { PgBus } from './pgBus.js';
import { openSecretsKey } from './secretsKey.js';
import { openPostgres, openSqlite, redactUrl } from './store/database.js';
import { removeStaleUploads } from './routes/archives.js';
import { pruneEnded, sweepArtifactGarbage } from './store/retention.js';
import { foldBacklogDeltas } from './store/backlog.js';
import { Store } from './store/store.js';
import { SweepController } from './sweeps/controller.js';

export interface ServerOptions {
  host: string;
  port: number;
  dataDir: string;
  /** A postgres:// URL; absent: SQLite at <dataDir>/liftoff.db. Code archives stay in the data dir either way. */
  databaseUrl?: string;
  env: Env;
  settings?: Partial<ServerSettings>;
  logger?: Logger;
  now?: () => number;
  /** The web UI's build directory (packages/web/dist), served at `/`; the API works without it. */
  webDir?: string;
  /**
   * The key file secrets are encrypted under (created on the first start): default env LIFTOFF_SECRETS_KEY_FILE,
   * else <dataDir>/secrets.key. PostgreSQL replicas need the same key.
   */
  secretsKeyFile?: string;
  /** Serve https with this certificate and key (PEM text); without it, plain http. */
  tls?: TlsFiles;
  /** 0700 (default); 0711 when an agent sharing the data dir runs jobs as users of their own (dataDir.ts). */
  dataDirMode?: DataDirMode;
  /** Where run outputs go (artifacts/index.ts): unset, the data dir on SQLite and the database on PostgreSQL. */
  artifactStore?: ArtifactStoreConfig;
}

export interface RunningServer {
  url: string;
  /**
   * Mints (replacing any previous one) an agent key for `entity` (which must exist): it runs the agent protocol and
   * reads that entity only, so an agent holding it cannot administer the server.
   */
  mintAgentKey(name: string, entity: string): Promise<string>;
  credentialsFile: string;
  /** Set when this start created the admin key. */
  createdAdminKey: boolean;
  close(): Promise<void>;
}

export const DEFAULT_ENTITY = 'default';
export const DEFAULT_QUEUE = 'default';

/** Opens the data dir's database, creates the default entity, queue and admin key on first start, and listens. */
export async function startServer(opts: ServerOptions): Promise<RunningServer> {
  const logger = opts.logger ?? pino({ level: 'warn' });
  const now = opts.now ?? Date.now;
  privateDataDir(opts.dataDir, opts.dataDirMode ?? 0o700, logger);
  const { db, dialect } = opts.databaseUrl
    ? await openPostgres(opts.databaseUrl)
    : await openSqlite(join(opts.dataDir, 'liftoff.db'));
  // An agent is declared dead after three silent heartbeat intervals; touches closer together than a tenth of one
  // (at most a second) say nothing new, so they are not written again.
  const store = new Store(db, dialect, {
    touchSkipMs: Math.min(1_000, (opts.settings?.heartbeatIntervalMs ?? DEFAULT_SETTINGS.heartbeatIntervalMs) / 10),
  });
  privateFiles(opts.dataDir);
  // Replicas on one PostgreSQL wake each other's long-polls through LISTEN/NOTIFY; SQLite is one process.
  let bus: Bus;
  try {
    bus = opts.databaseUrl ? await PgBus.start(opts.databaseUrl, logger) : new LocalBus();
  } catch (e) {
    await store.close();
    throw e;
  }
  store.caches.attach(bus);
  try {
    const keyFile = opts.secretsKeyFile ?? (opts.env.LIFTOFF_SECRETS_KEY_FILE || join(opts.dataDir, 'secrets.key'));
    store.secrets.useKey(await openSecretsKey(store.db, keyFile, now()));
  } catch (e) {
    await bus.close?.();
    await store.close();
    throw e;
  }
  const settings = { ...DEFAULT_SETTINGS, ...opts.settings };
  // Unset, the run lease follows long heartbeat intervals: twice the KILLED threshold when that beats the default.
  if (opts.settings?.runLostAfterMs === undefined)
    settings.runLostAfterMs = Math.max(DEFAULT_SETTINGS.runLostAfterMs, 6 * settings.heartbeatIntervalMs);
  let artifacts: ArtifactStore;
  try {
    assertLeaseSettings(settings);
    artifacts = openArtifactStore(opts.artifactStore, { dataDir: opts.dataDir, db: store.db, dialect: store.dialect });
  } catch (e) {
    await bus.close?.();
    await store.close();
    throw e;
  }
  const ctx: AppContext = {
    store,
    bus,
    settings,
    archiveDir: join(opts.dataDir, 'archives'),
    now,
    metrics: new Metrics(),
    artifacts,
  };
  if (opts.databaseUrl) logger.info({ database: redactUrl(opts.databaseUrl) }, 'using PostgreSQL');
  await removeStaleUploads(ctx.archiveDir);

  const entity = await store.entities.ensure(DEFAULT_ENTITY, now());
  if (!(await store.queues.find(entity.id, DEFAULT_QUEUE)) && (await store.queues.list(entity)).length === 0) {
    // Two replicas starting at once on a fresh PostgreSQL race here; the loser finds the winner's queue.
    await store.queues
      .create(entity, { name: DEFAULT_QUEUE, resource: 'local-process', resource_args: {} }, now())
      .catch(async (e: unknown) => {
        if (!(await store.queues.find(entity.id, DEFAULT_QUEUE))) throw e;
      });
  }

  // Sweeps: every replica runs a controller; the one holding the database lease drives them (sweeps/controller.ts).
  const sweepController = new SweepController(ctx, logger, {
    tickMs: settings.sweepTickMs,
    leaseMs: settings.sweepLeaseMs,
  });
  // A sweep's change wakes the controller of whichever replica leads (over PgBus), this one included.
  ctx.kickSweeps = () => ctx.bus.publish('sweeps:changed');
  const app = await buildApp(ctx, logger, { webDir: opts.webDir, tls: opts.tls });
  const address = await app.listen({ host: opts.host, port: opts.port });
  if (!opts.tls && !isLoopback(opts.host))
    logger.warn(
      { host: opts.host },
      'listening beyond loopback without TLS: API keys, specs and logs cross the network in clear text; pass --tls-cert and --tls-key, or put a TLS-terminating proxy in front',
    );
  const url = address.replace('://[::1]', '://localhost');

  let credentialsFile = credentialsPath(opts.env);
  let createdAdminKey = false;
  if ((await store.keys.count()) === 0) {
    const key = generateKey();
    await store.keys.create({ name: 'admin', role: 'admin', entityId: null, keyHash: hashKey(key), now: now() });
    // An existing credentials file may hold the only copy of another server's admin key: it is never overwritten.
    if (existsSync(credentialsFile)) {
      const kept = credentialsFile;
      credentialsFile = `${kept}.${new Date(now()).toISOString().replace(/[:.]/g, '-')}`;
      logger.warn({ kept, written: credentialsFile }, 'credentials file exists; the new admin key went to a new file');
    }
    writeCredentials(credentialsFile, { url, api_key: key });
    createdAdminKey = true;
  } else {
    // Keep the credentials file pointing at this server when it restarts on another port.
    const creds = readCredentials(credentialsFile);
    if (creds && creds.url !== url && (await store.keys.findByHash(hashKey(creds.api_key)))) {
      writeCredentials(credentialsFile, { ...creds, url });
    }
  }

  const reaper = setInterval(() => {
    const t = now();
    store
      .reap(t, t - 3 * settings.heartbeatIntervalMs, t - settings.runLostAfterMs)
      .then((r) => {
        for (const q of r.queueIds) ctx.bus.publish(`queue:${q}`);
        // A lost trial frees its sweep's slot: the controller looks at once (routes/runs.ts afterReports).
        if (r.lostRuns.length) ctx.bus.publish('sweeps:ended');
        for (const l of r.lostRuns) {
          ctx.metrics.runLost();
          ctx.bus.publish(`run:${l.runId}`);
          logger.warn({ run: l.runId, requeued: l.requeued }, 'agent silent past the run lost timeout; run lost');
        }
        // A dead agent's freed slots and lost runs' slots may unblock other queues under the same entity limit.
        if (r.killedAgents.length || r.lostRuns.length)
          for (const q of r.queueIds)
            void store.queues.sharingLimits(q).then((qs) => qs.forEach((x) => ctx.bus.publish(`queue:${x}`)));
        for (const a of r.killedAgents) logger.warn({ agent: a }, 'agent heartbeat lost; marked KILLED');
      })
      .catch((err: unknown) => logger.error({ err }, 'reaper failed'));
  }, settings.reapIntervalMs);
  reaper.unref();
  const pruner = setInterval(() => {
    pruneEnded(store.db, store.dialect, now(), settings.retention)
      .then((n) => n && logger.info({ items: n }, 'pruned ended items past retention'))
      .catch((err: unknown) => logger.error({ err }, 'pruning failed'))
      // The outputs of pruned runs: their bytes, after the rows are gone (retention.ts).
      .then(() => sweepArtifactGarbage(store.db, artifacts))
      .then((n) => n && logger.info({ keys: n }, 'deleted the stored outputs of pruned runs'))
      .catch((err: unknown) => logger.error({ err }, 'deleting the stored outputs of pruned runs failed'));
  }, settings.pruneIntervalMs);
  pruner.unref();
  // PostgreSQL: backlog counter deltas are folded into the counters every second (store/backlog.ts).
  const folder =
    store.dialect === 'postgres'
      ? setInterval(() => {
          foldBacklogDeltas(store.db, store.dialect).catch((err: unknown) =>
            logger.error({ err }, 'folding backlog counters failed'),
          );
        }, 1_000)
      : undefined;
  folder?.unref();
  sweepController.start();

  return {
    url,
    credentialsFile,
    createdAdminKey,
    async mintAgentKey(name: string, entity: string) {
      const found = await store.entities.find(entity);
      if (!found) throw new Error(`Entity "${entity}" does not exist.`);
      const key = generateKey();
      await store.keys.replace({ name, role: 'agent', entityId: found.id, keyHash: hashKey(key), now: now() });
      return key;
    },
    async close() {
      clearInterval(reaper);
      clearInterval(pruner);
      clearInterval(folder);
      await sweepController.close();
      await app.close();
      await artifacts.close();
      await bus.close?.();
      await store.close();
    },
  };
}

/**
 * The run lease must outlast the KILLED verdict: an agent cut off for a few heartbeats is only marked, and its runs
 * are taken away once it has been silent for longer than that.
 */
function assertLeaseSettings(s: ServerSettings): void {
  const killedAfter = 3 * s.heartbeatIntervalMs;
  if (!(s.runLostAfterMs > killedAfter))
    throw new ConfigInvalidError('Server settings', [
      `runLostAfterMs (--run-lost-after-seconds) is ${s.runLostAfterMs} ms; it must be longer than the ${killedAfter} ms (3 heartbeat intervals) after which a silent agent is KILLED.`,
    ]);
  if (!Number.isSafeInteger(s.maxRunLogBytes) || s.maxRunLogBytes < 1)
    throw new ConfigInvalidError('Server settings', [
      `maxRunLogBytes (--max-run-log-mib) is ${s.maxRunLogBytes}; it must be a positive whole number of bytes.`,
    ]);
}

/** 127.0.0.0/8, ::1 and localhost reach this machine only. */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}
