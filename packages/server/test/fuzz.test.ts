import { gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BACKENDS, pgAvailable } from '../../../test/helpers/postgres.js';
import { startBackendServer, type BackendServer } from './factory.js';
import { deepJson, operationsOf, requestFor, type Caller, type FuzzRequest } from './fuzz/requests.js';
import { buildWorld, type FuzzWorld } from './fuzz/tenants.js';

/**
 * Issue 12's fuzz suite: requests generated from the server's own OpenAPI document, with a fixed seed and a fixed
 * count per database, end with no 5xx, a live server and the seeded data unchanged. Larger runs:
 * `npm run fuzz` (20,000 per database; LIFTOFF_FUZZ_RUNS and LIFTOFF_FUZZ_SEED change count and seed;
 * LIFTOFF_FUZZ_SHOW=400 prints every request answered with that status).
 */
const RUNS = Number(process.env.LIFTOFF_FUZZ_RUNS ?? 1200);
const SEED = Number(process.env.LIFTOFF_FUZZ_SEED ?? 12);

/** The bodies that crashed or stalled the server before issue 12, always sent whatever the seed. */
const FIXED: FuzzRequest[] = [
  {
    caller: 'tenantAdmin',
    method: 'PATCH',
    url: '/api/entities/fuzz',
    contentType: 'application/gzip',
    body: Buffer.alloc(50 * 1024 * 1024, 1),
  },
  {
    caller: 'tenantAdmin',
    method: 'PATCH',
    url: '/api/entities/fuzz',
    contentType: 'application/octet-stream',
    body: Buffer.alloc(5 * 1024 * 1024, 7),
  },
  {
    caller: 'tenantAdmin',
    method: 'POST',
    url: '/api/code-archives?entity=fuzz',
    contentType: 'application/gzip',
    body: gzipSync(Buffer.alloc(52 * 1024 * 1024)),
  },
  {
    caller: 'member',
    method: 'POST',
    url: '/api/entities/fuzz/queues/fq/items',
    contentType: 'application/json',
    body: Buffer.from(
      `{"spec":{"source":{"type":"git","url":"https://x/y.git"},"run_config":${deepJson(5_000, 'object')}}}`,
    ),
  },
  {
    caller: 'tenantAdmin',
    method: 'POST',
    url: '/api/entities/fuzz/queues',
    contentType: 'application/json',
    body: Buffer.from(JSON.stringify({ name: 'huge', max_concurrency: 2 ** 40, start_timeout_seconds: 2 ** 31 })),
  },
];

interface Outcome {
  request: string;
  status: number | string;
  answer: string;
  ms: number;
}

/** Sends `r`; streams and long polls are cut after their headers (their status is what is checked). */
async function send(url: string, world: FuzzWorld, r: FuzzRequest): Promise<Outcome> {
  const headers: Record<string, string> = {};
  if (r.caller !== 'none') headers.authorization = `Bearer ${world.keys[r.caller]}`;
  if (r.contentType) headers['content-type'] = r.contentType;
  const request = `${r.caller} ${r.method} ${JSON.stringify(r.url.slice(0, 300))} ${r.contentType ?? ''} ${r.body ? r.body.subarray(0, 200).toString('latin1') : ''}`;
  const started = Date.now();
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), 15_000);
  try {
    const body = r.body ? new Uint8Array(r.body) : undefined;
    const res = await fetch(url + r.url, { method: r.method, headers, body, signal: ac.signal });
    const streaming = res.headers.get('content-type')?.startsWith('text/event-stream');
    const answer = streaming ? '' : (await res.text()).slice(0, 300);
    return { request, status: res.status, answer, ms: Date.now() - started };
  } catch (e) {
    return { request, status: `no answer: ${(e as Error).message}`, answer: '', ms: Date.now() - started };
  } finally {
    clearTimeout(timer);
    ac.abort();
  }
}

for (const backend of BACKENDS) {
  describe.skipIf(backend === 'postgres' && !pgAvailable)(`fuzzing the API on ${backend}`, () => {
    let s: BackendServer;
    let world: FuzzWorld;
    let before: unknown;
    beforeAll(async () => {
      // Seeded agents must not go KILLED while the fuzzer runs, and long polls end quickly.
      s = await startBackendServer(backend, { heartbeatIntervalMs: 3_600_000, pollTimeoutMs: 100 });
      world = await buildWorld(s);
      before = await world.snapshot();
    }, 120_000);
    afterAll(async () => s?.close());

    it(`answers ${RUNS} generated requests and the fixed hostile ones without a 5xx, and changes no other tenant's data`, async () => {
      const res = await fetch(`${s.server.url}/api/openapi.json`, {
        headers: { authorization: `Bearer ${world.keys.reader}` },
      });
      const ops = operationsOf((await res.json()) as Parameters<typeof operationsOf>[0]);
      expect(ops.length).toBeGreaterThan(30);
      // Mostly real keys, so requests get past authentication; a few without one or with a wrong one.
      const callers = (...keys: Caller[]) =>
        fc.oneof(
          { weight: 8, arbitrary: fc.constantFrom<Caller>(...keys) },
          { weight: 1, arbitrary: fc.constantFrom<Caller>('none', 'wrong') },
        );
      const writers = callers('tenantAdmin', 'member', 'agent');
      const readers = callers('reader', 'tenantAdmin', 'member', 'agent');
      const request = fc.oneof(...ops.map((op) => requestFor(op, world.pool, op.method === 'GET' ? readers : writers)));

      const failures: Outcome[] = [];
      const seen = new Map<string, number>();
      let previous = '';
      const check = (o: Outcome) => {
        if (o.ms > 3_000) console.log(`slow: ${o.ms} ms for ${o.request}; previous: ${previous}`);
        previous = o.request;
        if (process.env.LIFTOFF_FUZZ_SHOW && String(o.status) === process.env.LIFTOFF_FUZZ_SHOW)
          console.log(o.request.slice(0, 200), '→', o.answer.slice(0, 200));
        seen.set(String(o.status), (seen.get(String(o.status)) ?? 0) + 1);
        if (typeof o.status !== 'number' || o.status >= 500) failures.push(o);
        // Every refusal has the API's one error shape, whoever found the problem (router, parser, schema, handler).
        else if (o.status >= 400 && !/^\{"error":\{"code":"[A-Z_]+","message":/.test(o.answer)) failures.push(o);
      };
      for (const r of FIXED) check(await send(s.server.url, world, r));
      await fc.assert(
        fc.asyncProperty(request, async (r) => {
          check(await send(s.server.url, world, r));
        }),
        { seed: SEED, numRuns: RUNS, endOnFailure: true },
      );
      console.log(`fuzz ${backend}: answers by status`, Object.fromEntries(seen));
      expect(failures.slice(0, 10)).toEqual([]);
      // Most requests got past authentication and validation into the handlers.
      expect((seen.get('200') ?? 0) + (seen.get('201') ?? 0)).toBeGreaterThan(RUNS / 20);

      const health = await fetch(`${s.server.url}/healthz`);
      expect(health.status).toBe(200);
      expect(await world.snapshot()).toEqual(before);
    }, 900_000);
  });
}
