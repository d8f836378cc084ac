import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { gzipSync } from 'node:zlib';
import { Header } from 'tar';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readCredentials } from '@liftoff/core';
import { BACKENDS, pgAvailable } from '../../../test/helpers/postgres.js';
import { Metrics } from '../src/metrics.js';
import { openSqlite } from '../src/store/database.js';
import { refusal, startBackendServer, startedRun, type BackendServer } from './factory.js';

interface Family {
  name: string;
  type: string;
  metrics: Array<{ value?: string; labels?: Record<string, string>; buckets?: Record<string, string> }>;
}

/** Parses the exposition with a Prometheus text-format parser: a malformed line would throw here. */
const parse = (text: string) => new Map<string, Family>(parsePrometheusTextFormat(text).map((f) => [f.name, f]));
const value = (f: Family | undefined, labels: Record<string, string> = {}) =>
  Number(f?.metrics.find((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v))?.value ?? Number.NaN);

/** Issue 12, point 8: /metrics through prom-client, with process metrics and counters for attacks and stalls. */
for (const backend of BACKENDS) {
  describe.skipIf(backend === 'postgres' && !pgAvailable)(`metrics on ${backend}`, () => {
    let b: BackendServer;
    let key: string;
    const scrape = async () => {
      const res = await fetch(`${b.server.url}/metrics`, { headers: { authorization: `Bearer ${key}` } });
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toContain('text/plain; version=0.0.4');
      return parse(await res.text());
    };
    beforeAll(async () => {
      b = await startBackendServer(backend);
      key = readCredentials(join(b.home, '.config', 'liftoff', 'credentials'))?.api_key ?? '';
    });
    afterAll(async () => b.close());

    it('exports process, event-loop and GC metrics next to the queue gauges, in the Prometheus text format', async () => {
      const m = await scrape();
      for (const name of [
        'process_cpu_seconds_total',
        'process_resident_memory_bytes',
        'nodejs_eventloop_lag_seconds',
        'nodejs_eventloop_lag_p99_seconds',
        'nodejs_gc_duration_seconds',
        'nodejs_heap_size_used_bytes',
        'liftoff_queue_depth',
        'liftoff_items',
        'liftoff_agents',
        'liftoff_run_outcomes',
        'liftoff_preemptions_total',
        'liftoff_dispatch_latency_seconds',
        'liftoff_refused_bodies_total',
        'liftoff_auth_rate_limited_total',
        'liftoff_runs_lost_total',
        'liftoff_log_resyncs_total',
      ])
        expect(m.has(name), name).toBe(true);
      expect(m.get('nodejs_gc_duration_seconds')?.type).toBe('HISTOGRAM');
      expect(m.get('liftoff_dispatch_latency_seconds')?.type).toBe('HISTOGRAM');
      expect(value(m.get('liftoff_queue_depth'), { entity: 'default', queue: 'default' })).toBe(0);
    });

    it('counts bodies refused as too large, of the wrong type, too deep, and archives refused by their check', async () => {
      const before = await scrape();
      const send = (path: string, contentType: string, body: string | Uint8Array, method = 'PATCH') =>
        fetch(`${b.server.url}${path}`, {
          method,
          headers: { authorization: `Bearer ${key}`, 'content-type': contentType },
          body: body as BodyInit,
        });
      expect((await send('/api/entities/default', 'application/gzip', new Uint8Array(1024))).status).toBe(415);
      const big = `{"max_concurrency": 1, "x": "${'a'.repeat(9 * 1024 * 1024)}"}`;
      expect((await send('/api/entities/default', 'application/json', big)).status).toBe(413);
      const deep = `{"max_concurrency": ${'['.repeat(100)}${']'.repeat(100)}}`;
      expect((await send('/api/entities/default', 'application/json', deep)).status).toBe(400);
      // An archive whose one entry climbs out of its directory.
      const header = new Header({ path: '../escape.txt', mode: 0o644, size: 1, type: 'File', mtime: new Date(0) });
      header.encode();
      const tar = gzipSync(
        Buffer.concat([header.block as Buffer, Buffer.alloc(512, 0x41).fill(0, 1), Buffer.alloc(1024)]),
      );
      const archive = await send('/api/code-archives', 'application/gzip', new Uint8Array(tar), 'POST');
      expect(archive.status).toBe(400);
      expect(((await archive.json()) as { error: { code: string } }).error.code).toBe('SOURCE_REFUSED');
      // Refusals of other kinds are not refused bodies.
      expect((await send('/api/entities/nope', 'application/json', '{"max_concurrency": 1}')).status).toBe(404);
      const after = await scrape();
      const moved = (reason: string) =>
        value(after.get('liftoff_refused_bodies_total'), { reason }) -
        value(before.get('liftoff_refused_bodies_total'), { reason });
      expect(['too_large', 'unsupported_type', 'too_deep', 'archive_refused'].map(moved)).toEqual([1, 1, 1, 1]);
    });

    it('counts log uploads refused with 409 (each one an agent resync) and dispatches', async () => {
      const runId = await startedRun(b.client, 'metrics-agent');
      await b.client.appendLogs(runId, 'metrics-agent', 0, 'abc\n');
      const before = await scrape();
      const count = before.get('liftoff_dispatch_latency_seconds')?.metrics[0] as { count?: string } | undefined;
      expect(Number(count?.count)).toBe(1);
      expect((await refusal(b.client.appendLogs(runId, 'metrics-agent', 100, 'late\n'))).code).toBe('CONFLICT');
      // An upload that is accepted (a resend of stored bytes answers the stored size) is not a resync.
      await b.client.appendLogs(runId, 'metrics-agent', 0, 'abc\n');
      const after = await scrape();
      expect(value(after.get('liftoff_log_resyncs_total')) - value(before.get('liftoff_log_resyncs_total'))).toBe(1);
    });
  });
}

describe('metrics registry', () => {
  const dir = mkdtempSync(join(tmpdir(), 'liftoff-metrics-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('keeps one registry per server instance, and the counters other parts call move', async () => {
    const { db } = await openSqlite(join(dir, 'liftoff.db'));
    try {
      const a = new Metrics();
      const other = new Metrics();
      a.authRateLimited();
      a.authRateLimited();
      a.runLost();
      a.countPreemption(true);
      a.observeDispatch(0.02);
      const m = parse(await a.render(db));
      expect(value(m.get('liftoff_auth_rate_limited_total'))).toBe(2);
      expect(value(m.get('liftoff_runs_lost_total'))).toBe(1);
      expect(value(m.get('liftoff_preemptions_total'), { outcome: 'requeued' })).toBe(1);
      expect(value(m.get('liftoff_preemptions_total'), { outcome: 'exhausted' })).toBe(0);
      const o = parse(await other.render(db));
      expect(value(o.get('liftoff_auth_rate_limited_total'))).toBe(0);
      expect(value(o.get('liftoff_runs_lost_total'))).toBe(0);
      // Process metrics are shared, and still listed once per exposition.
      expect(o.has('process_cpu_seconds_total')).toBe(true);
    } finally {
      await db.destroy();
    }
  });
});
