import BetterSqlite3 from 'better-sqlite3';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fixtureRun, insertPendingItemsSql, insertRunsSql } from '../../packages/server/test/runFixtures.js';
import { cleanupAll, startServer, type TestServer } from '../helpers/procs.js';
import { UiPage, browserUnavailable, launchBrowser } from './browser.js';

/**
 * The UI's routes (wouter, packages/web/src/router.tsx and App.tsx's route table) in Debian's Chromium against a
 * real server: every page loads from a deep link, back and forward restore pages and filters, a link to the page
 * shown adds no history entry, unknown paths are "Not found", and a Link clicked with the middle button or a
 * modifier key is left to the browser.
 */
const skipReason = browserUnavailable();

describe.skipIf(skipReason !== undefined)('web UI routing', () => {
  let server: TestServer;
  let browser: Browser;
  let ui: UiPage;
  let page: Page;
  const runIds = () =>
    page.locator('table[aria-label="Runs"] tbody tr').evaluateAll((trs) => trs.map((t) => t.getAttribute('data-run')));
  /** The document title: the route's, or the page's own once its data is in (a run's status, a sweep's name). */
  const waitTitle = (title: string) =>
    page.waitForFunction((t) => document.title.startsWith(t), `${title} · `, { timeout: 15_000 });
  const historyLength = () => page.evaluate(() => history.length);

  beforeAll(async () => {
    server = await startServer();
    const db = new BetterSqlite3(join(server.dataDir, 'liftoff.db'));
    try {
      // r0000 finished, r0001 failed, r0002 running; and one pending item.
      db.exec(insertRunsSql('default', [fixtureRun(0), fixtureRun(1), fixtureRun(2)]));
      db.exec(insertPendingItemsSql('default', 'default', 1));
    } finally {
      db.close();
    }
    browser = await launchBrowser();
    ui = await UiPage.open(browser, server);
    page = ui.page;
    await ui.signIn();
  });
  afterAll(async () => {
    await ui?.close().catch(() => undefined);
    await browser?.close();
    await cleanupAll();
  });

  it.each([
    ['/', 'Queues', 'tr[data-queue="default"]'],
    ['/queues', 'Queues', 'tr[data-queue="default"]'],
    ['/queues/default', 'Items · default', '#tab-items[aria-selected="true"]'],
    ['/queues/default/runs', 'Runs · default', '#tab-runs[aria-selected="true"]'],
    ['/queues/default/agents', 'Agents · default', '#tab-agents[aria-selected="true"]'],
    ['/queues/default/config', 'Config · default', '#tab-config[aria-selected="true"]'],
    ['/runs', 'Runs', 'tr[data-run="r0002"]'],
    ['/runs/r0000', 'Run r0000', '[data-state="finished"]'],
    ['/items/p-000000', 'Item p-000000', '[data-state="pending"]'],
    ['/agents', 'Agents', 'main h1:text-is("Agents")'],
    ['/sweeps', 'Sweeps', 'main h1:text-is("Sweeps")'],
  ])('loads %s from a deep link', async (path, title, shown) => {
    await ui.goto(path);
    await waitTitle(title);
    await page.locator(shown).first().waitFor();
    expect(await page.getByText('There is no page at').count()).toBe(0);
  });

  it('loads the global runs page with its filters from the URL', async () => {
    await ui.goto('/runs?state=failed');
    await waitTitle('Runs');
    await page.waitForFunction(() => document.querySelectorAll('table[aria-label="Runs"] tbody tr').length === 1);
    expect(await runIds()).toEqual(['r0001']);
    expect(await page.getByRole('search', { name: 'Filter runs' }).locator('select').first().inputValue()).toBe(
      'failed',
    );
  });

  it.each([
    ['/sweeps/nope', 'Sweep nope', '.banner'],
    ['/jobs/nope/3', 'Job nope v3', 'h1:text-is("Not found")'],
  ])('routes %s to its page (which says its subject is not there)', async (path, title, shown) => {
    ui.expectStatus(404);
    await ui.goto(path);
    await waitTitle(title);
    await page.locator(`main ${shown}`).first().waitFor();
    expect(await page.getByText('There is no page at').count()).toBe(0);
  });

  it.each(['/no/such/page', '/runs/r0000/extra', '/agents/x', '/queues/default/items/extra'])(
    'shows "Not found" for %s',
    async (path) => {
      await ui.goto(path);
      await waitTitle('Page not found');
      await page.getByRole('heading', { name: 'Not found', level: 1 }).waitFor();
      await page.getByText(`There is no page at ${path}.`).waitFor();
    },
  );

  it('back and forward restore pages and filters', async () => {
    await ui.goto('/');
    await page.locator('tr[data-queue="default"]').waitFor();
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Runs' }).click();
    await page.locator('tr[data-run="r0002"]').waitFor();
    await page.getByRole('search', { name: 'Filter runs' }).locator('select').first().selectOption('finished');
    await page.waitForURL(/\/runs\?state=finished$/);
    await page.waitForFunction(() => document.querySelectorAll('table[aria-label="Runs"] tbody tr').length === 1);
    expect(await runIds()).toEqual(['r0000']);

    await page.goBack();
    await page.waitForURL(/\/runs$/);
    await page.waitForFunction(() => document.querySelectorAll('table[aria-label="Runs"] tbody tr').length === 3);
    await page.goBack();
    await waitTitle('Queues');
    await page.locator('tr[data-queue="default"]').waitFor();
    await page.goForward();
    await waitTitle('Runs');
    await page.goForward();
    await page.waitForURL(/\/runs\?state=finished$/);
    await page.waitForFunction(() => document.querySelectorAll('table[aria-label="Runs"] tbody tr').length === 1);
    expect(await runIds()).toEqual(['r0000']);
    expect(await page.getByRole('search', { name: 'Filter runs' }).locator('select').first().inputValue()).toBe(
      'finished',
    );
  });

  it('a link to the page shown adds no history entry; one to another page adds one', async () => {
    await ui.goto('/runs');
    await page.locator('tr[data-run="r0002"]').waitFor();
    const nav = page.getByRole('navigation', { name: 'Main' });
    const before = await historyLength();
    await nav.getByRole('link', { name: 'Runs' }).click();
    await page.waitForTimeout(300);
    expect(await historyLength()).toBe(before);
    expect(new URL(page.url()).pathname).toBe('/runs');
    await nav.getByRole('link', { name: 'Agents' }).click();
    await waitTitle('Agents');
    expect(await historyLength()).toBe(before + 1);
  });

  it('leaves a middle click or a modifier-key click on a Link to the browser', async () => {
    await ui.goto('/');
    await page.locator('tr[data-queue="default"]').waitFor();
    // After React's handlers (they listen at the root), note whether the click was taken over, then keep the browser
    // from opening a tab: the page must stay as it is either way.
    await page.evaluate(() => {
      const w = window as unknown as { clicks: Array<{ type: string; prevented: boolean }> };
      w.clicks = [];
      for (const type of ['click', 'auxclick'])
        window.addEventListener(type, (e) => {
          if (!(e.target instanceof Element) || !e.target.closest('nav a')) return;
          w.clicks.push({ type, prevented: e.defaultPrevented });
          e.preventDefault();
        });
    });
    const clicks = () =>
      page.evaluate(() => (window as unknown as { clicks: Array<{ type: string; prevented: boolean }> }).clicks);
    const runs = page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Runs' });
    expect(await runs.getAttribute('href')).toBe('/runs');
    await runs.click({ button: 'middle' });
    await runs.click({ modifiers: ['Control'] });
    await runs.click({ modifiers: ['Shift'] });
    await page.waitForTimeout(300);
    expect(await clicks()).toEqual([
      { type: 'auxclick', prevented: false },
      { type: 'click', prevented: false },
      { type: 'click', prevented: false },
    ]);
    expect(new URL(page.url()).pathname).toBe('/');
    // A plain click is the app's: taken over (so the listener above does see a prevented click), and navigated.
    await runs.click();
    await waitTitle('Runs');
    expect((await clicks()).at(-1)).toEqual({ type: 'click', prevented: true });
    expect(ui.errors).toEqual([]);
  });
});
