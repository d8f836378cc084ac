import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupAll, cli, startServer, tempDir, type TestServer } from '../helpers/procs.js';
import { UiPage, browserUnavailable, launchBrowser } from './browser.js';

/**
 * Issue 18, copy and consistency: a queue config's problems are all listed at once (by the CLI one per line, by the
 * "New queue" form next to the form in its own words), and the CLI's `queue create --config` and the form store the
 * same text the same way.
 */
const skipReason = browserUnavailable();

describe.skipIf(skipReason !== undefined)('queue config: every problem at once, one stored shape', () => {
  let server: TestServer;
  let browser: Browser;
  let ui: UiPage;

  beforeAll(async () => {
    server = await startServer();
    browser = await launchBrowser();
    ui = await UiPage.open(browser, server);
    await ui.signIn();
  });
  afterAll(async () => {
    await ui?.close().catch(() => undefined);
    await browser?.close();
    await cleanupAll();
  });

  async function createInForm(name: string, resource: string, config: string): Promise<void> {
    await ui.goto('/');
    await ui.page.getByRole('button', { name: 'New queue' }).click();
    await ui.page.getByLabel('Name').fill(name);
    await ui.page.getByLabel('Resource type').selectOption(resource);
    await ui.page.getByLabel('Default resource config (YAML or JSON)').fill(config);
    await ui.page.getByRole('button', { name: 'Create queue' }).click();
  }

  it.each([
    ['a section', 'cpus: 2\nmemory: 4g\nlabels: {team: ml}'],
    ['a section keyed by its resource type', 'local-container:\n  cpus: 2\n  memory: 4g\n  labels: {team: ml}'],
  ])('stores the same config from the CLI and from the form, given %s', async (what, text) => {
    const suffix = what.includes('keyed') ? 'k' : 's';
    // The CLI reads the text from a YAML file, as a user keeps a config.
    const file = join(tempDir('liftoff-qcfg-'), 'config.yaml');
    writeFileSync(file, text);
    const viaCli = await cli(
      ['queue', 'create', `cli-${suffix}`, '--resource', 'local-container', '--config', file],
      server.env,
    );
    expect(viaCli.code, viaCli.output).toBe(0);
    await createInForm(`form-${suffix}`, 'local-container', text);
    await ui.page
      .getByRole('status')
      .filter({ hasText: `Queue “form-${suffix}” created.` })
      .waitFor();
    const fromCli = await server.client.getQueue('default', `cli-${suffix}`);
    const fromForm = await server.client.getQueue('default', `form-${suffix}`);
    expect(fromForm.resource_args).toEqual(fromCli.resource_args);
    expect(fromCli.resource_args).toEqual({ 'local-container': { cpus: 2, memory: '4g', labels: { team: 'ml' } } });
  });

  it('lists every problem of a queue config in the CLI, one per line', async () => {
    const bad = JSON.stringify({ privileged: true, cpus: -1, colour: 'red', builder: { base_image: 'x y' } });
    const r = await cli(['queue', 'create', 'bad', '--resource', 'local-container', '--config', bad], server.env);
    expect(r.code).not.toBe(0);
    const out = r.output;
    for (const line of [
      /^\s+- resource_args\.local-container\.privileged: is refused: privileged containers/m,
      /^\s+- resource_args\.local-container\.cpus: /m,
      /^\s+- resource_args\.local-container\.colour: is not an allowed option/m,
      /^\s+- resource_args\.local-container\.builder\.base_image: /m,
    ])
      expect(out).toMatch(line);
  });

  it('shows every problem next to the form at once, worded for the form', async () => {
    ui.expectStatus(400);
    await createInForm('-bad', 'local-container', 'privileged: true\ncpus: -1\ncolour: red\nimage: "{{tag}}"');
    const banner = ui.page.getByRole('alert').filter({ hasText: 'problems to fix' });
    await banner.waitFor();
    const lines = await banner.locator('li').allTextContents();
    expect(lines).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^Name: /),
        expect.stringMatching(/^Resource config, privileged: is refused: /),
        expect.stringMatching(/^Resource config, cpus: /),
        expect.stringMatching(/^Resource config, colour: is not an allowed option/),
        expect.stringMatching(/^Template variable “tag”: \{\{tag\}\} is used in the config but not declared/),
      ]),
    );
    expect(lines.length).toBeGreaterThanOrEqual(5);
    // UI words: no CLI flag and no API path in any of them.
    for (const l of lines) expect(l).not.toMatch(/--[a-z]|resource_args|body\./);
    // Each field's own problems are beside it too.
    await expect(ui.page.getByLabel('Name').getAttribute('aria-invalid')).resolves.toBe('true');
    await expect(
      ui.page.getByLabel('Default resource config (YAML or JSON)').getAttribute('aria-invalid'),
    ).resolves.toBe('true');
    expect(await server.client.listQueues('default').then((r) => r.queues.map((q) => q.name))).not.toContain('-bad');
    expect(ui.errors).toEqual([]);
  });
});
