import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BACKENDS, pgAvailable } from '../../../test/helpers/postgres.js';
import { startBackendServer, type BackendServer } from './factory.js';

const LIMIT = 5;

interface Answer {
  status: number;
  retryAfter: string | undefined;
  body: string;
}

/** GET `path` from a chosen loopback address (127.0.0.0/8 all reach the server), presenting `key` if given. */
function get(url: string, path: string, from: string, key?: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(
      `${url}${path}`,
      { localAddress: from, headers: key ? { authorization: `Bearer ${key}` } : {} },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, retryAfter: res.headers['retry-after'] as string, body }),
        );
      },
    );
    req.on('error', reject);
    req.end();
  });
}

const wrongKey = (prefix = 'lk_') => `${prefix}${Math.random().toString(36).slice(2)}${'x'.repeat(30)}`;

/**
 * Issue 12, point 5: failed authentication is limited per client address and per key prefix (LIMIT failures a
 * minute here), answered 429 AUTH_RATE_LIMITED with Retry-After; a valid key is never limited.
 */
for (const backend of BACKENDS) {
  describe.skipIf(backend === 'postgres' && !pgAvailable)(`failed-auth rate limit on ${backend}`, () => {
    let b: BackendServer;
    let t = Date.now();
    let adminKey = '';
    beforeAll(async () => {
      b = await startBackendServer(backend, { authFailureLimit: LIMIT, authFailureWindowMs: 60_000 }, { now: () => t });
      adminKey = (b.client as unknown as { apiKey: string }).apiKey;
    });
    afterAll(async () => {
      await b?.close();
    });

    it('answers 401 up to the limit of one address, then 429 with Retry-After, and never to a valid key', async () => {
      const url = b.server.url;
      for (let i = 0; i < LIMIT; i++) expect((await get(url, '/api/whoami', '127.0.0.2', wrongKey())).status).toBe(401);
      const limited = await get(url, '/api/whoami', '127.0.0.2', wrongKey());
      expect(limited.status).toBe(429);
      expect(limited.retryAfter).toBe('60');
      expect(JSON.parse(limited.body)).toEqual({
        error: {
          code: 'AUTH_RATE_LIMITED',
          message:
            'Too many failed authentications; try again in 60 s with a valid key (check LIFTOFF_API_KEY or ~/.config/liftoff/credentials).',
        },
      });
      // No key at all counts against the address too, and /metrics (outside /api) is limited the same way.
      expect((await get(url, '/api/whoami', '127.0.0.2')).status).toBe(429);
      expect((await get(url, '/metrics', '127.0.0.2', wrongKey())).status).toBe(429);
      // A valid key from the limited address is served, on /api and /metrics.
      expect((await get(url, '/api/whoami', '127.0.0.2', adminKey)).status).toBe(200);
      expect((await get(url, '/metrics', '127.0.0.2', adminKey)).status).toBe(200);
      // Another address with other keys is not limited.
      expect((await get(url, '/api/whoami', '127.0.0.3', wrongKey())).status).toBe(401);
      // Retry-After counts down with the window, and the address is free once it has passed.
      t += 30_000;
      expect((await get(url, '/api/whoami', '127.0.0.2', wrongKey())).retryAfter).toBe('30');
      t += 30_000;
      expect((await get(url, '/api/whoami', '127.0.0.2', wrongKey())).status).toBe(401);
    });

    it('limits one key prefix across addresses', async () => {
      const url = b.server.url;
      const prefix = 'lk_SAMEPREFI'; // 12 characters: the bucket
      for (let i = 0; i < LIMIT; i++)
        expect((await get(url, '/api/whoami', `127.0.1.${i + 1}`, wrongKey(prefix))).status).toBe(401);
      const limited = await get(url, '/api/whoami', '127.0.1.99', wrongKey(prefix));
      expect(limited.status).toBe(429);
      expect(JSON.parse(limited.body).error.code).toBe('AUTH_RATE_LIMITED');
      expect((await get(url, '/api/whoami', '127.0.1.99', wrongKey())).status).toBe(401);
    });

    it('counts the refusals in /metrics', async () => {
      const m = await get(b.server.url, '/metrics', '127.0.0.1', adminKey);
      expect(m.body).toMatch(/^liftoff_auth_rate_limited_total 5$/m);
    });
  });
}
