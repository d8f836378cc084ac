import { existsSync, mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { chromium, type Browser, type ConsoleMessage, type Page } from 'playwright-core';
import { ROOT, type TestServer } from '../helpers/procs.js';

export const CHROMIUM = '/usr/bin/chromium';

/**
 * Where a suite's screenshots go: LIFTOFF_SCREENSHOTS (scripts/refresh-screenshots.mjs sets it, then copies the
 * ones the docs show into docs/screenshots), else a fresh temp dir, so a test run never rewrites committed images.
 */
export function screenshotDir(prefix: string): string {
  const dir = process.env.LIFTOFF_SCREENSHOTS;
  if (dir) {
    mkdirSync(resolve(dir), { recursive: true });
    return resolve(dir);
  }
  return mkdtempSync(join(tmpdir(), `liftoff-${prefix}-shots-`));
}
let shared: string | undefined;
/** The dir of UiPage.screenshot, made on first use (one per test file). */
export function sharedScreenshotDir(): string {
  shared ??= screenshotDir('ui');
  return shared;
}
export const WEB_INDEX = join(ROOT, 'packages', 'web', 'dist', 'index.html');

/** Why the browser suites cannot run here, or undefined when they can. Fails instead under LIFTOFF_REQUIRE_SERVICES=1. */
export function browserUnavailable(): string | undefined {
  let reason: string | undefined;
  if (!existsSync(CHROMIUM)) reason = `${CHROMIUM} is missing; install it with "bash scripts/services/chromium.sh"`;
  else if (!existsSync(WEB_INDEX)) reason = `${WEB_INDEX} is missing; run "npm run build" first`;
  if (reason && process.env.LIFTOFF_REQUIRE_SERVICES === '1') {
    throw new Error(`LIFTOFF_REQUIRE_SERVICES=1 but the web UI tests cannot run: ${reason}`);
  }
  if (reason) console.warn(`\n!!! SKIPPING the web UI tests: ${reason}\n`);
  return reason;
}

export async function launchBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

/** A page in a fresh context (its own sessionStorage) that records console errors and uncaught exceptions. */
export class UiPage {
  readonly errors: string[] = [];
  /** Console lines of HTTP answers the test provokes on purpose, e.g. "401" for a wrong key. */
  private readonly expectedStatuses = new Set<number>();

  private constructor(
    readonly page: Page,
    readonly server: TestServer,
  ) {
    page.on('console', (m: ConsoleMessage) => {
      if (m.type() !== 'error') return;
      const text = m.text();
      // Chromium aborts the requests in flight when the host's network changes, as other suites running meanwhile
      // add and remove interfaces (Docker's veths, network namespaces). Not the UI's error: the page polls again.
      if (text.includes('net::ERR_NETWORK_CHANGED')) return;
      const status = /status of (\d{3})/.exec(text)?.[1];
      if (status && this.expectedStatuses.has(Number(status))) return;
      this.errors.push(`console.error: ${text} (${m.location().url})`);
    });
    page.on('pageerror', (e) => this.errors.push(`uncaught: ${e.message}`));
  }

  static async open(
    browser: Browser,
    server: TestServer,
    viewport = { width: 1360, height: 860 },
    opts: { colorScheme?: 'light' | 'dark' } = {},
  ): Promise<UiPage> {
    const context = await browser.newContext({
      viewport,
      deviceScaleFactor: 1,
      reducedMotion: 'reduce',
      colorScheme: opts.colorScheme ?? 'light',
    });
    const page = await context.newPage();
    page.setDefaultTimeout(15_000);
    return new UiPage(page, server);
  }

  /** The HTTP statuses (as Chromium logs failed fetches to the console) this test expects to see. */
  expectStatus(...statuses: number[]): void {
    for (const s of statuses) this.expectedStatuses.add(s);
  }

  async goto(path: string): Promise<void> {
    await this.page.goto(this.server.url + path);
  }

  async signIn(key = this.server.apiKey): Promise<void> {
    await this.goto('/');
    await this.page.getByLabel('API key').fill(key);
    await this.page.getByRole('button', { name: 'Sign in' }).click();
    await this.page.getByRole('heading', { name: 'Queues', level: 1 }).waitFor();
  }

  async screenshot(name: string): Promise<void> {
    // Let charts and relative times settle, and keep the caret out of the picture.
    await this.page.evaluate(() => (document.activeElement as HTMLElement | null)?.blur());
    await this.page.waitForTimeout(300);
    await this.page.screenshot({ path: join(sharedScreenshotDir(), `${name}.png`), fullPage: true });
  }

  async close(): Promise<void> {
    await this.page.context().close();
  }
}
