import { createServer, connect, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import pg from 'pg';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { Topic } from '../src/bus.js';
import { PgBus, packTopics, unpackTopics } from '../src/pgBus.js';
import { freshPgDatabase, pgAvailable } from '../../../test/helpers/postgres.js';

/**
 * A TCP relay to PostgreSQL that can be taken down: it then cuts every open connection and drops new ones at once,
 * as a database restart or a network partition does. Hand-written because it is a few lines of node:net and no
 * package does just this.
 */
class Relay {
  down = false;
  refused = 0;
  private readonly open = new Set<Socket>();
  private server: Server | undefined;
  constructor(private readonly target: { host: string; port: number }) {}
  async start(): Promise<number> {
    this.server = createServer((inbound) => {
      if (this.down) {
        this.refused++;
        inbound.destroy();
        return;
      }
      const outbound = connect(this.target.port, this.target.host);
      for (const s of [inbound, outbound]) {
        this.open.add(s);
        s.on('close', () => this.open.delete(s));
        s.on('error', () => undefined);
      }
      inbound.pipe(outbound).pipe(inbound);
    });
    await new Promise<void>((r) => this.server?.listen(0, '127.0.0.1', r));
    return (this.server?.address() as AddressInfo).port;
  }
  cut(): void {
    this.down = true;
    for (const s of this.open) s.destroy();
  }
  async close(): Promise<void> {
    this.cut();
    await new Promise((r) => this.server?.close(r));
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Issue 20: a replica whose LISTEN connection is lost keeps trying to get it back, however long the outage. */
describe.skipIf(!pgAvailable)('the PostgreSQL bus across an outage', () => {
  let db: { url: string; drop: () => Promise<void> };
  let relay: Relay;
  let behindRelay: PgBus;
  let direct: PgBus;
  beforeAll(async () => {
    db = await freshPgDatabase();
    const url = new URL(db.url);
    relay = new Relay({ host: url.hostname, port: Number(url.port || 5432) });
    url.port = String(await relay.start());
    const log = pino({ level: 'silent' });
    behindRelay = await PgBus.start(url.toString(), log);
    direct = await PgBus.start(db.url, log);
  });
  afterAll(async () => {
    await behindRelay?.close();
    await direct?.close();
    await relay?.close();
    await db?.drop();
  });

  /** Publishes on the other replica until this one's subscriber hears it, or `ms` pass. */
  const heard = async (ms: number): Promise<boolean> => {
    const sub = behindRelay.subscribe(['run:outage']);
    try {
      for (const until = Date.now() + ms; Date.now() < until;) {
        direct.publish('run:outage');
        if (await sub.wait(250)) return true;
      }
      return false;
    } finally {
      sub.close();
    }
  };

  it('hears other replicas again once the database is back, after reconnect attempts that failed', async () => {
    expect(await heard(10_000)).toBe(true);
    relay.cut();
    // At least two attempts fail while the database is unreachable (the first one used to be the last).
    for (const until = Date.now() + 20_000; relay.refused < 2 && Date.now() < until;) await sleep(50);
    expect(relay.refused).toBeGreaterThanOrEqual(2);
    relay.down = false;
    expect(await heard(30_000)).toBe(true);
  });
});

describe('packed NOTIFY payloads', () => {
  const odd: Topic[] = ['run:1', 'agent:a b "c" [x]', 'agent:\n\u00e9\u{1f680}', 'queue:q', 'cache:keys'];

  it('round-trip any topic, agent ids with spaces, quotes and brackets included, each payload under 8000 bytes', () => {
    const many = Array.from({ length: 2000 }, (_, i) => `agent:${'x'.repeat(i % 90)}-${i}` as Topic);
    const payloads = packTopics('r1', [...odd, ...many]);
    expect(payloads.length).toBeGreaterThan(1);
    const back = payloads.flatMap((p) => {
      expect(Buffer.byteLength(p)).toBeLessThan(8000);
      expect(p.startsWith('r1 ')).toBe(true);
      return unpackTopics(p.slice(3));
    });
    expect(back).toEqual([...odd, ...many]);
  });

  it('send a topic too long for any payload alone, and read a bare topic (a cache announcement) as one', () => {
    const long = `agent:${'y'.repeat(7500)}` as Topic;
    expect(packTopics('r1', ['run:1', long])).toEqual([`r1 ${long}`, 'r1 ["run:1"]']);
    expect(unpackTopics('cache:keys')).toEqual(['cache:keys']);
    expect(unpackTopics('[not json')).toEqual([]);
  });
});

/** Issue 20: topics published together reach the other replicas in one statement, not one NOTIFY each. */
describe.skipIf(!pgAvailable)('the PostgreSQL bus under many publishes', () => {
  let db: { url: string; drop: () => Promise<void> };
  let a: PgBus;
  let b: PgBus;
  beforeAll(async () => {
    db = await freshPgDatabase();
    const log = pino({ level: 'silent' });
    a = await PgBus.start(db.url, log);
    b = await PgBus.start(db.url, log);
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
    await db?.drop();
  });

  it('300 topics published in one turn go out as one statement, and every one is heard by the other replica', async () => {
    const topics = Array.from({ length: 300 }, (_, i) => (i % 2 ? `run:r${i}` : `agent:a ${i} "x"`) as Topic);
    const subs = topics.map((t) => b.subscribe([t]));
    const queries = vi.spyOn(pg.Pool.prototype, 'query');
    try {
      for (const t of topics) a.publish(t);
      const heard = await Promise.all(subs.map((s) => s.wait(10_000)));
      expect(heard.every(Boolean)).toBe(true);
      expect(queries.mock.calls.length).toBe(1);
    } finally {
      queries.mockRestore();
      subs.forEach((s) => s.close());
    }
  });

  it('what is published while a NOTIFY is in flight goes in the next one; a close sends what is still pending', async () => {
    const first = b.subscribe(['run:first']);
    const later = Array.from({ length: 50 }, (_, i) => `run:later${i}` as Topic);
    const subs = later.map((t) => b.subscribe([t]));
    const queries = vi.spyOn(pg.Pool.prototype, 'query');
    try {
      a.publish('run:first');
      // The first statement is sent (it may wait for a pooled connection, so not always within one turn).
      await vi.waitFor(() => expect(queries.mock.calls.length).toBe(1), { timeout: 5_000, interval: 1 });
      for (const t of later) a.publish(t);
      expect(await first.wait(10_000)).toBe(true);
      expect((await Promise.all(subs.map((s) => s.wait(10_000)))).every(Boolean)).toBe(true);
      expect(queries.mock.calls.length).toBe(2);
      const last = b.subscribe(['run:at-close']);
      a.publish('run:at-close');
      await a.close();
      expect(await last.wait(10_000)).toBe(true);
      last.close();
    } finally {
      queries.mockRestore();
      first.close();
      subs.forEach((s) => s.close());
    }
  });
});
