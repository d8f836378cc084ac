import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LiftoffClient } from '@liftoff/core';
import { cleanupAll, startServer, type TestServer } from '../helpers/procs.js';
import { UiPage, browserUnavailable, launchBrowser, screenshotDir } from './browser.js';

const skipReason = browserUnavailable();
const LINES = 1_000_000;
const NEEDLE_LINE = 999_990;
const ANSI_LINE = 5;
const TQDM_LINE = 6;

/** Line `n` of the seeded log: its number in the text, so a row can be checked against its line number. */
function lineText(n: number): string {
  if (n === ANSI_LINE) return '\x1b[31mred error\x1b[0m then \x1b[1;32mbold green\x1b[0m plain';
  if (n === TQDM_LINE) return '\r  0%|          | 0/10\r 50%|#####     | 5/10\r100%|##########| 10/10 done';
  const tag = n === NEEDLE_LINE ? ' NEEDLE-NEAR-END' : '';
  return `line ${String(n).padStart(7, '0')} step=${n} loss=${(1 / n).toFixed(6)}${tag} ${'x'.repeat(20)}`;
}

/**
 * A run with a 1,000,000-line log (about 60 MB) written straight into the server's SQLite file in 1 MiB chunks,
 * as the agent's uploads would have stored it, plus one agent note at the end: seconds, not an agent's hour.
 */
async function seedBigRun(server: TestServer): Promise<string> {
  const c: LiftoffClient = server.client;
  await c.registerAgent({
    id: 'ui-logs',
    name: 'ui-logs',
    entity: 'default',
    hostname: 'h',
    queues: ['default'],
    version: 't',
    max_jobs: 1,
  });
  const item = await c.push('default', 'default', {
    spec: { source: { type: 'git', url: 'https://example.com/r.git' }, entry_point: ['true'], name: 'big-log' },
  });
  await c.poll('ui-logs', { queues: ['default'], max_items: 1, wait_ms: 0 });
  const run = await c.ackItem(item.id, 'ui-logs');
  const db = new BetterSqlite3(join(server.dataDir, 'liftoff.db'));
  db.pragma('busy_timeout = 10000');
  try {
    const insert = db.prepare(
      'INSERT INTO log_chunks (run_id, "offset", size, data, kind, newlines) VALUES (?, ?, ?, ?, ?, ?)',
    );
    let offset = 0;
    const write = db.transaction(() => {
      let buf: string[] = [];
      let bytes = 0;
      const flush = (kind: string) => {
        const data = Buffer.from(buf.join(''), 'utf8');
        insert.run(run.id, offset, data.length, data, kind, buf.length);
        offset += data.length;
        buf = [];
        bytes = 0;
      };
      for (let n = 1; n <= LINES; n++) {
        const line = `${lineText(n)}\n`;
        buf.push(line);
        bytes += line.length;
        if (bytes >= 1 << 20) flush('output');
      }
      if (buf.length) flush('output');
      buf = ['[liftoff] job exited with code 0\n'];
      flush('note');
      db.prepare('UPDATE runs SET log_size = ?, log_received = ? WHERE id = ?').run(offset, offset, run.id);
    });
    write();
  } finally {
    db.close();
  }
  await c.reportRun(run.id, { agent_id: 'ui-logs', state: 'finished', exit_code: 0 });
  return run.id;
}

/** The rows in the DOM: line number and shown text. */
async function rows(page: Page): Promise<Array<{ n: number; text: string; loaded: boolean }>> {
  return page.locator('.log-row').evaluateAll((els) =>
    els.map((el) => ({
      n: Number(el.getAttribute('data-line')),
      text: el.querySelector('.log-text')?.textContent ?? '',
      loaded: !el.querySelector('.log-text')?.classList.contains('muted'),
    })),
  );
}

/** Waits until every row in view is loaded, then checks each shows its own line, and that the DOM stays small. */
async function settledRows(page: Page): Promise<Array<{ n: number; text: string }>> {
  await page.waitForFunction(() => {
    const els = Array.from(document.querySelectorAll('.log-row .log-text'));
    return els.length > 0 && els.every((e) => !e.classList.contains('muted'));
  });
  const shown = await rows(page);
  expect(shown.length).toBeGreaterThan(10);
  expect(shown.length).toBeLessThanOrEqual(300);
  for (const r of shown) {
    if (r.n <= LINES && r.n !== ANSI_LINE && r.n !== TQDM_LINE) expect(r.text).toBe(lineText(r.n));
  }
  return shown;
}

