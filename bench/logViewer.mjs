/* global document, window, requestAnimationFrame -- the page.evaluate callbacks run in the browser */
// The run page's log viewer under a fast live log (issue 18): while a writer appends 5,000 lines/s to a run through
// the agent's log append call, how long the page takes to answer a click, in Chromium, for the virtualised viewer
// and, side by side, the viewer it replaced (built from the commit before LogViewer.tsx, served by the same server).
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { LiftoffClient, readCredentials } from '@liftoff/core';
import { startServer as startServerInProcess } from '@liftoff/server';
import { chromium } from 'playwright-core';
import { fmtMs, heldRun, percentiles, registerProtocolAgent, ROOT, sleep, tempDir } from './lib.mjs';

const CHROMIUM = '/usr/bin/chromium';
const LINES_PER_SECOND = 5_000;
const TICK_MS = 100;
const CLICK_EVERY_MS = 250;

/** Builds the web UI as it was before the new viewer into a temp dir inside the repository (for its node_modules). */
function buildOldWeb() {
  const added = execFileSync('git', ['log', '--diff-filter=A', '--format=%H', '--', 'packages/web/src/LogViewer.tsx'], {
    cwd: ROOT,
    encoding: 'utf8',
  })
    .trim()
    .split('\n')
    .at(-1);
  if (!added) return undefined;
  const dir = join(ROOT, 'node_modules', '.cache', 'liftoff-old-web');
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const tar = execFileSync('git', ['archive', `${added}^`, 'packages/web'], { cwd: ROOT, maxBuffer: 1 << 30 });
  execFileSync('tar', ['-x', '-C', dir], { input: tar });
  const web = join(dir, 'packages', 'web');
  execFileSync(
    process.execPath,
    [join(ROOT, 'node_modules', 'vite', 'bin', 'vite.js'), 'build', web, '--logLevel', 'warn'],
    {
      cwd: ROOT,
      stdio: 'inherit',
    },
  );
  return {
    dist: join(web, 'dist'),
    commit: execFileSync('git', ['rev-parse', '--short=8', `${added}^`], { cwd: ROOT, encoding: 'utf8' }).trim(),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** Line `i` of the fast log: about 60 bytes, every 50th with ANSI colour, as a training loop prints. */
const line = (i) =>
  i % 50 === 0
    ? `\x1b[32mstep ${i}\x1b[0m loss ${(1 / (i + 1)).toFixed(6)} lr 0.001 elapsed ${(i / 5000).toFixed(2)}s`
    : `step ${i} batch ${i % 100} loss ${(1 / (i + 1)).toFixed(6)} lr 0.001 elapsed 12.5s`;

/** Click-to-paint times on one viewer while the writer runs: the page is opened on a fresh run being written. */
async function measure(browser, webDir, seconds) {
  const home = tempDir('liftoff-bench-logviewer-');
  const server = await startServerInProcess({
    host: '127.0.0.1',
    port: 0,
    dataDir: join(home, 'data'),
    env: { HOME: home },
    webDir,
  });
  try {
    const key = readCredentials(join(home, '.config', 'liftoff', 'credentials')).api_key;
    const client = new LiftoffClient({ baseUrl: server.url, apiKey: key });
    await registerProtocolAgent(client, 'lv-bench');
    const run = await heldRun(client, 'lv-bench');
    let stop = false;
    let written = 0;
    const writer = (async () => {
      let offset = 0;
      let next = performance.now();
      while (!stop) {
        const n = (LINES_PER_SECOND * TICK_MS) / 1000;
        const text = Array.from({ length: n }, (_, k) => `${line(written + k)}\n`).join('');
        offset = (await client.appendLogs(run, 'lv-bench', offset, text)).size;
        written += n;
        next += TICK_MS;
        await sleep(Math.max(0, next - performance.now()));
      }
    })();

    const context = await browser.newContext({ viewport: { width: 1360, height: 900 } });
    const page = await context.newPage();
    await page.goto(server.url);
    await page.getByLabel('API key').fill(key);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Queues', level: 1 }).waitFor();
    await page.goto(`${server.url}/runs/${run}`);
    await page.getByTestId('logs').waitFor();
    // A probe button of our own, the same on both viewers: the time from the click's input event to the frame after
    // its handler (what the user waits for), measured in the page.
    await page.evaluate(() => {
      const b = document.createElement('button');
      b.id = 'lag-probe';
      b.textContent = 'probe';
      b.style.cssText = 'position:fixed;right:8px;bottom:8px;z-index:9999';
      window.__lags = [];
      b.addEventListener('click', (e) => {
        const at = e.timeStamp;
        requestAnimationFrame(() => setTimeout(() => window.__lags.push(performance.now() - at), 0));
      });
      document.body.appendChild(b);
    });
    await sleep(5_000); // warm-up: the log is already growing fast
    const box = await page.locator('#lag-probe').boundingBox();
    const until = Date.now() + seconds * 1000;
    while (Date.now() < until) {
      await page.mouse.click(box.x + box.width / 2, box.y + box.height / 2);
      await sleep(CLICK_EVERY_MS);
    }
    await sleep(2_000);
    const lags = await page.evaluate(() => window.__lags);
    const shownRows = await page.locator('.log-row').count();
    await context.close();
    stop = true;
    await writer;
    return { lags, clicks: Math.floor((seconds * 1000) / CLICK_EVERY_MS), written, shownRows };
  } finally {
    await server.close();
  }
}

export default {
  name: 'logviewer',
  title: 'Log viewer: click response under a 5,000 lines/s live log',
  async run({ quick }) {
    if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing`);
    const load = loadavg()[0];
    const seconds = quick ? 5 : 20;
    const old = buildOldWeb();
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu'],
    });
    const rows = [];
    try {
      const cases = [['virtualised viewer (LogViewer.tsx)', join(ROOT, 'packages', 'web', 'dist')]];
      if (old) cases.push([`previous viewer (one \`pre\` element, ${old.commit})`, old.dist]);
      for (const [label, dir] of cases) {
        const r = await measure(browser, dir, seconds);
        const p = percentiles(r.lags);
        rows.push([
          label,
          `${r.lags.length} of ${r.clicks}`,
          fmtMs(p.p50),
          fmtMs(p.p95),
          fmtMs(p.max),
          r.written.toLocaleString('en-US'),
        ]);
      }
    } finally {
      await browser.close();
      old?.cleanup();
    }
    return {
      tables: [
        {
          title: 'Log viewer: click response under a 5,000 lines/s live log',
          how: `A writer appends ${LINES_PER_SECOND.toLocaleString('en-US')} lines/s (about 60 bytes each, every 50th with ANSI colour) to one run through the agent's log append call (\`POST /api/runs/{id}/logs\`, every ${TICK_MS} ms), on an in-process \`liftoff\` server serving each build of the web UI. Headless Chromium (${CHROMIUM}) opens the run page while the log grows, waits 5 s, then clicks a probe button every ${CLICK_EVERY_MS} ms for ${seconds} s; each sample is the time from the click's input event to the frame after its handler ran. "answered" counts clicks whose handler ran before the end.`,
          columns: ['viewer', 'answered', 'p50', 'p95', 'max', 'lines written'],
          rows,
          notes: [
            `Load average (1 min) when the run started: ${load.toFixed(1)} on ${cpus().length} cores; server, writer and browser shared the machine.`,
            'Reported, not asserted. The issue measured input lag up to 3.1 s on the previous viewer.',
          ],
        },
      ],
      charts: [],
    };
  },
};
