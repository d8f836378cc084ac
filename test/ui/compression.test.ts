import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { brotliCompressSync, brotliDecompressSync, gunzipSync, gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LiftoffClient, readCredentials } from '@liftoff/core';
import { startServer, type RunningServer } from '@liftoff/server';
import { startedRun } from '../../packages/server/test/factory.js';
import { cleanupAll, tempDir } from '../helpers/procs.js';

const WEB_DIST = join(import.meta.dirname, '..', '..', 'packages', 'web', 'dist');

interface RawAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

/** One request with exactly the headers given (fetch would add its own Accept-Encoding and decode the answer). */
function raw(url: string, headers: Record<string, string>, method = 'GET', body?: string): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, headers }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (d: Buffer) => parts.push(d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts) }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** Issue 18: brotli/gzip for the UI's files (made at build time) and the API's answers, never the agent protocol. */
describe('compression', () => {
  let server: RunningServer;
  let key: string;
  let web: string;
  const script = Buffer.from(`console.log(${JSON.stringify('liftoff '.repeat(2000))});\n`);

  beforeAll(async () => {
    const home = tempDir('liftoff-compress-');
    web = tempDir('liftoff-web-');
    mkdirSync(join(web, 'assets'));
    writeFileSync(join(web, 'index.html'), '<!doctype html><title>Liftoff</title>');
    writeFileSync(join(web, 'assets', 'app-abc123.js'), script);
    writeFileSync(join(web, 'assets', 'app-abc123.js.br'), brotliCompressSync(script));
    writeFileSync(join(web, 'assets', 'app-abc123.js.gz'), gzipSync(script));
    server = await startServer({
      host: '127.0.0.1',
      port: 0,
      dataDir: join(home, 'data'),
      env: { HOME: home },
      webDir: web,
    });
    key = readCredentials(server.credentialsFile)?.api_key ?? '';
  });
  afterAll(async () => {
    await server.close();
    await cleanupAll();
  });

  it('sends the UI’s precompressed files as they are, by what the client accepts', async () => {
    const url = `${server.url}/assets/app-abc123.js`;
    const br = await raw(url, { 'accept-encoding': 'gzip, br' });
    expect(br.headers['content-encoding']).toBe('br');
    expect(br.headers.vary).toMatch(/accept-encoding/i);
    expect(br.headers['content-type']).toMatch(/javascript/);
    expect(br.body).toEqual(readFileSync(join(web, 'assets', 'app-abc123.js.br')));
    expect(brotliDecompressSync(br.body)).toEqual(script);
    const gz = await raw(url, { 'accept-encoding': 'gzip' });
    expect(gz.headers['content-encoding']).toBe('gzip');
    expect(gunzipSync(gz.body)).toEqual(script);
    const plain = await raw(url, {});
    expect(plain.headers['content-encoding']).toBeUndefined();
    expect(plain.body).toEqual(script);
  });

  it('compresses API answers over 1 KiB, not small ones', async () => {
    const client = new LiftoffClient({ baseUrl: server.url, apiKey: key });
    for (let i = 0; i < 20; i++) await client.createQueue('default', { name: `queue-${i}`, resource: 'local-process' });
    const url = `${server.url}/api/entities/default/queues`;
    const auth = { authorization: `Bearer ${key}` };
    const plain = await raw(url, auth);
    expect(plain.headers['content-encoding']).toBeUndefined();
    expect(plain.body.length).toBeGreaterThan(1024);
    const br = await raw(url, { ...auth, 'accept-encoding': 'br' });
    expect(br.headers['content-encoding']).toBe('br');
    expect(br.body.length).toBeLessThan(plain.body.length / 3);
    expect(JSON.parse(brotliDecompressSync(br.body).toString())).toEqual(JSON.parse(plain.body.toString()));
    const gz = await raw(url, { ...auth, 'accept-encoding': 'gzip' });
    expect(gz.headers['content-encoding']).toBe('gzip');
    expect(JSON.parse(gunzipSync(gz.body).toString())).toEqual(JSON.parse(plain.body.toString()));
    const small = await raw(`${server.url}/api/whoami`, { ...auth, 'accept-encoding': 'br' });
    expect(small.headers['content-encoding']).toBeUndefined();
  });

  it('never compresses the agent protocol, however large the answer', async () => {
    const client = new LiftoffClient({ baseUrl: server.url, apiKey: key });
    await client.registerAgent({
      id: 'cz',
      name: 'cz',
      entity: 'default',
      hostname: 'h',
      queues: ['default'],
      version: 't',
      max_jobs: 8,
    });
    const env = Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`VAR_${i}`, 'value '.repeat(10)]));
    for (let i = 0; i < 4; i++)
      await client.push('default', 'default', {
        spec: { source: { type: 'git', url: 'https://git.example.com/x.git' }, entry_point: ['true'], env },
      });
    const poll = await raw(
      `${server.url}/api/agents/cz/poll`,
      { authorization: `Bearer ${key}`, 'accept-encoding': 'br, gzip', 'content-type': 'application/json' },
      'POST',
      JSON.stringify({ queues: ['default'], max_items: 4, wait_ms: 0 }),
    );
    expect(poll.status).toBe(200);
    expect(poll.body.length).toBeGreaterThan(4096);
    expect(poll.headers['content-encoding']).toBeUndefined();
    expect((JSON.parse(poll.body.toString()) as { items: unknown[] }).items).toHaveLength(4);
  });

  it('sends run outputs as they are stored, with their length', async () => {
    const client = new LiftoffClient({ baseUrl: server.url, apiKey: key });
    const run = await startedRun(client, 'co');
    const text = Buffer.from('loss 0.1\n'.repeat(1000));
    const sha = createHash('sha256').update(text).digest('hex');
    const u = await client.startOutputUpload(run, {
      agent_id: 'co',
      path: 'train.log',
      size: text.length,
      sha256: sha,
    });
    await client.putOutputBytes(run, u.upload_id, 'co', 0, [text], text.length);
    await client.commitOutputs(run, { agent_id: 'co', files: [{ path: 'train.log', size: text.length, sha256: sha }] });
    const got = await raw(`${server.url}/api/runs/${run}/outputs/file?path=train.log`, {
      authorization: `Bearer ${key}`,
      'accept-encoding': 'br, gzip',
    });
    expect(got.headers['content-encoding']).toBeUndefined();
    expect(got.headers['content-length']).toBe(String(text.length));
    expect(got.body).toEqual(text);
  });

  // The real build (npm run build, before the tests) writes the compressed copies the server sends.
  it.skipIf(!existsSync(join(WEB_DIST, 'assets')))(
    'the UI build writes .br and .gz of each script and stylesheet',
    () => {
      const assets = join(WEB_DIST, 'assets');
      const files = readdirSync(assets).filter((f) => /\.(js|css)$/.test(f));
      expect(files.length).toBeGreaterThan(0);
      for (const f of files) {
        const original = readFileSync(join(assets, f));
        if (original.length < 1024) continue;
        expect(brotliDecompressSync(readFileSync(join(assets, `${f}.br`)))).toEqual(original);
        expect(gunzipSync(readFileSync(join(assets, `${f}.gz`)))).toEqual(original);
      }
    },
  );
});
