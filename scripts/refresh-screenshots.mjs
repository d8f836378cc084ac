#!/usr/bin/env node
// Refreshes the screenshots in docs/screenshots (shown by the README and docs/) from the browser tests.
//
// The UI suites write their screenshots to a temp dir unless LIFTOFF_SCREENSHOTS names one (test/ui/browser.ts),
// so a test run never rewrites committed images. This script runs each suite once, one at a time (they share
// Chromium and two cores), with LIFTOFF_SCREENSHOTS set to a fresh dir, and only when every suite passed copies
// into docs/screenshots the images the docs show: each one already there under its own name, plus the phone and
// dark variants of DOCS_VARIANTS, taken by test/ui/accessibility.test.ts at 1440x900 and 390x844.
//
// Usage: npm run screenshots            (builds first)
//        node scripts/refresh-screenshots.mjs [test/ui/x.test.ts ...]   (only those suites; the web must be built)
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const DOCS = join(ROOT, 'docs', 'screenshots');
const VITEST = join(ROOT, 'node_modules', 'vitest', 'vitest.mjs');

/** The suites that take the committed screenshots (logViewer's are of a 1M-line log: kept out of the docs). */
const SUITES = [
  'test/ui/ui.test.ts',
  'test/ui/runsTable.test.ts',
  'test/ui/outputs.test.ts',
  'test/ui/jobs.test.ts',
  'test/ui/runsPages.test.ts',
  'test/ui/accessibility.test.ts',
];

/** docs name ← the test's file name, for images whose docs name differs from what the test calls them. */
const DOCS_VARIANTS = {
  'runs-global.png': 'runs-global-light-1440x900.png',
  'queues-phone.png': 'queues-light-390x844.png',
  'queues-dark.png': 'queues-dark-1440x900.png',
  'queues-dark-phone.png': 'queues-dark-390x844.png',
  'run-phone.png': 'run-light-390x844.png',
  'run-dark.png': 'run-dark-1440x900.png',
  'runs-global-phone.png': 'runs-global-light-390x844.png',
  'queue-items-dark.png': 'queue-items-dark-1440x900.png',
};

const suites = process.argv.slice(2).length ? process.argv.slice(2) : SUITES;
if (!existsSync(join(ROOT, 'packages', 'web', 'dist', 'index.html'))) {
  console.error('packages/web/dist is missing: run "npm run build" first (npm run screenshots does).');
  process.exit(1);
}
const shots = mkdtempSync(join(tmpdir(), 'liftoff-screenshots-'));
const failed = [];
for (const suite of suites) {
  console.log(`\n== ${suite}`);
  const r = spawnSync(process.execPath, [VITEST, 'run', suite], {
    cwd: ROOT,
    stdio: 'inherit',
    // Services the suites need must be there: a suite that would skip fails instead of leaving old images.
    env: { ...process.env, LIFTOFF_SCREENSHOTS: shots, LIFTOFF_REQUIRE_SERVICES: '1' },
  });
  if (r.status !== 0) failed.push(suite);
}
if (failed.length) {
  console.error(`\nNot refreshed: these suites failed: ${failed.join(', ')}. Screenshots taken are in ${shots}.`);
  process.exit(1);
}

const taken = new Set(readdirSync(shots));
const wanted = new Map(
  readdirSync(DOCS)
    .filter((f) => f.endsWith('.png'))
    .map((f) => [f, f]),
);
for (const [docsName, testName] of Object.entries(DOCS_VARIANTS)) wanted.set(docsName, testName);
const copied = [];
const missing = [];
for (const [docsName, testName] of wanted) {
  if (taken.has(testName)) {
    copyFileSync(join(shots, testName), join(DOCS, docsName));
    copied.push(docsName);
  } else {
    missing.push(`${docsName} (from ${testName})`);
  }
}
rmSync(shots, { recursive: true, force: true });
console.log(`\nRefreshed ${copied.length} screenshots in ${relative(ROOT, DOCS)}.`);
// Partial runs (some suites named) leave the others' images as they were.
if (missing.length) console.log(`Not taken by the suites run: ${missing.join(', ')}`);
