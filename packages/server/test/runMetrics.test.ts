import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readCredentials, type LiftoffClient } from '@liftoff/core';
import { BACKENDS, pgAvailable } from '../../../test/helpers/postgres.js';
import { MAX_METRIC_KEYS_PER_RUN, MAX_POINTS_PER_KEY } from '../src/store/metrics.js';
import { startBackendServer, startedRun, type BackendServer } from './factory.js';

const CAP = 2000;
const metric = (o: Record<string, unknown>) => `LIFTOFF_METRICS ${JSON.stringify(o)}\n`;

/** Every stored point of a run, paged the way a client pages them. */
async function allPoints(c: LiftoffClient, run: string, key?: string) {
  const points = [];
  let after = -1;
  for (;;) {
    const page = await c.runMetrics(run, { key, afterSeq: after, limit: 700 });
    points.push(...page.points);
    if (!page.points.length) return points;
    after = page.next_seq;
  }
}

/** Issue 12 (metrics still parsed past the log cap) and issue 17's ingestion: metrics parsed from uploaded output. */
for (const backend of BACKENDS) {
  describe.skipIf(backend === 'postgres' && !pgAvailable)(`run metrics on ${backend}`, () => {
    let b: BackendServer;
    let c: LiftoffClient;
    let n = 0;
    const run = async () => {
      const agent = `m${n++}`;
      return { agent, id: await startedRun(c, agent) };
    };
    /** Uploads `text` in chunks of `size` bytes, each one at the offset the server answered. */
    const upload = async (r: { agent: string; id: string }, text: string, size: number, from = 0) => {
      let offset = from;
      for (let i = 0; i < text.length; i += size)
        offset = (await c.appendLogs(r.id, r.agent, offset, text.slice(i, i + size))).size;
      return offset;
    };

    beforeAll(async () => {
      b = await startBackendServer(backend, { maxRunLogBytes: CAP });
      c = b.client;
    });
    afterAll(async () => b.close());

    it('parses lines cut across uploads once each, however often a chunk is retried, and never notes', async () => {
      const r = await run();
      const text = `start\n${metric({ step: 10, loss: 0.5, acc: 0.1 })}${metric({ loss: 0.25 })}noise\n${metric({ step: 12, loss: 0.125, acc: 0.3 })}`;
      let offset = 0;
      for (let i = 0; i < text.length; i += 7) {
        const piece = text.slice(i, i + 7);
        offset = (await c.appendLogs(r.id, r.agent, offset, piece)).size;
        // A retry of the chunk just stored (its answer lost): accepted, not parsed again.
        await c.appendLogs(r.id, r.agent, offset - Buffer.byteLength(piece), piece);
      }
      await c.appendLogs(r.id, r.agent, offset, `${metric({ loss: 99 })}`, 'note');
      const m = await c.runMetrics(r.id);
      expect(m.lines).toBe(3);
      expect(m.refused).toBe(0);
      expect(m.points.map((p) => [p.key, p.step, p.value])).toEqual([
        ['loss', 10, 0.5],
        ['acc', 10, 0.1],
        ['loss', 1, 0.25], // no step: the run's line count, like W&B's _step
        ['loss', 12, 0.125],
        ['acc', 12, 0.3],
      ]);
      expect(m.points.map((p) => p.seq)).toEqual([0, 1, 2, 3, 4]);
      expect(m.keys).toEqual([
        expect.objectContaining({
          key: 'acc',
          seen: 2,
          stored: 2,
          last: expect.objectContaining({ step: 12, value: 0.3 }),
          min: 0.1,
          max: 0.3,
        }),
        expect.objectContaining({
          key: 'loss',
          seen: 3,
          stored: 3,
          last: expect.objectContaining({ step: 12, value: 0.125 }),
          min: 0.125,
          max: 0.5,
        }),
      ]);
      // One key, and paging by seq.
      expect((await c.runMetrics(r.id, { key: 'acc' })).points.map((p) => p.value)).toEqual([0.1, 0.3]);
      expect((await c.runMetrics(r.id, { afterSeq: 3 })).points.map((p) => p.seq)).toEqual([4]);
      // The lines are still in the log.
      expect((await c.readLogs(r.id)).data).toContain('LIFTOFF_METRICS {"step":10');
    });

    it('still parses metric lines past the log cap, where the bytes are dropped', async () => {
      const r = await run();
      const lines = Array.from({ length: 200 }, (_, i) => metric({ step: i, loss: 1 / (i + 1) })).join('');
      expect(Buffer.byteLength(lines)).toBeGreaterThan(3 * CAP);
      const end = await upload(r, lines, 333);
      // Retries past the cap (offsets are not checked there): what was already scanned is not scanned again.
      const last = metric({ step: 199, loss: 1 / 200 });
      await c.appendLogs(r.id, r.agent, end - Buffer.byteLength(last), last);
      await c.appendLogs(r.id, r.agent, end - 2 * Buffer.byteLength(last), last + last);
      const log = await c.readLogs(r.id);
      expect(log.data).toContain('log truncated');
      const m = await c.runMetrics(r.id);
      expect(m.lines).toBe(200);
      expect(m.keys).toEqual([
        expect.objectContaining({
          key: 'loss',
          seen: 200,
          last: expect.objectContaining({ step: 199, value: 1 / 200 }),
        }),
      ]);
      expect((await allPoints(c, r.id)).map((p) => p.step)).toEqual(Array.from({ length: 200 }, (_, i) => i));
    });

    it('thins a long series to a bounded number of points spread over the whole run, keeping the last value exact', async () => {
      const r = await run();
      const total = MAX_POINTS_PER_KEY * 2 + 500;
      // Past the cap (so nothing is stored but metrics) in big chunks: 4,500 lines in a few uploads.
      const lines = Array.from({ length: total }, (_, i) => metric({ step: i, x: i })).join('');
      await upload(r, lines, 64 * 1024);
      const [key] = (await c.runMetrics(r.id)).keys;
      expect(key).toMatchObject({
        key: 'x',
        seen: total,
        stride: 4,
        last: { step: total - 1, value: total - 1 },
        min: 0,
        max: total - 1,
      });
      const points = await allPoints(c, r.id);
      expect(points.length).toBe(key?.stored);
      expect(points.length).toBeLessThanOrEqual(MAX_POINTS_PER_KEY);
      expect(points.length).toBeGreaterThan(MAX_POINTS_PER_KEY / 2);
      // Every 4th value, from the first to near the end.
      expect(points.every((p) => p.value % 4 === 0)).toBe(true);
      expect(points[0]?.value).toBe(0);
      expect(points.at(-1)?.value).toBeGreaterThan(total - 5);
    });

    it('keeps at most the key cap per run and counts what it refused', async () => {
      const r = await run();
      const wide = Object.fromEntries(Array.from({ length: MAX_METRIC_KEYS_PER_RUN + 5 }, (_, i) => [`k${i}`, i]));
      await upload(r, metric(wide) + 'LIFTOFF_METRICS not json\n' + metric({ k0: 1, new: 1 }), 100_000);
      const m = await c.runMetrics(r.id);
      expect(m.keys).toHaveLength(MAX_METRIC_KEYS_PER_RUN);
      expect(m.keys.find((k) => k.key === 'k0')?.seen).toBe(2);
      // 5 keys of the wide line, the line that is not JSON, and "new".
      expect(m.refused).toBe(7);
    });

    it('streams metric points live with the log when asked, and only then', async () => {
      const r = await run();
      await upload(r, `hello\n${metric({ step: 1, loss: 3 })}`, 1000);
      const key = readCredentials(join(b.home, '.config', 'liftoff', 'credentials'))?.api_key ?? '';
      const follow = fetch(`${b.server.url}/api/runs/${r.id}/logs/stream?metrics_after=-1`, {
        headers: { authorization: `Bearer ${key}` },
      }).then((res) => res.text());
      const plain = fetch(`${b.server.url}/api/runs/${r.id}/logs/stream`, {
        headers: { authorization: `Bearer ${key}` },
      }).then((res) => res.text());
      await new Promise((res) => setTimeout(res, 200));
      await upload(r, metric({ step: 2, loss: 2 }), 1000, Buffer.byteLength(`hello\n${metric({ step: 1, loss: 3 })}`));
      await c.reportRun(r.id, { agent_id: r.agent, state: 'finished', exit_code: 0 });
      const events = (await follow).split('\n\n').filter((e) => e.startsWith('event: metrics'));
      const points = events.flatMap((e) => JSON.parse(e.slice(e.indexOf('data: ') + 6)) as Array<{ step: number }>);
      expect(points.map((p) => p.step)).toEqual([1, 2]);
      expect(await plain).not.toContain('event: metrics');
    });
  });
}
