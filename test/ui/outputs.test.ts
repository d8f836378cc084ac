import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupAll, startServer, type TestServer } from '../helpers/procs.js';
import { UiPage, browserUnavailable, launchBrowser } from './browser.js';

const skipReason = browserUnavailable();
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Issue 17: the run page lists a run's outputs with their sizes, and its download button saves the bytes. */
describe.skipIf(skipReason !== undefined)('run outputs in the web UI', () => {
  let server: TestServer;
  let browser: Browser;
  let ui: UiPage | undefined;

  beforeAll(async () => {
    server = await startServer();
    browser = await launchBrowser();
  });
  afterAll(async () => {
    await ui?.close().catch(() => undefined);
    await browser?.close();
    await cleanupAll();
  });

  it('lists the outputs with sizes and downloads one', async () => {
    const c = server.client;
    // A run with committed outputs, through the agent protocol (nothing needs to execute for the page).
    await c.registerAgent({
      id: 'ui-out',
      name: 'ui-out',
      entity: 'default',
      hostname: 'h',
      queues: ['default'],
      version: 't',
      max_jobs: 1,
    });
    const item = await c.push('default', 'default', {
      spec: { source: { type: 'git', url: 'https://example.com/r.git' }, entry_point: ['true'] },
    });
    await c.poll('ui-out', { queues: ['default'], max_items: 1, wait_ms: 0 });
    const run = await c.ackItem(item.id, 'ui-out');
    const model = Buffer.alloc(1536 * 1024);
    for (let i = 0; i < model.length; i++) model[i] = (i * 13) & 0xff;
    const notes = Buffer.from('trained for 3 epochs\n');
    const files = [
      { path: 'ckpt/model.pt', data: model },
      { path: 'notes.txt', data: notes },
    ];
    for (const f of files) {
      const u = await c.startOutputUpload(run.id, {
        agent_id: 'ui-out',
        path: f.path,
        size: f.data.length,
        sha256: sha(f.data),
      });
      await c.putOutputBytes(run.id, u.upload_id, 'ui-out', 0, [f.data], f.data.length);
    }
    await c.commitOutputs(run.id, {
      agent_id: 'ui-out',
      files: files.map((f) => ({ path: f.path, size: f.data.length, sha256: sha(f.data) })),
    });
    // Where the job also wrote outputs in the cloud (as a SageMaker or Vertex runner reports it).
    const link = `s3://liftoff-models/train/liftoff-${run.id}/output/`;
    await c.reportRun(run.id, { agent_id: 'ui-out', state: 'finished', exit_code: 0, outputs_link: link });

    ui = await UiPage.open(browser, server);
    const { page } = ui;
    await ui.signIn();
    await ui.goto(`/runs/${run.id}`);
    const section = page.getByTestId('run-outputs');
    await section.locator('li[data-path="ckpt/model.pt"]').waitFor();
    const rows = await section
      .locator('li')
      .evaluateAll((lis) =>
        lis.map((li) => [li.getAttribute('data-path'), li.querySelector('[data-field="size"]')?.textContent]),
      );
    expect(rows).toEqual([
      ['ckpt/model.pt', '1.5 MiB'],
      ['notes.txt', '21 B'],
    ]);
    expect(await section.getByTestId('outputs-link').innerText()).toBe(
      `The job writes its outputs to ${link} (in the cloud; Liftoff does not copy them).`,
    );
    // Shown as text: nothing on the page links to it.
    expect(await page.locator(`a[href*="liftoff-models"]`).count()).toBe(0);
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      section.getByRole('button', { name: 'Download ckpt/model.pt' }).click(),
    ]);
    expect(download.suggestedFilename()).toBe('model.pt');
    expect(sha(readFileSync(await download.path()))).toBe(sha(model));
    await ui.screenshot('run-outputs');
    expect(ui.errors).toEqual([]);
  }, 120_000);
});
