import BetterSqlite3 from 'better-sqlite3';
import { join } from 'node:path';
import type { Browser, Request } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LiftoffClient } from '@liftoff/core';
import { fixtureRun, insertRunsSql } from '../../packages/server/test/runFixtures.js';
import { cleanupAll, startServer, type TestServer } from '../helpers/procs.js';
import { UiPage, browserUnavailable, launchBrowser } from './browser.js';

/**
 * Issue 18 in Debian's Chromium against a real server: "no access" (403) and "not found" (404) told apart; pages
 * stop polling where nothing can change (a 404, a finished run); during an outage the polls back off and a banner
 * flags the data as stale, and it goes once the server is back.
 */
const skipReason = browserUnavailable();
/** Two and a half of the UI's 2 s poll intervals: a page still polling asks at least twice in it. */
const QUIET_MS = 5_000;

describe.skipIf(skipReason !== undefined)('web UI: access, not found, polling and outages', () => {
  let server: TestServer;
  let browser: Browser;
  let ui: UiPage;
  const asked: Array<{ url: string; at: number }> = [];
  const apiCalls = (since: number, re: RegExp) => asked.filter((r) => r.at >= since && re.test(r.url));

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
      if (path.startsWith('/api/')) asked.push({ url: path, at: Date.now() });
    });
    await ui.signIn();
  });
  afterAll(async () => {
    await ui?.close().catch(() => undefined);
    await browser?.close();
    await cleanupAll();
  });

  it.each([
    ['/runs/nope', /\/api\/runs\/nope/],
    ['/items/nope', /\/api\/items\/nope/],
    ['/queues/nope', /\/api\/entities\/default\/(queues\/nope|agents|runs)/],
  ])('shows "Not found" for %s and stops asking', async (path, calls) => {
    ui.expectStatus(404);
    await ui.goto(path);
    await ui.page.getByRole('heading', { name: 'Not found', level: 1 }).waitFor();
    expect(await ui.page.getByText('You do not have access').count()).toBe(0);
    const shown = Date.now();
    await ui.page.waitForTimeout(QUIET_MS);
    expect(apiCalls(shown, calls)).toEqual([]);
  });

  it('shows "Not found" for a path the UI has no page for', async () => {
    await ui.goto('/no/such/page');
    await ui.page.getByRole('heading', { name: 'Not found', level: 1 }).waitFor();
    await ui.page.getByText('There is no page at /no/such/page.').waitFor();
  });

  it('stops polling a finished run, and keeps polling a running one', async () => {
    await ui.goto('/runs/r0000');
    await ui.page.locator('[data-state="finished"]').first().waitFor();
    const shown = Date.now();
    await ui.page.waitForTimeout(QUIET_MS);
    expect(apiCalls(shown, /^\/api\/runs\/r0000$/)).toEqual([]);
    await ui.goto('/runs/r0002');
    await ui.page.locator('[data-state="running"]').first().waitFor();
    const live = Date.now();
    await ui.page.waitForTimeout(QUIET_MS);
    expect(apiCalls(live, /^\/api\/runs\/r0002$/).length).toBeGreaterThanOrEqual(2);
  });

  it("shows times in the browser's local time with its zone", async () => {
    // India has no daylight-saving time: the fixture's 1970-01-01 00:16:40 UTC is 05:46:40 there, whatever the date.
    const context = await browser.newContext({ timezoneId: 'Asia/Kolkata', locale: 'en-US' });
    try {
      const page = await context.newPage();
      await page.goto(`${server.url}/`);
      await page.getByLabel('API key').fill(server.apiKey);
      await page.getByRole('button', { name: 'Sign in' }).click();
      // Signed in once the queues show: a navigation before that would find no key stored and show the sign-in form.
      await page.getByRole('heading', { name: 'Queues', level: 1 }).waitFor();
      await page.goto(`${server.url}/runs/r0000`);
      await page.locator('[data-state="finished"]').first().waitFor();
      const times = await page.locator('time').allTextContents();
      expect(times.length).toBeGreaterThan(0);
      expect(times).toContain('1970-01-01 05:46:40 GMT+5:30');
      for (const t of times) expect(t).toMatch(/^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} GMT\+5:30$/);
    } finally {
      await context.close();
    }
  });

  it('says "You do not have access" when a member key tries what needs an admin, in UI words', async () => {
    await server.client.createUser('ann');
    await server.client.addMember('default', 'ann', 'member');
    const { key } = await server.client.createKey({ name: 'ann-member', role: 'member', user: 'ann' });
    await new LiftoffClient({ baseUrl: server.url, apiKey: key }).whoami();
    const member = await UiPage.open(browser, server);
    try {
      member.expectStatus(403);
      await member.signIn(key);
      // Its user's own entity comes first; the queue of the team it is a plain member of is in "default".
      await member.page.getByLabel('Entity').fill('default');
      await member.page.getByLabel('Entity').press('Enter');
      await member.page.locator('tr[data-queue="default"]').waitFor();
      await member.page.getByRole('button', { name: 'New queue' }).click();
      await member.page.getByLabel('Name').fill('mine');
      await member.page.getByRole('button', { name: 'Create queue' }).click();
      const alert = member.page.getByRole('alert').filter({ hasText: 'You do not have access to do this:' });
      await alert.waitFor();
      const text = (await alert.textContent()) ?? '';
      expect(text).toContain('needs an admin of the entity');
      expect(text).not.toMatch(/liftoff members|--role/);
      expect(text).not.toMatch(/not found/i);
      await member.page.getByRole('button', { name: 'Cancel' }).click();
      await member.page.getByRole('button', { name: 'Delete queue default' }).click();
      await member.page.getByRole('button', { name: 'Delete', exact: true }).click();
      await member.page.getByRole('alert').filter({ hasText: 'You do not have access to do this:' }).waitFor();
      expect(member.errors).toEqual([]);
    } finally {
      await member.close();
    }
  });

  it('flags stale data during an outage, backs off, and recovers when the server is back', async () => {
    await ui.goto('/');
    await ui.page.getByRole('heading', { name: 'Queues', level: 1 }).waitFor();
    await ui.page.locator('tr[data-queue="default"]').waitFor();
    const port = new URL(server.url).port;
    ui.expectStatus(502, 503, 504);
    await server.stop();
    const down = Date.now();
    const banner = ui.page.getByTestId('stale-banner');
    await banner.waitFor({ timeout: 15_000 });
    expect(await banner.textContent()).toMatch(
      /Stale data: the server cannot be reached since .*; what you see is as of/,
    );
    expect(await banner.textContent()).toMatch(/Trying again (now|in \d+ s)\./);
    // The data stays on screen, flagged, rather than vanishing.
    await ui.page.locator('tr[data-queue="default"]').waitFor();
    await ui.page.waitForTimeout(14_000);
    // Backing off: the gaps between the queue list's tries grow (2 s polls would make 7 in 14 s).
    const tries = apiCalls(down, /^\/api\/entities\/default\/queues$/).map((r) => r.at);
    const gaps = tries.slice(1).map((t, i) => t - (tries[i] as number));
    expect(tries.length).toBeLessThanOrEqual(4);
    expect(gaps.length).toBeGreaterThanOrEqual(1);
    for (let i = 1; i < gaps.length; i++) expect(gaps[i]).toBeGreaterThan(gaps[i - 1] as number);
    server = await startServer({
      home: server.home,
      dataDir: server.dataDir,
      apiKey: server.apiKey,
      flags: ['--port', port],
    });
    // Something new on the server: the page shows it once its next try gets through, and the banner goes.
    await server.client.createQueue('default', { name: 'after-outage', resource: 'local-process', resource_args: {} });
    await ui.page.locator('tr[data-queue="after-outage"]').waitFor({ timeout: 40_000 });
    await banner.waitFor({ state: 'detached', timeout: 5_000 });
    await ui.page.locator('tr[data-queue="default"]').waitFor();
  }, 90_000);
});
