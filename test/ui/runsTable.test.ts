import BetterSqlite3 from 'better-sqlite3';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fixtureRun, insertRunsSql } from '../../packages/server/test/runFixtures.js';
import { cleanupAll, startServer, type TestServer } from '../helpers/procs.js';
import { UiPage, browserUnavailable, launchBrowser } from './browser.js';

/**
 * Issue 17's runs table on the queue page, in Debian's Chromium against a real server: server-side sort by a metric
 * column, columns kept in the URL across a reload, and the compare view (curves overlaid, configs side by side).
 */
const skipReason = browserUnavailable();
const N = 60;

/** Metric points written straight into the database: `n` values of `key` for `run`. */
function pointsSql(run: string, key: string, n: number): string {
  const rows = Array.from({ length: n }, (_, i) => `('${run}', '${key}', ${i}, ${i}, ${i * 10}, ${1 / (i + 1)}, ${i})`);
  return `INSERT INTO run_metric_points (run_id, key, idx, seq, step, value, time) VALUES ${rows.join(', ')};`;
}

describe.skipIf(skipReason !== undefined)('web UI runs table', () => {
  let server: TestServer;
  let browser: Browser;
  let ui: UiPage;
  const rowIds = () =>
    ui.page
      .locator('table[aria-label="Runs"] tbody tr')
      .evaluateAll((trs) => trs.map((t) => t.getAttribute('data-run')));

  beforeAll(async () => {
    server = await startServer();
    const db = new BetterSqlite3(join(server.dataDir, 'liftoff.db'));
    try {
      db.exec(
        insertRunsSql(
          'default',
          Array.from({ length: N }, (_, i) => fixtureRun(i)),
        ),
      );
      db.exec(pointsSql('r0002', 'loss', 30) + pointsSql('r0002', 'acc', 10) + pointsSql('r0007', 'loss', 45));
    } finally {
      db.close();
    }
    browser = await launchBrowser();
    ui = await UiPage.open(browser, server);
    await ui.signIn();
  });

  afterAll(async () => {
    await ui?.close().catch(() => undefined);
    await browser?.close();
    await cleanupAll();
  });

  it('sorts by a metric column on the server when its header is clicked, both ways, as the API does', async () => {
    await ui.goto('/queues/default/runs?columns=metric.loss');
    await ui.page.locator('th[data-sort-column="metric.loss"]').waitFor();
    for (const sort of ['metric.loss', '-metric.loss']) {
      await ui.page.locator('th[data-sort-column="metric.loss"] button').click();
      await ui.page.waitForURL((u) => u.searchParams.get('sort') === sort);
      const api = await server.client.listRuns('default', {
        queue: 'default',
        columns: 'metric.loss',
        sort,
        limit: 50,
      });
      const want = api.runs.map((r) => r.id);
      await ui.page.waitForFunction(
        (first) => document.querySelector('table[aria-label="Runs"] tbody tr')?.getAttribute('data-run') === first,
        want[0],
      );
      expect(await rowIds()).toEqual(want);
      expect(await ui.page.locator('th[data-sort-column="metric.loss"]').getAttribute('aria-sort')).toBe(
        sort.startsWith('-') ? 'descending' : 'ascending',
      );
    }
    expect(ui.errors).toEqual([]);
  });

  it('keeps a column chosen in the picker across a reload, with the values the API gives', async () => {
    await ui.goto('/queues/default/runs');
    await ui.page.locator('table[aria-label="Runs"] tbody tr').first().waitFor();
    await ui.page.getByText('Columns', { exact: false }).first().click();
    await ui.page.getByLabel('config.lr').check();
    await ui.page.waitForURL((u) => u.searchParams.get('columns') === 'config.lr');
    await ui.page.reload();
    const header = ui.page.locator('th[data-sort-column="config.lr"]');
    await header.waitFor();
    const api = await server.client.listRuns('default', { queue: 'default', columns: 'config.lr', limit: 50 });
    const cells = await ui.page
      .locator('td[data-column="config.lr"]')
      .evaluateAll((tds) => tds.map((td) => [td.closest('tr')?.getAttribute('data-run'), td.textContent]));
    // lr is a number or missing in the fixture; the table prints numbers as they are and a dash when missing.
    expect(cells).toEqual(
      api.runs.map((r) => {
        const lr = r.columns['config.lr'];
        return [r.id, typeof lr === 'number' ? String(lr) : '—'];
      }),
    );
    expect(cells.some(([, text]) => text === '—')).toBe(true);
    expect(ui.errors).toEqual([]);
  });

  it('compares two runs: both curves per metric with the API point counts, differing config keys marked', async () => {
    await ui.goto('/queues/default/runs?sort=created_at');
    await ui.page.getByLabel('Select run r0002').check();
    await ui.page.getByLabel('Select run r0007').check();
    await ui.page.getByRole('button', { name: /^Compare/ }).click();
    await ui.page.waitForURL((u) => u.searchParams.get('compare') === 'r0002,r0007');
    const loss = ui.page.locator('[data-testid="compare"] figure[data-metric="loss"]');
    await loss.waitFor();
    for (const run of ['r0002', 'r0007']) {
      const api = await server.client.runMetrics(run, { key: 'loss', limit: 10_000 });
      expect(api.points.length).toBeGreaterThan(0);
      expect(await loss.locator(`li[data-run="${run}"]`).getAttribute('data-points')).toBe(String(api.points.length));
    }
    // acc: only r0002 has it, so its chart has one series.
    const acc = ui.page.locator('[data-testid="compare"] figure[data-metric="acc"]');
    expect(await acc.locator('li').count()).toBe(1);
    const row = (key: string) => ui.page.locator(`[data-testid="compare"] tr[data-config-key="${key}"]`);
    expect(await row('lr').getAttribute('data-differs')).toBe('true');
    expect(await row('lr').getAttribute('class')).toContain('row-differs');
    expect(await row('opt').getAttribute('data-differs')).toBe('false');
    expect(await row('opt').getAttribute('class')).toBeNull();
    expect(ui.errors).toEqual([]);
    await ui.screenshot('runs-compare');
  });
});
