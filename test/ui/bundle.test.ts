import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupAll, startServer, type TestServer } from '../helpers/procs.js';
import { UiPage, WEB_INDEX, browserUnavailable, launchBrowser } from './browser.js';

/**
 * Issue 18, efficiency and one source of truth: the built UI splits the YAML reader and the charts into chunks
 * loaded on demand, and holds no node-only or schema code although it imports its types and enums from
 * @liftoff/core (its browser-safe `web` entry).
 */
const skipReason = browserUnavailable();
const ASSETS = join(WEB_INDEX, '..', 'assets');
const isYaml = (code: string) => code.includes('YAMLParseError');
const isUplot = (code: string) => code.includes('uplot') || code.includes('u-legend');

describe.skipIf(skipReason !== undefined)('web UI bundle', () => {
  const chunks = new Map<string, string>();
  let initial: string[] = [];
  let server: TestServer;
  let browser: Browser;
  let ui: UiPage;

  beforeAll(async () => {
    for (const f of readdirSync(ASSETS).filter((n) => n.endsWith('.js')))
      chunks.set(f, readFileSync(join(ASSETS, f), 'utf8'));
    const html = readFileSync(WEB_INDEX, 'utf8');
    initial = [...html.matchAll(/(?:src|href)="\/assets\/([^"]+\.js)"/g)].map((m) => m[1] as string);
    server = await startServer();
    browser = await launchBrowser();
    ui = await UiPage.open(browser, server);
  });
  afterAll(async () => {
    await ui?.close().catch(() => undefined);
    await browser?.close();
    await cleanupAll();
  });

  it('keeps the YAML reader and uPlot out of the chunks a first visit loads', () => {
    expect(initial.length).toBeGreaterThan(0);
    for (const f of initial) {
      const code = chunks.get(f) ?? '';
      expect(isYaml(code), `${f} holds the YAML reader`).toBe(false);
      expect(isUplot(code), `${f} holds uPlot`).toBe(false);
    }
    expect([...chunks.values()].filter(isYaml)).toHaveLength(1);
    expect([...chunks.values()].filter(isUplot).length).toBeGreaterThanOrEqual(1);
  });

  it('holds no zod schemas and no node-only modules', () => {
    for (const [f, code] of chunks) {
      expect(code, f).not.toMatch(/ZodError|\$ZodType/);
      expect(code, f).not.toMatch(/from\s*["']node:|require\(["']node:/);
      expect(code, f).not.toMatch(/\bhomedir\b/);
    }
  });

  it('fetches the YAML chunk only when a form needs it, and the charts only on pages with charts', async () => {
    const fetched: string[] = [];
    ui.page.on('request', (r) => {
      const m = /\/assets\/([^/?]+\.js)$/.exec(new URL(r.url()).pathname);
      if (m) fetched.push(m[1] as string);
    });
    const kinds = () => ({
      yaml: fetched.some((f) => isYaml(chunks.get(f) ?? '')),
      charts: fetched.some((f) => isUplot(chunks.get(f) ?? '')),
    });
    await ui.signIn();
    await ui.page.locator('tr[data-queue="default"]').waitFor();
    expect(kinds()).toEqual({ yaml: false, charts: false });
    await ui.page.getByRole('button', { name: 'New queue' }).click();
    await ui.page.getByLabel('Name').waitFor();
    await expect.poll(() => kinds().yaml).toBe(true);
    expect(kinds().charts).toBe(false);
    await ui.goto('/queues/default');
    await ui.page.locator('.chart-box').first().waitFor();
    expect(kinds().charts).toBe(true);
    expect(ui.errors).toEqual([]);
  });
});
