import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startServer, type RunningServer } from '@liftoff/server';
import { cleanupAll, tempDir } from '../helpers/procs.js';

/** How `liftoff server` serves the web UI's build next to the API (no browser needed). */
describe('serving the web UI', () => {
  let server: RunningServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
    await cleanupAll();
  });

  const start = async (webDir: string) => {
    const home = tempDir('liftoff-static-');
    server = await startServer({
      host: '127.0.0.1',
      port: 0,
      dataDir: join(home, 'data'),
      env: { HOME: home },
      webDir,
    });
    return server.url;
  };

  it('serves files, answers index.html for app routes, and leaves /api alone', async () => {
    const web = tempDir('liftoff-web-');
    mkdirSync(join(web, 'assets'));
    writeFileSync(join(web, 'index.html'), '<!doctype html><title>Liftoff</title>');
    writeFileSync(join(web, 'assets', 'app-abc123.js'), 'console.log(1)');
    const url = await start(web);

    const index = await fetch(`${url}/`);
    expect(index.status).toBe(200);
    expect(index.headers.get('content-type')).toMatch(/text\/html/);
    expect(await index.text()).toContain('<title>Liftoff</title>');

    const asset = await fetch(`${url}/assets/app-abc123.js`);
    expect(asset.status).toBe(200);
    expect(asset.headers.get('cache-control')).toContain('immutable');
    expect(await asset.text()).toBe('console.log(1)');

    for (const path of ['/queues/default/agents', '/runs/01abc', '/items/x?tab=1']) {
      const r = await fetch(url + path);
      expect(r.status).toBe(200);
      expect(await r.text()).toContain('<title>Liftoff</title>');
    }
    // A path that climbs out of the directory gets the app, never the file.
    const climb = await fetch(`${url}/%2e%2e/%2e%2e/etc/passwd`);
    expect(await climb.text()).not.toContain('root:');

    // A malformed escape cannot be decoded into a path: one error in the API's shape saying so, not the app.
    const bad = await fetch(`${url}/runs/%E0%A4%A`);
    expect(bad.status).toBe(400);
    const badBody = (await bad.json()) as { error: { code: string; message: string } };
    expect(badBody.error).toMatchObject({ code: 'BAD_REQUEST', message: expect.stringContaining('/runs/%E0%A4%A') });

    const api = await fetch(`${url}/api/no-such-route`);
    expect(api.status).toBe(401);
    expect(((await api.json()) as { error: { code: string } }).error.code).toBe('UNAUTHENTICATED');
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
  });

  it('keeps the API working when the UI is not built, and says how to build it', async () => {
    const url = await start(join(tempDir('liftoff-web-'), 'missing'));
    const r = await fetch(`${url}/`);
    expect(r.status).toBe(404);
    expect(await r.text()).toContain('npm run build');
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
    expect((await fetch(`${url}/api/whoami`)).status).toBe(401);
  });
});
