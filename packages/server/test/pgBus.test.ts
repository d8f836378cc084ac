import { createServer, connect, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PgBus } from '../src/pgBus.js';
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
