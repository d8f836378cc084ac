import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LiftoffClient, LiftoffError, readCredentials } from '@liftoff/core';
import { startServer, type RunningServer } from '@liftoff/server';

const WEB_DIR = resolve(import.meta.dirname, '../../web/dist');
const homes: string[] = [];
function home(): string {
  const h = mkdtempSync(join(tmpdir(), 'liftoff-hardening-'));
  homes.push(h);
  return h;
}
afterAll(() => homes.forEach((h) => rmSync(h, { recursive: true, force: true })));

const start = (h: string, settings = {}) =>
  startServer({ host: '127.0.0.1', port: 0, dataDir: join(h, 'data'), env: { HOME: h }, settings, webDir: WEB_DIR });

/** Issue 12, points 7 and 9: headers, slow clients, and storage that is never mistaken for a fresh install. */
describe('server hardening', () => {
  let h: string;
  let server: RunningServer;
  let client: LiftoffClient;
  beforeAll(async () => {
    h = home();
    server = await start(h, { headersTimeoutMs: 400, requestTimeoutMs: 800, pollTimeoutMs: 1_500 });
    client = new LiftoffClient({
      baseUrl: server.url,
      apiKey: readCredentials(join(h, '.config', 'liftoff', 'credentials'))?.api_key ?? '',
    });
  });
  afterAll(async () => server.close());

  it('sends security headers with the API and a Content-Security-Policy with the UI', async () => {
    const api = await fetch(`${server.url}/api/whoami`);
    expect(api.headers.get('x-content-type-options')).toBe('nosniff');
    expect(api.headers.get('x-frame-options')).toBe('DENY');
    expect(api.headers.get('referrer-policy')).toBe('no-referrer');
    const ui = await fetch(`${server.url}/`);
    const csp = ui.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).toContain("script-src 'self'");
    expect(ui.headers.get('x-content-type-options')).toBe('nosniff');
  });

  it('closes a connection whose headers trickle in (slowloris), and keeps serving others', async () => {
    const socket = connect(Number(new URL(server.url).port), '127.0.0.1');
    socket.write('GET /api/whoami HTTP/1.1\r\nHost: x\r\n');
    const drip = setInterval(() => socket.write('X-Slow: 1\r\n'), 100);
    const closed = await new Promise<number>((res) => {
      const t0 = Date.now();
      socket.on('close', () => res(Date.now() - t0));
      socket.on('error', () => undefined);
      setTimeout(() => res(-1), 5_000);
    });
    clearInterval(drip);
    socket.destroy();
    expect(closed).toBeGreaterThan(0);
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
  });

  it('holds a long poll past the request timeout: only receiving a request is bounded', async () => {
    await client.registerAgent({
      id: 'slow-poller',
      name: 'p',
      entity: 'default',
      hostname: 'h',
      queues: ['default'],
      version: 't',
      max_jobs: 1,
    });
    const t0 = Date.now();
    const res = await client.poll('slow-poller', { queues: ['default'], max_items: 1, wait_ms: 1_200 });
    expect(res.items).toEqual([]);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1_100);
  });

  it('keeps its database owner-only', () => {
    expect(statSync(join(h, 'data', 'liftoff.db')).mode & 0o777).toBe(0o600);
  });
});

describe('storage that is never taken for a fresh install', () => {
  async function startFailure(h: string): Promise<LiftoffError> {
    try {
      const s = await start(h);
      await s.close();
    } catch (e) {
      if (e instanceof LiftoffError) return e;
      throw e;
    }
    throw new Error('expected the server to refuse to start');
  }

  it('refuses an empty database file, naming it and the fix', async () => {
    const h = home();
    mkdirSync(join(h, 'data'));
    writeFileSync(join(h, 'data', 'liftoff.db'), '');
    const e = await startFailure(h);
    expect(e.code).toBe('STORAGE');
    expect(e.message).toBe(
      `${join(h, 'data', 'liftoff.db')} is empty (0 bytes), so it is not a Liftoff database. Restore it from a backup (docs/operations.md), or move it away to start a fresh install.`,
    );
    expect(existsSync(join(h, '.config', 'liftoff', 'credentials'))).toBe(false);
  });

  it('refuses a file that is not a database', async () => {
    const h = home();
    mkdirSync(join(h, 'data'));
    writeFileSync(join(h, 'data', 'liftoff.db'), Buffer.alloc(8192, 0x41));
    const e = await startFailure(h);
    expect(e.code).toBe('STORAGE');
    expect(e.message).toContain(`Cannot use the database ${join(h, 'data', 'liftoff.db')}: `);
    expect(e.message).toContain('restore it from a backup');
  });

  it('finds a damaged page at start-up', async () => {
    const h = home();
    const s = await start(h);
    await s.close();
    const path = join(h, 'data', 'liftoff.db');
    const bytes = readFileSync(path);
    // Scribble over every page but the first (the header): the tables' b-trees no longer parse.
    for (let i = 4096; i < bytes.length; i++) bytes[i] = (i * 7) & 0xff;
    writeFileSync(path, bytes);
    rmSync(`${path}-wal`, { force: true });
    rmSync(`${path}-shm`, { force: true });
    const e = await startFailure(h);
    expect(e.code).toBe('STORAGE');
  });

  it('never overwrites an existing credentials file: a new admin key goes to a new file', async () => {
    const h = home();
    const creds = join(h, '.config', 'liftoff', 'credentials');
    mkdirSync(join(h, '.config', 'liftoff'), { recursive: true });
    writeFileSync(creds, 'url: http://127.0.0.1:1\napi_key: lk_the-only-copy-of-another-servers-key\n');
    const s = await start(h);
    await s.close();
    expect(readFileSync(creds, 'utf8')).toContain('lk_the-only-copy-of-another-servers-key');
    expect(s.createdAdminKey).toBe(true);
    expect(s.credentialsFile).not.toBe(creds);
    expect(readCredentials(s.credentialsFile)?.api_key).toMatch(/^lk_/);
    expect(statSync(s.credentialsFile).mode & 0o777).toBe(0o600);
  });

  it('removes temporary files of uploads a previous process left behind', async () => {
    const h = home();
    mkdirSync(join(h, 'data', 'archives'), { recursive: true });
    writeFileSync(join(h, 'data', 'archives', 'abc.tar.gz.123.456.tmp'), 'half an archive');
    const s = await start(h);
    await s.close();
    expect(existsSync(join(h, 'data', 'archives', 'abc.tar.gz.123.456.tmp'))).toBe(false);
  });
});
