import { sql, type Kysely, type Selectable, type Transaction } from 'kysely';
import { LRUCache } from 'lru-cache';
import type { Bus, CacheEvent } from './bus.js';
import { CHANNEL } from './pgBus.js';
import type { DialectName } from './store/database.js';
import type { Db } from './store/db.js';
import type { Database, QueuesTable } from './store/schema.js';

/**
 * What is cached, and what drops it:
 * - `keys`: an API key by its hash, with its user's membership roles; dropped when a key is deleted or its secret
 *   replaced, and when any membership changes. Expiry is checked by the caller on every read (auth.ts).
 * - `entities`: entity refs (id and name; entities are never renamed or deleted); dropped when a limit changes.
 * - `queues`: queue rows by id and by entity and name; dropped when a queue is updated or deleted.
 * - `agents`: an agent's binding (entity and key, routes/agentAuth.ts). A binding only changes when its key was
 *   revoked (agents.ts refuses a takeover while the old key lives), and a revoked key fails before the binding is
 *   looked at, so no write needs to drop it; a hit whose key differs from the caller's is re-read.
 * Every kind is dropped whole: these writes are rare next to the reads, and whole drops cannot miss a second index.
 */
export type CacheKind = 'keys' | 'entities' | 'queues' | 'agents';
const KINDS: readonly CacheKind[] = ['keys', 'entities', 'queues', 'agents'];

/** Entries per kind: bounded so a flood of distinct keys or queues cannot grow memory without limit. */
export const CACHE_MAX_ENTRIES = 10_000;
/**
 * A safety net only: invalidations are what keep entries right. An entry older than this is read again anyway, so
 * a notification lost in a way the bus did not notice is wrong for a minute at most.
 */
export const CACHE_TTL_MS = 60_000;

/** Payload sender of invalidations sent by the store: never a PgBus replica id, so every replica acts on it. */
const SENDER = 'store';

/**
 * One kind's LRU. Each drop bumps a generation, and a read-through only stores what it loaded when no drop happened
 * while it was loading: a read that began before a write committed could otherwise put the old row back after the
 * write's invalidation.
 */
export class ReadCache<V extends object> {
  private readonly lru: LRUCache<string, V>;
  private generation = 0;

  constructor(
    private readonly live: () => boolean,
    max = CACHE_MAX_ENTRIES,
    ttl = CACHE_TTL_MS,
  ) {
    this.lru = new LRUCache<string, V>({ max, ttl });
  }

  get(key: string): V | undefined {
    return this.live() ? this.lru.get(key) : undefined;
  }

  /** The cached value, else what `load` returns (stored unless undefined or dropped meanwhile). */
  async read(key: string, load: () => Promise<V | undefined>): Promise<V | undefined> {
    const hit = this.get(key);
    if (hit) return hit;
    const generation = this.generation;
    const value = await load();
    if (value !== undefined && generation === this.generation && this.live()) this.lru.set(key, value);
    return value;
  }

  /** Stores under one more key a value just read (e.g. a queue by id after reading it by name). */
  put(key: string, value: V, generation: number): void {
    if (generation === this.generation && this.live()) this.lru.set(key, value);
  }

  /** The generation to pass to put() for a value read from now on. */
  get current(): number {
    return this.generation;
  }

  get size(): number {
    return this.lru.size;
  }

  clear(): void {
    this.generation++;
    this.lru.clear();
  }
}

/**
 * The read caches of one server process (one per Store, so two replicas in one test process do not share them).
 * A write drops its kind here after it commits and, on PostgreSQL, sends `cache:<kind>` with NOTIFY inside its own
 * transaction, so every replica's bus hears it exactly when the write becomes visible (never before, and not lost
 * when this process dies right after the commit).
 *
 * On PostgreSQL nothing is served from cache until a bus is attached and its LISTEN connection is up: a store
 * without a bus (a tool opening the database) could not hear other replicas' writes.
 */
export class ReadCaches {
  private live: boolean;
  readonly keys: ReadCache<CachedKey>;
  readonly entities: ReadCache<{ id: string; name: string }>;
  readonly queues: ReadCache<Selectable<QueuesTable>>;
  readonly agents: ReadCache<AgentBinding>;
  /** Counted for tests and /metrics-style introspection: times every cache was dropped for a lost connection. */
  resets = 0;

  constructor(private readonly dialect: DialectName) {
    this.live = dialect === 'sqlite';
    const isLive = () => this.live;
    this.keys = new ReadCache(isLive);
    this.entities = new ReadCache(isLive);
    this.queues = new ReadCache(isLive);
    this.agents = new ReadCache(isLive);
  }

  /** Follows the bus: other replicas' invalidations, and its connection's losses (caches off and empty meanwhile). */
  attach(bus: Bus): void {
    bus.watchCaches?.((e: CacheEvent) => {
      if (e.type === 'invalidate') {
        const kind = e.topic.slice('cache:'.length);
        if ((KINDS as readonly string[]).includes(kind)) this.drop(kind as CacheKind);
        return;
      }
      this.live = e.type === 'restored';
      this.resets++;
      this.drop(...KINDS);
    });
  }

  drop(...kinds: CacheKind[]): void {
    for (const k of kinds) this[k].clear();
  }

  /**
   * Inside a writing transaction: tells the other replicas (PostgreSQL NOTIFY, delivered at commit). The caller
   * drops the local entries after the commit (see write()).
   */
  async announce(db: Db, ...kinds: CacheKind[]): Promise<void> {
    if (this.dialect !== 'postgres') return;
    for (const k of kinds) await sql`SELECT pg_notify(${CHANNEL}, ${`${SENDER} cache:${k}`})`.execute(db);
  }

  /** Runs a write in one transaction that also announces it, then drops the kinds here (after the commit). */
  async write<T>(db: Kysely<Database>, kinds: CacheKind[], fn: (trx: Transaction<Database>) => Promise<T>): Promise<T> {
    try {
      return await db.transaction().execute(async (trx) => {
        const result = await fn(trx);
        await this.announce(trx, ...kinds);
        return result;
      });
    } finally {
      this.drop(...kinds);
    }
  }
}

/** What authentication needs of a key, cached by the key's hash (never by the key itself). */
export interface CachedKey {
  id: string;
  name: string;
  role: string;
  entityId: string | null;
  userId: string | null;
  expiresAt: number | null;
  /** The last_used_at this process last read or wrote; written again at most once a minute (auth.ts). */
  lastUsedAt: number | null;
  /** A user key's membership roles per entity id; null for agent and server-wide keys. */
  memberRoles: Record<string, 'admin' | 'member'> | null;
}

export interface AgentBinding {
  id: string;
  entity_id: string;
  key_id: string | null;
}
