import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
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

    it('counts bodies refused with 413 and 415', async () => {
      const before = await scrape();
      const wrongType = await fetch(`${b.server.url}/api/entities/default`, {
        method: 'PATCH',
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/gzip' },
        body: Buffer.alloc(1024),
      });
      expect(wrongType.status).toBe(415);
      const tooLarge = await fetch(`${b.server.url}/api/entities/default`, {
        method: 'PATCH',
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
        body: `{"max_concurrency": 1, "x": "${'a'.repeat(9 * 1024 * 1024)}"}`,
      });
      expect(tooLarge.status).toBe(413);
      const after = await scrape();
      const refused = (m: Map<string, Family>, status: string) =>
        value(m.get('liftoff_refused_bodies_total'), { status });
      expect(refused(after, '415') - refused(before, '415')).toBe(1);
      expect(refused(after, '413') - refused(before, '413')).toBe(1);
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