/** Issue 18: the run page's log viewer on a million-line log. */
describe.skipIf(skipReason !== undefined)('log viewer in the web UI', () => {
  let server: TestServer;
  let browser: Browser;
  let ui: UiPage | undefined;
  let runId: string;
  const shots = screenshotDir('logviewer');

  beforeAll(async () => {
    server = await startServer();
    browser = await launchBrowser();
    runId = await seedBigRun(server);
  }, 120_000);
  afterAll(async () => {
    await ui?.close().catch(() => undefined);
    await browser?.close();
    await cleanupAll();
  });

  it('scrolls a 1,000,000-line log top to bottom with a bounded DOM, paging as it goes', async () => {
    ui = await UiPage.open(browser, server);
    const { page } = ui;
    await ui.signIn();
    await ui.goto(`/runs/${runId}`);
    await page.getByTestId('log-lines').filter({ hasText: '1,000,001 lines' }).waitFor();
    // It opens at the end: the agent's note is the last line, styled apart from the job's output.
    const last = page.locator('.log-row[data-line="1000001"]');
    await last.waitFor();
    expect(await last.getAttribute('class')).toContain('log-note');
    expect(await last.locator('.log-text').textContent()).toBe('[liftoff] job exited with code 0');
    await page.getByTestId('log-partial').waitFor();
    await page.screenshot({ path: join(shots, 'log-end.png') });

    const scroller = page.getByTestId('logs');
    await scroller.evaluate((el) => (el.scrollTop = 0));
    // The rows shown before the scroll are settled too: wait for the virtualiser to render the top first.
    await page.locator('.log-row[data-line="1"]').waitFor();
    const top = await settledRows(page);
    expect(top[0]?.n).toBe(1);
    expect(top[0]?.text).toBe(lineText(1));
    await page.getByTestId('log-follow').waitFor();

    // Down the whole log in ten jumps; every stop shows its own lines, paged in from the server.
    for (let k = 1; k <= 10; k++) {
      await scroller.evaluate((el, f) => (el.scrollTop = (el.scrollHeight - el.clientHeight) * f), k / 10);
      // The rows follow the scroll position: line ≈ k/10 of the log is among them.
      const near = Math.min(LINES, Math.round((k / 10) * LINES));
      await page.waitForFunction(
        (want) =>
          Array.from(document.querySelectorAll('.log-row')).some(
            (el) => Math.abs(Number(el.getAttribute('data-line')) - want) < 60,
          ),
        near,
      );
      await settledRows(page);
    }
    const bottom = await rows(page);
    expect(bottom.at(-1)?.n).toBe(LINES + 1);
    expect(bottom.some((r) => r.n === LINES && r.text === lineText(LINES))).toBe(true);
  });

  it('shows ANSI colours without escapes and a \\r progress line at its latest state', async () => {
    const { page } = ui as UiPage;
    await page.getByTestId('logs').evaluate((el) => (el.scrollTop = 0));
    await settledRows(page);
    const ansi = page.locator(`.log-row[data-line="${ANSI_LINE}"] .log-text`);
    expect(await ansi.textContent()).toBe('red error then bold green plain');
    const red = ansi.locator('.ansi-red-fg');
    expect(await red.textContent()).toBe('red error');
    expect(await red.evaluate((el) => getComputedStyle(el).color)).toBe('rgb(248, 113, 113)');
    const bold = ansi.locator('.ansi-green-fg.ansi-bold');
    expect(await bold.evaluate((el) => getComputedStyle(el).fontWeight)).toBe('700');
    const tqdm = page.locator(`.log-row[data-line="${TQDM_LINE}"] .log-text`);
    expect(await tqdm.textContent()).toBe('100%|##########| 10/10 done');
    const all = await page.getByTestId('logs').evaluate((el) => el.textContent ?? '');
    expect(all.includes('\x1b') || all.includes('\r')).toBe(false);
    await page.screenshot({ path: join(shots, 'log-ansi.png') });
  });

  it('finds a match near the end with the server-side search and scrolls to it', async () => {
    const { page } = ui as UiPage;
    await page.getByLabel('Search the log').fill('needle-near-end');
    await page.getByRole('button', { name: 'Find' }).click();
    await page
      .getByTestId('log-search-status')
      .filter({ hasText: /^1 of 1$/ })
      .waitFor({ timeout: 60_000 });
    const hit = page.locator(`.log-row[data-line="${NEEDLE_LINE}"]`);
    await hit.waitFor();
    expect(await hit.getAttribute('class')).toContain('log-selected');
    await page.waitForFunction(
      (n) => !document.querySelector(`.log-row[data-line="${n}"] .log-text`)?.classList.contains('muted'),
      NEEDLE_LINE,
    );
    expect(await hit.locator('.log-text').textContent()).toBe(lineText(NEEDLE_LINE));
    // The occurrence itself is marked, found case-insensitively as the server did.
    expect(await hit.locator('mark.log-mark').allTextContents()).toEqual(['NEEDLE-NEAR-END']);
    await page.getByRole('button', { name: 'Next match' }).click();
    await page.getByLabel('Search the log').fill('no such text anywhere');
    await page.getByRole('button', { name: 'Find' }).click();
    await page.getByTestId('log-search-status').filter({ hasText: 'no matches' }).waitFor({ timeout: 60_000 });
    await page.screenshot({ path: join(shots, 'log-search.png') });
  });

  it('opens at #L<n> with that line selected, and a click on a line number sets the link', async () => {
    const { page } = ui as UiPage;
    await ui?.goto(`/runs/${runId}#L500000`);
    const row = page.locator('.log-row[data-line="500000"]');
    await row.waitFor();
    await page.waitForFunction(
      () => !document.querySelector('.log-row[data-line="500000"] .log-text')?.classList.contains('muted'),
    );
    expect(await row.getAttribute('class')).toContain('log-selected');
    expect(await row.locator('.log-text').textContent()).toBe(lineText(500_000));
    await page.locator('.log-row[data-line="500003"] .log-ln').click();
    expect(new URL(page.url()).hash).toBe('#L500003');
    expect(await page.locator('.log-row[data-line="500003"]').getAttribute('class')).toContain('log-selected');
    expect(await page.locator('.log-row[data-line="500000"]').getAttribute('class')).not.toContain('log-selected');
    await page.screenshot({ path: join(shots, 'log-line-link.png') });
    expect(ui?.errors).toEqual([]);
  });

  it('follows a live log, stops following when scrolled up, and resumes with the button', async () => {
    const c = server.client;
    await c.registerAgent({
      id: 'ui-live',
      name: 'ui-live',
      entity: 'default',
      hostname: 'h',
      queues: ['default'],
      version: 't',
      max_jobs: 1,
    });
    const item = await c.push('default', 'default', {
      spec: { source: { type: 'git', url: 'https://example.com/r.git' }, entry_point: ['true'], name: 'live-log' },
    });
    await c.poll('ui-live', { queues: ['default'], max_items: 1, wait_ms: 0 });
    const run = (await c.ackItem(item.id, 'ui-live')).id;
    let offset = 0;
    let written = 0;
    const write = async (n: number) => {
      const text = Array.from({ length: n }, (_, k) => `live ${written + k + 1}\n`).join('');
      offset = (await c.appendLogs(run, 'ui-live', offset, text)).size;
      written += n;
    };
    await write(500);
    const { page } = ui as UiPage;
    await ui?.goto(`/runs/${run}`);
    await page.locator('.log-row[data-line="500"]').waitFor();
    await write(500);
    // Following: the new last line comes into view by itself.
    await page.locator('.log-row[data-line="1000"]').waitFor();
    expect(await page.getByTestId('log-follow').count()).toBe(0);
    await page.getByTestId('logs').evaluate((el) => (el.scrollTop = 0));
    await page.getByTestId('log-follow').waitFor();
    await write(500);
    await page.getByTestId('log-lines').filter({ hasText: '1,500 lines' }).waitFor();
    // Not following: the view stays at the top while lines arrive.
    expect(await page.locator('.log-row[data-line="1"]').count()).toBe(1);
    expect(await page.locator('.log-row[data-line="1500"]').count()).toBe(0);
    await page.getByTestId('log-follow').click();
    await page.locator('.log-row[data-line="1500"]').waitFor();
    expect(await page.locator('.log-row[data-line="1500"] .log-text').textContent()).toBe('live 1500');
    await c.reportRun(run, { agent_id: 'ui-live', state: 'finished', exit_code: 0 });
    await page.locator('[data-phase="ended"]').waitFor();
    await page.screenshot({ path: join(shots, 'log-live.png') });
    expect(ui?.errors).toEqual([]);
    console.log(`log viewer screenshots: ${shots}`);
  });
});
