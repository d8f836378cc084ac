import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { codeDir } from '../helpers/jobs.js';
import { cleanupAll, cli, startAgent, startServer, type TestServer } from '../helpers/procs.js';
import { UiPage, browserUnavailable, launchBrowser } from './browser.js';

/**
 * Issue 21 in Chromium: the launch dialog picks a job and shows a form generated from its run-config schema; the
 * server's schema refusal shows in the dialog; the run page links to its job version.
 */
const skipReason = browserUnavailable();

describe.skipIf(skipReason !== undefined)('web UI: jobs', () => {
  let server: TestServer;
  let browser: Browser;
  let ui: UiPage;

  beforeAll(async () => {
    server = await startServer();
    browser = await launchBrowser();
    await startAgent(server);
    const code = codeDir({ 'main.mjs': "console.log('config', process.env.LIFTOFF_RUN_CONFIG);\n" });
    const schema = codeDir({
      'schema.json': JSON.stringify({
        type: 'object',
        properties: {
          lr: { type: 'number', maximum: 1, description: 'learning rate', default: 0.1 },
          opt: { enum: ['adam', 'sgd'] },
          epochs: { type: 'integer' },
        },
        required: ['lr'],
      }),
    });
    const made = await cli(
      ['job', 'create', 'trainer', '--code', code, '-E', 'node main.mjs', '--schema', `${schema}/schema.json`],
      server.env,
    );
    expect(made.code, made.output).toBe(0);
  });
  afterAll(async () => {
    await ui?.close().catch(() => undefined);
    await browser?.close();
    await cleanupAll();
  });

  it('launches a job from the dialog with its schema form and links the run to the job version', async () => {
    ui = await UiPage.open(browser, server);
    ui.expectStatus(400);
    const { page } = ui;
    await ui.signIn();
    await page.locator('tr[data-queue="default"]').getByRole('link', { name: 'default' }).click();
    await page.getByRole('button', { name: 'Launch job' }).click();
    const dialog = page.getByRole('dialog', { name: 'Launch a job on “default”' });
    await dialog.getByLabel('Saved job').check();
    await dialog.getByLabel('Job', { exact: true }).selectOption('trainer');
    const form = dialog.getByTestId('schema-form');
    await form.waitFor();
    // One field per property, of its type, with the schema's default and description.
    expect(await form.getByLabel('lr (number)').inputValue()).toBe('0.1');
    expect(await form.innerText()).toContain('learning rate · max 1 · required');
    expect(await form.getByLabel('opt (one of)').locator('option').allInnerTexts()).toEqual(['—', 'adam', 'sgd']);

    // A value past the maximum: the server refuses it, naming the key, and nothing is queued.
    await form.getByLabel('lr (number)').fill('5');
    await dialog.getByRole('button', { name: 'Launch' }).click();
    await dialog.getByRole('alert').filter({ hasText: 'lr: must be <= 1' }).waitFor();
    expect((await server.client.getQueue('default', 'default')).pending).toBe(0);
    await ui.screenshot('launch-job');

    await form.getByLabel('lr (number)').fill('0.5');
    await form.getByLabel('opt (one of)').selectOption('sgd');
    await form.getByLabel('epochs (integer)').fill('3');
    await dialog.getByRole('button', { name: 'Launch' }).click();
    await page.waitForURL(/\/runs\/[^/]+$/, { timeout: 20_000 });
    await page.locator('[data-testid="run-status"] [data-state="finished"]').waitFor({ timeout: 20_000 });
    await page.getByTestId('logs').filter({ hasText: 'config {"lr":0.5,"opt":"sgd","epochs":3}' }).waitFor();
    const runId = page.url().split('/').pop() as string;
    expect((await server.client.getRun(runId)).spec.job).toEqual({ name: 'trainer', version: 'v0' });

    // A re-run from the run page stays a run of the version.
    await page.getByRole('button', { name: 'Re-run…' }).click();
    const rerun = page.getByRole('dialog', { name: `Re-run run ${runId} on “default”` });
    await rerun.getByRole('button', { name: 'Launch' }).click();
    await page.waitForURL((u) => !u.pathname.endsWith(runId), { timeout: 20_000 });
    // The dialog hands over to the item page, which hands over to the run page once an agent claimed it.
    const [, kind, id] = /\/(items|runs)\/([^/]+)$/.exec(new URL(page.url()).pathname) ?? [];
    const again = await server.client.getItem(
      kind === 'runs' ? (await server.client.getRun(id as string)).item_id : (id as string),
    );
    expect(again.spec.job).toEqual({ name: 'trainer', version: 'v0' });
    expect(again.spec.run_config).toEqual({ lr: 0.5, opt: 'sgd', epochs: 3 });
    await page.goto(`${server.url}/runs/${runId}`);

    await page.locator('[data-field="job"]').getByRole('link', { name: 'trainer:v0' }).click();
    await page.getByRole('heading', { name: 'trainer:v0' }).waitFor();
    expect(await page.locator('[data-field="job-schema"]').innerText()).toContain('"maximum": 1');
    expect(ui.errors).toEqual([]);
  });
});
