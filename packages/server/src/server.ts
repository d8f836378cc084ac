import { join } from 'node:path';
import pino, { type Logger } from 'pino';
import { credentialsPath, readCredentials, writeCredentials, type Env } from '@liftoff/core';
import { buildApp } from './app.js';
import { generateKey, hashKey } from './auth.js';
import { LocalBus } from './bus.js';
import { DEFAULT_SETTINGS, type AppContext, type ServerSettings } from './context.js';
import { openSqlite } from './store/database.js';
import { Store } from './store/store.js';

export interface ServerOptions {
  host: string;
  port: number;
  dataDir: string;
  env: Env;
  settings?: Partial<ServerSettings>;
  logger?: Logger;
  now?: () => number;
}

export interface RunningServer {
  url: string;
  /** Mints (replacing any previous one) a key with the given name for an in-process client such as the embedded agent. */
  mintKey(name: string): Promise<string>;
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
  const { db, dialect } = await openSqlite(join(opts.dataDir, 'liftoff.db'));
  const store = new Store(db, dialect);
  const settings = { ...DEFAULT_SETTINGS, ...opts.settings };
  const ctx: AppContext = { store, bus: new LocalBus(), settings, archiveDir: join(opts.dataDir, 'archives'), now };

  const entity = await store.ensureEntity(DEFAULT_ENTITY, now());
  if (!(await store.findQueue(entity.id, DEFAULT_QUEUE)) && (await store.listQueues(entity)).length === 0) {
    await store.createQueue(entity, { name: DEFAULT_QUEUE, resource: 'local-process', resource_args: {} }, now());
  }

  const app = await buildApp(ctx, logger);
  const address = await app.listen({ host: opts.host, port: opts.port });
  const url = address.replace('://[::1]', '://localhost');

  const credentialsFile = credentialsPath(opts.env);
  let createdAdminKey = false;
  if ((await store.countKeys()) === 0) {
    const key = generateKey();
    await store.createApiKey({ name: 'admin', role: 'admin', entityId: null, keyHash: hashKey(key), now: now() });
    writeCredentials(credentialsFile, { url, api_key: key });
    createdAdminKey = true;
  } else {
    // Keep the credentials file pointing at this server when it restarts on another port.
    const creds = readCredentials(credentialsFile);
    if (creds && creds.url !== url && (await store.findKeyByHash(hashKey(creds.api_key)))) {
      writeCredentials(credentialsFile, { ...creds, url });
    }
  }

  const reaper = setInterval(() => {
    const t = now();
    store
      .reap(t, t - 3 * settings.heartbeatIntervalMs)
      .then((r) => {
        for (const q of r.queueIds) ctx.bus.publish(`queue:${q}`);
        for (const a of r.killedAgents) logger.warn({ agent: a }, 'agent heartbeat lost; marked KILLED');
      })
      .catch((err: unknown) => logger.error({ err }, 'reaper failed'));
  }, settings.reapIntervalMs);
  reaper.unref();

  return {
    url,
    credentialsFile,
    createdAdminKey,
    async mintKey(name: string) {
      const key = generateKey();
      await store.replaceApiKey({ name, role: 'admin', entityId: null, keyHash: hashKey(key), now: now() });
      return key;
    },
    async close() {
      clearInterval(reaper);
      await app.close();
      await store.close();
    },
  };
}
