import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupAll, cli, startAgent, startServer, tempDir, until, type TestServer } from '../helpers/procs.js';
import { UiPage, browserUnavailable, launchBrowser } from './browser.js';

/**
 * Issue 19's sweep pages in Debian's Chromium against a real server, agent and CLI: the Sweeps list, a finished
 * grid sweep's page (trials table, best trial, parameter-vs-metric scatter with its picker, every trial's curve
 * overlaid), and pause / resume / stop of a live sweep, stop asking first. Screenshots at 1440x900 and 390x844 go
 * to a temp dir.
 */
const skipReason = browserUnavailable();
const SHOTS = mkdtempSync(join(tmpdir(), 'liftoff-sweeps-ui-'));

/** Reports loss = lr·10 + the optimiser's penalty + 1/(step+1) for steps 0..2 (so the best is lr 0.001, adam). */
const TRAIN = `const c = JSON.parse(process.env.LIFTOFF_RUN_CONFIG);
const penalty = { adam: 0, sgd: 0.5 }[c.opt];
for (let step = 0; step < 3; step++)
  console.log('LIFTOFF_METRICS ' + JSON.stringify({ step, loss: +(c.lr * 10 + penalty + 1 / (step + 1)).toFixed(6) }));
`;
const GRID = `method: grid
metric: {name: loss, goal: minimize}
parameters:
  lr: {values: [0.1, 0.01, 0.001]}
  opt: {values: [adam, sgd]}
`;
const SLOW = `method: random
metric: {name: loss}
parameters:
  lr: {distribution: uniform, min: 0, max: 1}
`;

