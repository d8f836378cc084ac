import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readCredentials } from '@liftoff/core';
import { BACKENDS, pgAvailable } from '../../../test/helpers/postgres.js';
import { refusal, startBackendServer, type BackendServer } from './factory.js';

const source = { type: 'git', url: 'https://git.example.com/x.git' } as const;
/** `{"a":{"a":...{"a":1}}}`, `levels` objects deep. */
const nested = (levels: number): Record<string, unknown> => {
  let v: Record<string, unknown> = { a: 1 };
  for (let i = 1; i < levels; i++) v = { a: v };
  return v;
};

/** Issue 12, point 7: limits on spec and run config size and on JSON nesting, named errors and never a 500. */
for (const backend of BACKENDS) {
  describe.skipIf(backend === 'postgres' && !pgAvailable)(`spec limits on ${backend}`, () => {
    let b: BackendServer;
    let key: string;
    const post = (path: string, body: string, method = 'POST') =>
      fetch(`${b.server.url}${path}`, {
        method,
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
        body,
      });
    const answer = async (res: Response) => ({
      status: res.status,
      ...((await res.json()) as { error: { code: string; message: string } }),
    });
    beforeAll(async () => {
      b = await startBackendServer(backend);
      key = readCredentials(join(b.home, '.config', 'liftoff', 'credentials'))?.api_key ?? '';
    });
    afterAll(async () => b.close());

    it('refuses a run_config nested 5,000 deep with 400 JSON_TOO_DEEP, and takes one 60 deep', async () => {
      // Written as text: JSON.stringify itself runs out of stack on 5,000 levels.
      const deep = `${'{"a":'.repeat(4_999)}{"a":1}${'}'.repeat(4_999)}`;
      const body = `{"spec":{"source":${JSON.stringify(source)},"entry_point":["true"],"run_config":${deep}}}`;
      const a = await answer(await post('/api/entities/default/queues/default/items', body));
      expect(a.status).toBe(400);
      expect(a.error.code).toBe('JSON_TOO_DEEP');
      expect(a.error.message).toContain('64 levels');
      // Through the client, the same named code.
      const e = await refusal(
        b.client.push('default', 'default', { spec: { source, entry_point: ['true'], run_config: nested(100) } }),
      );
      expect(e.code).toBe('JSON_TOO_DEEP');
      // 60 objects in run_config, plus the body's own two levels: within the limit, stored and read back whole.
      const item = await b.client.push('default', 'default', {
        spec: { source, entry_point: ['true'], run_config: nested(60) },
      });
      expect((await b.client.getItem(item.id)).spec.run_config).toEqual(nested(60));
    });

    it('refuses deep nesting on every JSON route, even a 1 MiB body of brackets, without a 500', async () => {
      const brackets = `{"max_concurrency":${'['.repeat(512 * 1024)}${']'.repeat(512 * 1024)}}`;
      const a = await answer(await post('/api/entities/default', brackets, 'PATCH'));
      expect(a.status).toBe(400);
      expect(a.error.code).toBe('JSON_TOO_DEEP');
      // Brackets inside strings are text, not nesting.
      const text = await b.client.push('default', 'default', {
        spec: { source, entry_point: ['echo', '['.repeat(10_000)], run_config: { note: '{'.repeat(10_000) } },
      });
      expect(text.state).toBe('pending');
      expect((await b.client.whoami()).role).toBe('admin');
    });

    it('refuses a run_config over 256 KiB and a push body over 1 MiB with 413 SPEC_TOO_LARGE', async () => {
      const big = await answer(
        await post(
          '/api/entities/default/queues/default/items',
          JSON.stringify({ spec: { source, entry_point: ['true'], run_config: { blob: 'x'.repeat(300 * 1024) } } }),
        ),
      );
      expect(big.status).toBe(413);
      expect(big.error.code).toBe('SPEC_TOO_LARGE');
      expect(big.error.message).toMatch(/run config is 300(\.\d)? KiB, which is over the server's limit of 256 KiB/);
      expect(big.error.message).toContain('fetch them in the job');

      const huge = await answer(
        await post(
          '/api/entities/default/queues/default/items',
          JSON.stringify({ spec: { source, entry_point: ['true'], args: ['y'.repeat(1100 * 1024)] } }),
        ),
      );
      expect(huge.status).toBe(413);
      expect(huge.error.code).toBe('SPEC_TOO_LARGE');
      expect(huge.error.message).toContain('limit of 1 MiB');
      // Just under both limits: accepted.
      const ok = await b.client.push('default', 'default', {
        spec: { source, entry_point: ['true'], run_config: { blob: 'x'.repeat(250 * 1024) } },
      });
      expect(ok.state).toBe('pending');
    });
  });
}

describe('spec limits are server settings', () => {
  let b: BackendServer;
  beforeAll(async () => {
    b = await startBackendServer('sqlite', { runConfigBytes: 1024, pushBodyBytes: 4096, jsonDepth: 8 });
  });
  afterAll(async () => b.close());

  it('applies the configured limits', async () => {
    const spec = (run_config: Record<string, unknown>, args: string[] = []) => ({
      spec: { source, entry_point: ['true'], args, run_config },
    });
    expect((await refusal(b.client.push('default', 'default', spec({ s: 'x'.repeat(2000) })))).code).toBe(
      'SPEC_TOO_LARGE',
    );
    expect((await refusal(b.client.push('default', 'default', spec({}, ['x'.repeat(5000)])))).code).toBe(
      'SPEC_TOO_LARGE',
    );
    expect((await refusal(b.client.push('default', 'default', spec(nested(8))))).code).toBe('JSON_TOO_DEEP');
    expect((await b.client.push('default', 'default', spec(nested(5)))).state).toBe('pending');
  });
});
