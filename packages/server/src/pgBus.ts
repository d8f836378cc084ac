import { randomBytes } from 'node:crypto';
import type { FastifyBaseLogger } from 'fastify';
import pg from 'pg';
import { LocalBus, type Bus, type CacheEvent, type Subscription, type Topic } from './bus.js';

/** Exported for caches.ts, which sends its invalidations inside the writing transaction on this channel. */
export const CHANNEL = 'liftoff_bus';

/** PostgreSQL refuses a NOTIFY payload of 8000 bytes or more; packed payloads stay well under. */
const PAYLOAD_LIMIT = 7000;

/**
 * Packs topics into as few payloads as fit: `<replica> ["t1","t2",...]` (JSON, since agent ids in topics are any
 * string). A topic too long for any payload is sent alone, as `<replica> <topic>`, and fails alone as it always did.
 */
export function packTopics(replica: string, topics: Iterable<Topic>): string[] {
  const payloads: string[] = [];
  let batch: string[] = [];
  let size = 0;
  const head = replica.length + 3;
  const close = () => {
    if (batch.length) payloads.push(`${replica} [${batch.join(',')}]`);
    batch = [];
    size = 0;
  };
  for (const topic of topics) {
    const quoted = JSON.stringify(topic);
    if (Buffer.byteLength(quoted) + head > PAYLOAD_LIMIT) {
      payloads.push(`${replica} ${topic}`);
      continue;
    }
    if (head + size + Buffer.byteLength(quoted) + 1 > PAYLOAD_LIMIT) close();
    batch.push(quoted);
    size += Buffer.byteLength(quoted) + 1;
  }
  close();
  return payloads;
}

/** The topics of one payload after its replica id: a packed JSON list, or (cache announcements, long topics) one. */
export function unpackTopics(body: string): Topic[] {
  if (!body.startsWith('[')) return [body as Topic];
  try {
    const list: unknown = JSON.parse(body);
    return Array.isArray(list) ? list.filter((t): t is Topic => typeof t === 'string') : [];
  } catch {
    return [];
  }
}

/**
 * The bus for replicas sharing one PostgreSQL: a publish wakes this process's subscribers at once (LocalBus: one
 * poller for a queue topic) and is sent with NOTIFY to every other replica, which LISTENs on one dedicated connection
 * and re-publishes locally (so each replica wakes one poller of its own; a hand-on stays local).
 * Each payload carries the sender's replica id so a replica ignores its own echo. NOTIFY is only delivered after
 * the publishing statement's transaction commits (ours are sent after the write committed), so a woken poller on
 * another replica always finds the item in the database.
 *
 * Topics published in one turn of the event loop, or while the previous NOTIFY is in flight, go out together as one
 * statement with packed payloads: a report of 32 runs used to send 32 statements of its own after its commit, more
 * than half of all statements in the batched API loop (bench/throughput.mjs), each a socket write and a round trip.
 *
 * If the LISTEN connection drops, notifications sent meanwhile are lost; on reconnect every local subscriber is
 * woken once so it re-checks the database, and nothing waits longer than its own timeout in the worst case.
 */
export class PgBus implements Bus {
  private readonly local = new LocalBus();
  private readonly replica = randomBytes(6).toString('hex');
  private listener: pg.Client | undefined;
  private closed = false;
  private retryTimer: NodeJS.Timeout | undefined;
  /** Topics waiting for the next NOTIFY statement, and that statement's promise while one is in flight. */
  private readonly pending = new Set<Topic>();
  private sending: Promise<void> | undefined;
  private scheduled = false;

  private constructor(
    private readonly url: string,
    private readonly pool: pg.Pool,
    private readonly log: FastifyBaseLogger,
  ) {}

  static async start(url: string, log: FastifyBaseLogger): Promise<PgBus> {
    // Its own small pool: NOTIFYs must not queue behind long store transactions.
    const pool = new pg.Pool({ connectionString: url, max: 2 });
    pool.on('error', () => undefined);
    const bus = new PgBus(url, pool, log);
    await bus.listen();
    return bus;
  }

  private async listen(): Promise<void> {
    const client = new pg.Client({ connectionString: this.url });
    client.on('notification', (msg) => {
      const payload = msg.payload ?? '';
      const space = payload.indexOf(' ');
      if (space < 0 || payload.slice(0, space) === this.replica) return;
      for (const topic of unpackTopics(payload.slice(space + 1))) this.local.publish(topic);
    });
    const lost = (err?: unknown) => {
      // Only the connection in use counts; a failed attempt's own errors are the attempt's failure, seen below.
      if (this.closed || this.listener !== client) return;
      this.listener = undefined;
      // Invalidations sent meanwhile are lost: read caches stop serving until LISTEN is back (then start empty).
      this.local.cacheEvent({ type: 'lost' });
      this.log.warn({ err }, 'bus: LISTEN connection lost; reconnecting');
      client.end().catch(() => undefined);
      this.relisten();
    };
    client.on('error', lost);
    client.on('end', () => lost());
    try {
      await client.connect();
      await client.query(`LISTEN ${CHANNEL}`);
    } catch (e) {
      client.end().catch(() => undefined);
      throw e;
    }
    // Closed while connecting: this connection is nobody's.
    if (this.closed) await client.end().catch(() => undefined);
    else this.listener = client;
  }

  /**
   * Tries to LISTEN again until it works (the database may be down for a while: a restart, a failover), waiting
   * 0.5 s after the loss and twice as long after each failed attempt, at most 10 s.
   */
  private relisten(delayMs = 500): void {
    if (this.closed) return;
    this.retryTimer = setTimeout(() => {
      this.listen()
        .then(() => {
          this.log.warn('bus: LISTEN connection restored');
          this.local.cacheEvent({ type: 'restored' });
          this.local.wakeAll();
        })
        .catch((err: unknown) => {
          this.log.warn({ err }, 'bus: reconnecting LISTEN failed; trying again');
          this.relisten(Math.min(delayMs * 2, 10_000));
        });
    }, delayMs);
  }

  publish(topic: Topic): void {
    this.local.publish(topic);
    this.pending.add(topic);
    if (this.scheduled || this.sending) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.send();
    });
  }

  /** Sends what is pending in one statement; what arrives meanwhile goes in the next, sent when this one is done. */
  private send(): void {
    if (!this.pending.size || this.closed) return;
    const topics = [...this.pending];
    this.pending.clear();
    this.sending = this.pool
      .query('SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p', [CHANNEL, packTopics(this.replica, topics)])
      .then(
        () => undefined,
        (err: unknown) => this.log.error({ err, topics: topics.length }, 'bus: NOTIFY failed'),
      )
      .finally(() => {
        this.sending = undefined;
        this.send();
      });
  }

  subscribe(topics: Topic[], signal?: AbortSignal): Subscription {
    return this.local.subscribe(topics, signal);
  }

  /** Cache invalidations arrive as notifications like any topic; the state follows the LISTEN connection. */
  watchCaches(fn: (e: CacheEvent) => void): void {
    this.local.watchCaches(fn, { type: this.listener ? 'restored' : 'lost' });
  }

  async close(): Promise<void> {
    // What was published before the close still reaches the other replicas.
    while (this.sending || this.pending.size) {
      if (this.sending) await this.sending;
      else this.send();
    }
    this.closed = true;
    clearTimeout(this.retryTimer);
    const l = this.listener;
    this.listener = undefined;
    await l?.end().catch(() => undefined);
    await this.pool.end().catch(() => undefined);
  }
}