describe.skipIf(skipReason !== undefined)('web UI: sweeps', () => {
  let server: TestServer;
  let browser: Browser;
  let ui: UiPage;
  let page: Page;
  let grid = '';
  let dir = '';
  const shoot = async (name: string) => {
    for (const [w, h] of [
      [1440, 900],
      [390, 844],
    ] as const) {
      await page.setViewportSize({ width: w, height: h });
      // Nothing wider than a phone: the trials table scrolls inside its card, the charts redraw at the new width
      // (their ResizeObserver fires after the resize, so wait for it before measuring).
      const overflow = () => page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      await page
        .waitForFunction(() => document.documentElement.scrollWidth <= window.innerWidth)
        .catch(() => undefined);
      expect(await overflow()).toBeLessThanOrEqual(0);
      await page.screenshot({ path: join(SHOTS, `${name}-${w}x${h}.png`), fullPage: true });
    }
    await page.setViewportSize({ width: 1440, height: 900 });
  };
  const create = async (file: string, yaml: string, extra: string[]) => {
    writeFileSync(join(dir, file), yaml);
    const r = await cli(['sweep', 'create', '-q', 'default', join(dir, file), '--code', dir, ...extra], server.env);
    expect(r.code, r.output).toBe(0);
    return r.output.trim().split('\n').at(-1) ?? '';
  };

  beforeAll(async () => {
    server = await startServer();
    browser = await launchBrowser();
    await startAgent(server, { maxJobs: 2 });
    dir = tempDir('liftoff-sweeps-ui-');
    writeFileSync(join(dir, 'train.mjs'), TRAIN);
    writeFileSync(join(dir, 'slow.mjs'), 'setTimeout(() => undefined, 600_000);\n');
    grid = await create('grid.yaml', GRID, ['-E', 'node train.mjs', '--parallel', '2', '--name', 'lr-grid']);
    await until(async () => {
      const s = await server.client.getSweep('default', grid);
      return s.state === 'finished' ? s : undefined;
    }, 120_000);
    ui = await UiPage.open(browser, server, { width: 1440, height: 900 });
    page = ui.page;
    await ui.signIn();
  }, 180_000);
  afterAll(async () => {
    await ui?.close().catch(() => undefined);
    await browser?.close();
    await cleanupAll();
  });

  it("a finished grid sweep's page: trials, best trial, scatter by the picked parameter, every trial's curve", async () => {
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Sweeps' }).click();
    const row = page.locator(`tr[data-sweep="${grid}"]`);
    await row.waitFor();
    expect(await row.locator('[data-sweep-state]').innerText()).toBe('Finished');
    expect(await row.locator('[data-col="trials"]').innerText()).toBe('6');
    expect(await row.innerText()).toContain('grid exhausted');
    await shoot('sweeps-list');

    await row.getByRole('link', { name: 'lr-grid' }).click();
    await page.getByRole('heading', { name: 'lr-grid', level: 1 }).waitFor();
    const trials = page.locator('table[aria-label="Trials"] tbody tr');
    await page.waitForFunction(() => document.querySelectorAll('table[aria-label="Trials"] tbody tr').length === 6);
    expect(await trials.evaluateAll((trs) => trs.map((t) => t.getAttribute('data-state')))).toEqual(
      Array(6).fill('finished'),
    );
    // Grid order: lr outermost, as W&B's grid walks it; each row its parameters and last loss (step 2: + 1/3).
    expect(await trials.locator('[data-param="lr"]').allInnerTexts()).toEqual([
      '0.1',
      '0.1',
      '0.01',
      '0.01',
      '0.001',
      '0.001',
    ]);
    expect(await trials.locator('[data-param="opt"]').allInnerTexts()).toEqual([
      'adam',
      'sgd',
      'adam',
      'sgd',
      'adam',
      'sgd',
    ]);
    expect(await trials.nth(4).locator('[data-col="metric"]').innerText()).toBe('0.343333 best');
    expect(await page.locator('[data-field="best-number"]').innerText()).toBe('4');
    expect(await page.getByTestId('best-trial').innerText()).toContain('lr=0.001, opt=adam');

    // The scatter: one dot per trial at its parameter's value, the best ringed; the picker switches the axis.
    const scatter = page.locator('figure.sweep-scatter');
    expect(await scatter.getAttribute('data-param')).toBe('lr');
    const dots = scatter.locator('circle[data-trial]');
    expect(await dots.count()).toBe(6);
    expect(await scatter.locator('circle[data-trial="4"]').getAttribute('data-x')).toBe('0.001');
    expect(await scatter.locator('circle[data-trial="4"]').getAttribute('r')).toBe('7');
    await page.getByLabel('Plot parameter').selectOption('opt');
    await page.locator('figure.sweep-scatter[data-param="opt"]').waitFor();
    expect(await dots.evaluateAll((cs) => cs.map((c) => c.getAttribute('data-x')))).toEqual([
      'adam',
      'sgd',
      'adam',
      'sgd',
      'adam',
      'sgd',
    ]);
    // Categories get one slot each: both adam trials share an x, sgd's another.
    const cx = await dots.evaluateAll((cs) => cs.map((c) => c.getAttribute('cx')));
    expect(new Set(cx).size).toBe(2);
    expect(cx[0]).toBe(cx[2]);

    // Every trial's loss curve on one chart, 3 points each.
    const curves = page.getByTestId('trial-curves').locator('li[data-run]');
    await page.waitForFunction(
      () => document.querySelectorAll('[data-testid="trial-curves"] li[data-run]').length === 6,
    );
    expect(await curves.evaluateAll((ls) => ls.map((l) => l.getAttribute('data-points')))).toEqual(Array(6).fill('3'));
    expect(await curves.allInnerTexts()).toContain('trial 4: 3 points');
    await shoot('sweep-page');
    // A finished sweep offers no controls.
    expect(await page.getByRole('button', { name: 'Pause' }).count()).toBe(0);
    expect(ui.errors).toEqual([]);
  });

  it('pauses, resumes and, after confirming, stops a live sweep, cancelling its trial', async () => {
    const id = await create('slow.yaml', SLOW, ['-E', 'node slow.mjs', '--parallel', '1', '--name', 'slow']);
    await ui.goto(`/sweeps/${id}`);
    await page.getByRole('heading', { name: 'slow', level: 1 }).waitFor();
    await page.locator('table[aria-label="Trials"] tbody tr[data-state="running"]').waitFor({ timeout: 30_000 });

    await page.getByRole('button', { name: 'Pause' }).click();
    await page.locator('[data-sweep-state="paused"]').waitFor();
    expect((await server.client.getSweep('default', id)).state).toBe('paused');
    await page.getByRole('button', { name: 'Resume' }).click();
    await page.locator('[data-sweep-state="running"]').waitFor();

    // Stop asks first; keeping it changes nothing.
    await page.getByRole('button', { name: 'Stop' }).click();
    const dialog = page.getByRole('dialog', { name: 'Stop sweep slow?' });
    await dialog.waitFor();
    expect(await dialog.innerText()).toContain('the trial in flight is cancelled');
    await shoot('sweep-stop');
    await dialog.getByRole('button', { name: 'Keep running' }).click();
    await dialog.waitFor({ state: 'detached' });
    expect((await server.client.getSweep('default', id)).state).toBe('running');

    await page.getByRole('button', { name: 'Stop' }).click();
    await dialog.getByRole('button', { name: 'Stop sweep' }).click();
    await page.locator('[data-sweep-state="stopped"]').waitFor();
    await page.locator('table[aria-label="Trials"] tbody tr[data-state="stopped"]').waitFor({ timeout: 30_000 });
    const s = await server.client.getSweep('default', id);
    expect(s.state).toBe('stopped');
    expect(s.trials?.map((t) => t.state)).toEqual(['stopped']);
    expect(await page.getByRole('button', { name: 'Resume' }).count()).toBe(0);
    expect(ui.errors).toEqual([]);
  });
});
