import BetterSqlite3 from 'better-sqlite3';
import { join } from 'node:path';
import type { Browser, Request } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fixtureRun, insertRunsSql } from '../../packages/server/test/runFixtures.js';
import { cleanupAll, startServer, type TestServer } from '../helpers/procs.js';
import { UiPage, browserUnavailable, launchBrowser } from './browser.js';

/**
 * The UI's data cache (TanStack Query, packages/web/src/poll.ts and resources.ts) in Debian's Chromium against a
 * real server: views of one resource share its answer instead of asking again; the cache never shows one key's or
 * one entity's data to another. Where polling stops and how it backs off during an outage is liveness.test.ts's.
 */
const skipReason = browserUnavailable();
/** Two and a half of the UI's 2 s poll intervals: a page still polling asks at least twice in it. */
const QUIET_MS = 5_000;

describe.skipIf(skipReason !== undefined)('web UI data cache', () => {
  let server: TestServer;
  let browser: Browser;
  let ui: UiPage;
  const asked: Array<{ path: string; at: number }> = [];
  const calls = (since: number, re: RegExp) => asked.filter((r) => r.at >= since && re.test(r.path));

  beforeAll(async () => {
    server = await startServer();
    const db = new BetterSqlite3(join(server.dataDir, 'liftoff.db'));
    try {
      db.exec(insertRunsSql('default', [fixtureRun(0), fixtureRun(2)]));
    } finally {
      db.close();
    }
    browser = await launchBrowser();
    ui = await UiPage.open(browser, server);
    ui.page.on('request', (r: Request) => {
      const path = new URL(r.url()).pathname;
      if (path.startsWith('/api/')) asked.push({ path, at: Date.now() });
    });
    await ui.signIn();
  });
  afterAll(async () => {
    await ui?.close().catch(() => undefined);
    await browser?.close();
    await cleanupAll();
  });

  /** Records whether `selector` matches anything from now on (a MutationObserver: even a frame's worth counts). */
  const watchFor = (selector: string) =>
    ui.page.evaluate((sel) => {
      const w = window as unknown as { seen: boolean; watcher?: MutationObserver };
      w.watcher?.disconnect();
      w.seen = false;
      w.watcher = new MutationObserver(() => {
        if (document.querySelector(sel)) w.seen = true;
      });
      w.watcher.observe(document.body, { childList: true, subtree: true });
    }, selector);
  const seen = () => ui.page.evaluate(() => (window as unknown as { seen: boolean }).seen);

  it("shares one answer between two views of a resource: the Runs page's queue filter reuses the Queues page's list", async () => {
    await ui.goto('/');
    await ui.page.locator('tr[data-queue="default"]').waitFor();
    // Right after the Queues page's poll answers, open the Runs page: its queue filter needs the same list.
    await ui.page.waitForResponse((r) => new URL(r.url()).pathname === '/api/entities/default/queues');
    const opened = Date.now();
    await ui.page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Runs' }).click();
    await ui.page.getByRole('heading', { name: 'Runs', level: 1 }).waitFor();
    // The list is on screen at once, from the cache...
    await ui.page.locator('form[aria-label="Filter runs"] option[value="default"]').waitFor({ state: 'attached' });
    await ui.page.waitForTimeout(QUIET_MS);
    // ...and the Runs page (which reads it every 30 s) did not ask for it again on opening.
    expect(calls(opened, /^\/api\/entities\/default\/queues$/)).toEqual([]);
    // The runs it shows are its own resource, asked for.
    expect(calls(opened, /^\/api\/entities\/default\/runs$/).length).toBeGreaterThanOrEqual(1);
  });

  it("switching entity never shows the previous entity's data", async () => {
    await server.client.createUser('bob');
    await server.client.createQueue('bob', { name: 'bobs-queue', resource: 'local-process', resource_args: {} });
    await ui.goto('/');
    await ui.page.locator('tr[data-queue="default"]').waitFor();
    await watchFor('tr[data-queue="default"]');
    await ui.page.getByLabel('Entity').fill('bob');
    await ui.page.getByLabel('Entity').press('Enter');
    await ui.page.locator('tr[data-queue="bobs-queue"]').waitFor();
    expect(await seen()).toBe(false);
    // And back: default's list again, never bob's.
    await watchFor('tr[data-queue="bobs-queue"]');
    await ui.page.getByLabel('Entity').fill('default');
    await ui.page.getByLabel('Entity').press('Enter');
    await ui.page.locator('tr[data-queue="default"]').waitFor();
    expect(await seen()).toBe(false);
  });

  it("signing in with another key never shows the previous key's data", async () => {
    // Bob's key is no member of "default": the same page (entity default, its queues) is a 404 for it.
    const { key } = await server.client.createKey({ name: 'bob-member', role: 'member', user: 'bob' });
    await ui.goto('/');
    await ui.page.locator('tr[data-queue="default"]').waitFor();
    ui.expectStatus(404);
    await ui.page.getByRole('button', { name: 'Sign out' }).click();
    await ui.page.getByLabel('API key').fill(key);
    await watchFor('tr[data-queue="default"]');
    const refused = ui.page.waitForResponse(
      (r) => new URL(r.url()).pathname === '/api/entities/default/queues' && r.status() === 404,
    );
    await ui.page.getByRole('button', { name: 'Sign in' }).click();
    await refused;
    await ui.page.getByRole('heading', { name: 'Queues', level: 1 }).waitFor();
    expect(await ui.page.getByLabel('Entity').inputValue()).toBe('default');
    await ui.page.waitForTimeout(1_000);
    expect(await seen()).toBe(false);
    expect(await ui.page.locator('tr[data-queue]').count()).toBe(0);
    // Back to the admin key for the tests after this one.
    await ui.page.getByRole('button', { name: 'Sign out' }).click();
    await ui.page.getByLabel('API key').fill(server.apiKey);
    await ui.page.getByRole('button', { name: 'Sign in' }).click();
    await ui.page.locator('tr[data-queue="default"]').waitFor();
  });
});
