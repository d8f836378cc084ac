import { existsSync, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { codeDir, gitRepo } from '../helpers/jobs.js';
import {
  agentConfig,
  alive,
  cleanupAll,
  jobWritableDir,
  sleep,
  startAgent,
  startServer,
  tempDir,
  type TestServer,
} from '../helpers/procs.js';
import { UiPage, browserUnavailable, launchBrowser } from './browser.js';

/**
 * Issue 5's acceptance, in Debian's Chromium against a real `liftoff server` (serving the built web UI) and real
 * `liftoff launch-agent` processes. Every test also fails on any console error or uncaught exception in the page.
 */
const skipReason = browserUnavailable();

/** "2026-11-29 07:31:05 UTC" in local time with the zone, as the UI shows dates (Chromium runs in this process's zone). */
function localTime(ms: number): string {
  const d = new Date(ms);
  const p = (n: number) => String(n).padStart(2, '0');
  const zone = new Intl.DateTimeFormat('en-US', { timeZoneName: 'short' })
    .formatToParts(d)
    .find((x) => x.type === 'timeZoneName')?.value;
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())} ${zone}`;
}

describe.skipIf(skipReason !== undefined)('web UI', () => {
  let server: TestServer;
  let browser: Browser;
  const pages: UiPage[] = [];

  const open = async (viewport?: { width: number; height: number }) => {
    const p = await UiPage.open(browser, server, viewport);
    pages.push(p);
    return p;
  };
  /** No console error or uncaught exception happened on the page. */
  const expectClean = (p: UiPage) => expect(p.errors).toEqual([]);

  beforeAll(async () => {
    server = await startServer();
    browser = await launchBrowser();
  });

  afterAll(async () => {
    for (const p of pages) await p.close().catch(() => undefined);
    await browser?.close();
    await cleanupAll();
  });

  it('1. signs in with a key, refuses a wrong key with a clear error, shows no data without a key, signs out', async () => {
    const ui = await open();
    ui.expectStatus(401);
    const { page } = ui;

    // Without a key: a deep link shows the sign-in form and no data; the API itself refuses.
    await ui.goto('/queues/default');
    await page.getByRole('heading', { name: 'Sign in' }).waitFor();
    expect(await page.locator('table').count()).toBe(0);
    expect(await page.locator('body').innerText()).not.toContain('local-process');
    expect(await page.evaluate(() => fetch('/api/entities/default/queues').then((r) => r.status))).toBe(401);
    await ui.screenshot('sign-in');

    // A wrong key: a clear error with the server's message, still no data.
    await page.getByLabel('API key').fill('lk_not-a-real-key');
    await page.getByRole('button', { name: 'Sign in' }).click();
    const alert = page.getByRole('alert');
    await alert.waitFor();
    expect(await alert.innerText()).toMatch(/That API key was not accepted: .*API key/);
    expect(await page.locator('table').count()).toBe(0);
    expect(await page.evaluate(() => sessionStorage.getItem('liftoff.apiKey'))).toBeNull();

    // The right key: the page that was asked for, then the queues.
    await page.getByLabel('API key').fill(server.apiKey);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'default', level: 1 }).waitFor();
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Queues' }).click();
    await page.getByRole('heading', { name: 'Queues', level: 1 }).waitFor();
    await page.locator('tr[data-queue="default"]').waitFor();
    expect(await page.evaluate(() => sessionStorage.getItem('liftoff.apiKey'))).toBe(server.apiKey);

    // The key lives in the tab's session: a reload stays signed in.
    await page.reload();
    await page.locator('tr[data-queue="default"]').waitFor();

    // Sign out: back to the form, the key forgotten, and a reload does not bring the data back.
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByRole('heading', { name: 'Sign in' }).waitFor();
    expect(await page.evaluate(() => sessionStorage.getItem('liftoff.apiKey'))).toBeNull();
    await page.reload();
    await page.getByRole('heading', { name: 'Sign in' }).waitFor();
    expect(await page.locator('table').count()).toBe(0);
    expectClean(ui);
  });

  it('6. shows a malformed resource config and the server’s validation messages inline in the create-queue form', async () => {
    const ui = await open();
    ui.expectStatus(400);
    const { page } = ui;
    await ui.signIn();
    await page.getByRole('button', { name: 'New queue' }).click();
    const name = page.getByLabel('Name', { exact: true });
    const config = page.getByLabel('Default resource config (YAML or JSON)');
    const configError = page.locator('.field:has(textarea[name="resource_args"]) .field-error');
    const nameError = page.locator('.field:has(input[name="name"]) .field-error');
    const create = page.getByRole('button', { name: 'Create queue' });

    // Text that is neither YAML nor JSON is caught before it is sent.
    await name.fill('ui-bad');
    await config.fill('{"local-process": {');
    await create.click();
    expect(await configError.innerText()).toMatch(/not valid YAML or JSON/);

    // Well-formed, but the server refuses a section for another resource: its message, next to the field.
    await config.fill('kubernetes:\n  namespace: ml\n');
    await create.click();
    await configError.filter({ hasText: 'holds only its "local-process" section' }).waitFor();
    expect(await configError.innerText()).toContain('Resource config, kubernetes:');
    expect(await configError.innerText()).toContain('remove the "kubernetes" section');
    expect(await config.getAttribute('aria-invalid')).toBe('true');
    await ui.screenshot('create-queue-error');

    // A schema error of the server (zod) lands on the field it names.
    await name.fill('bad name!');
    await config.fill('local-process: {}');
    await create.click();
    await nameError.filter({ hasText: 'use letters, digits' }).waitFor();
    expect(await configError.count()).toBe(0);

    const queues = (await server.client.listQueues('default')).queues.map((q) => q.name);
    expect(queues).not.toContain('ui-bad');
    expect(queues).not.toContain('bad name!');
    expectClean(ui);
  });

  it('shows validation errors of the launch dialog next to their fields, the server’s among them', async () => {
    await server.client.createQueue('default', { name: 'ui-images', resource: 'local-container', resource_args: {} });
    const ui = await open();
    ui.expectStatus(400);
    const { page } = ui;
    await ui.signIn();
    const errorOf = (input: string) => page.locator(`.field:has([name="${input}"]) .field-error`);

    // A local-process queue offers no image source.
    await ui.goto('/queues/default');
    await page.getByRole('button', { name: 'Launch job' }).click();
    let dialog = page.getByRole('dialog');
    expect(await dialog.getByLabel('Container image').count()).toBe(0);
    // Shell syntax is refused before sending; a git URL the server refuses comes back next to its field.
    await dialog.getByLabel('Git URL').fill('ext::sh -c touch% /tmp/pwned');
    await dialog.getByLabel('Entry point').fill('python3 train.py | tee log');
    await dialog.getByRole('button', { name: 'Launch' }).click();
    expect(await errorOf('entry-point').innerText()).toMatch(/contains shell syntax \("\|"\)/);
    await dialog.getByLabel('Entry point').fill('python3 train.py');
    await dialog.getByRole('button', { name: 'Launch' }).click();
    await errorOf('git-url').filter({ hasText: 'Refused git URL' }).waitFor();
    expect(await errorOf('entry-point').count()).toBe(0);
    await dialog.getByRole('button', { name: 'Cancel' }).click();

    // An image the server refuses, on a container queue.
    await ui.goto('/queues/ui-images');
    await page.getByRole('button', { name: 'Launch job' }).click();
    dialog = page.getByRole('dialog');
    await dialog.getByLabel('Container image').check();
    await dialog.getByLabel('Image', { exact: true }).fill('Not A/Valid:Image');
    await dialog.getByRole('button', { name: 'Launch' }).click();
    await errorOf('image').filter({ hasText: 'Refused image' }).waitFor();
    expect((await server.client.listItems('default', 'ui-images')).items).toEqual([]);
    expectClean(ui);
  });

  it('2. creates a queue, launches a job from the dialog, follows it to finished with live logs', async () => {
    const ui = await open();
    const { page } = ui;
    const repo = gitRepo({
      'main.mjs': `
console.log('first line from the job', process.argv.slice(2).join(' '));
await new Promise((r) => setTimeout(r, 3000));
console.log('second line, config', process.env.LIFTOFF_RUN_CONFIG);
`,
    });
    await ui.signIn();

    // Create the queue in the UI.
    await page.getByRole('button', { name: 'New queue' }).click();
    await page.getByLabel('Name', { exact: true }).fill('ui-jobs');
    await page.getByLabel('Default resource config (YAML or JSON)').fill('local-process: {}\n');
    await page.getByRole('button', { name: 'Create queue' }).click();
    await page.getByRole('status').filter({ hasText: 'Queue “ui-jobs” created.' }).waitFor();
    const row = page.locator('tr[data-queue="ui-jobs"]');
    await row.waitFor();
    expect((await server.client.getQueue('default', 'ui-jobs')).resource).toBe('local-process');

    // An agent for it: the queues page picks it up without a reload.
    // The job is a file:// repository, which agents refuse unless their config allows it.
    await startAgent(server, {
      queues: ['ui-jobs'],
      name: 'ui-jobs-agent',
      config: agentConfig(tempDir(), 'git:\n  allow-file: true\n'),
    });
    await row.locator('[data-col="agents"]').filter({ hasText: '1 agent' }).waitFor();
    await row.locator('[data-col="last-agent"]').filter({ hasText: 'now' }).waitFor();
    await ui.screenshot('queues');

    // Launch from the dialog.
    await row.getByRole('link', { name: 'ui-jobs' }).click();
    await page.getByRole('heading', { name: 'ui-jobs', level: 1 }).waitFor();
    await page.getByRole('button', { name: 'Launch job' }).click();
    const dialog = page.getByRole('dialog', { name: 'Launch a job on “ui-jobs”' });
    await dialog.waitFor();
    await dialog.getByLabel('Git URL').fill(repo.url);
    await dialog.getByLabel('Ref (optional)').fill('main');
    await dialog.getByLabel('Entry point').fill('node main.mjs');
    await dialog.getByLabel('Arguments (optional)').fill('--greeting "hello world"');
    await dialog.getByLabel('Run config (YAML or JSON, optional)').fill('lr: 0.01\nepochs: 3\n');
    await dialog.getByLabel('Run name (optional)').fill('ui-demo');
    await dialog.getByLabel('Environment (optional)').fill('API_TOKEN=supersecret\nPLAIN=visible');
    await ui.screenshot('launch-dialog');
    await dialog.getByRole('button', { name: 'Launch' }).click();

    // The item page hands over to the run page once an agent has claimed it.
    await page.waitForURL(/\/runs\/[^/]+$/, { timeout: 20_000 });
    const runId = page.url().split('/').pop() as string;
    const status = page.getByTestId('run-status').locator('[data-state]');
    const logs = page.getByTestId('logs');

    // The first line shows up in the live view while the job is still running (it sleeps 3 s before the second).
    await logs.filter({ hasText: 'first line from the job --greeting hello world' }).waitFor({ timeout: 20_000 });
    // The status comes from a poll, the log from the stream: the badge may follow the first line by a poll interval.
    await page.locator('[data-testid="run-status"] [data-state="running"]').waitFor({ timeout: 2_500 });
    const during = await page.evaluate(() => ({
      state: document.querySelector('[data-testid="run-status"] [data-state]')?.getAttribute('data-state'),
      logs: document.querySelector('[data-testid="logs"]')?.textContent ?? '',
    }));
    expect(during.state).toBe('running');
    expect(during.logs).not.toContain('second line');
    expect((await server.client.getRun(runId)).status).toBe('running');
    expect(await page.locator('[data-phase="live"]').count()).toBe(1);

    // …then finished, with the rest of the output.
    await page.locator('[data-testid="run-status"] [data-state="finished"]').waitFor({ timeout: 20_000 });
    await logs.filter({ hasText: 'second line, config {"lr":0.01,"epochs":3}' }).waitFor();
    expect(await page.getByTestId('exit-code').innerText()).toBe('0');
    expect(await status.innerText()).toBe('Finished');
    await page.locator('[data-phase="ended"]').waitFor();

    // The spec, with the secret-looking env value redacted.
    const env = await page.locator('[data-field="env"]').innerText();
    expect(env).toContain('PLAIN=visible');
    expect(env).toMatch(/API_TOKEN=•+/);
    expect(await page.locator('body').innerText()).not.toContain('supersecret');
    expect(await page.locator('[data-field="entry-point"]').innerText()).toBe('node main.mjs');
    await ui.screenshot('run');

    // A reload reads the whole log again from the stream.
    await page.reload();
    await logs.filter({ hasText: 'second line' }).waitFor();
    expect(await logs.innerText()).toContain('first line from the job');

    // The Runs tab lists it.
    await page.getByRole('link', { name: 'ui-jobs' }).first().click();
    await page.getByRole('tab', { name: 'Runs' }).click();
    const runRow = page.locator(`tr[data-run="${runId}"]`);
    await runRow.waitFor();
    expect(await runRow.innerText()).toMatch(/Finished/);
    await ui.screenshot('queue-runs');
    expectClean(ui);
  });

  it('re-runs a run from its page: the launch form opens filled with its push, one value changed, launched again', async () => {
    await server.client.createQueue('default', {
      name: 'ui-rerun',
      resource: 'local-process',
      resource_args: { 'local-process': { tier: '{{tier}}' } },
      template_variables: { tier: { schema: { type: 'string', enum: ['small', 'large'] } } },
    });
    await server.client.setSecret('default', 'HF_SECRET', 'tok-123');
    const first = await server.client.push('default', 'ui-rerun', {
      spec: {
        source: { type: 'git', url: 'https://example.com/r.git', ref: 'v2' },
        entry_point: ['python3', 'train.py'],
        args: ['--epochs', '3'],
        run_config: { lr: 0.1, layers: [64, 32] },
        env: { PLAIN: 'visible', NOTE: 'two\nlines' },
        secret_env: { HF_TOKEN: 'HF_SECRET' },
        resource_args: { 'local-process': { extra: 'mine' } },
        name: 'base',
      },
      template_variables: { tier: 'large' },
    });
    // A run of it, started through the agent protocol: nothing needs to execute for a re-run.
    await server.client.registerAgent({
      id: 'ui-rerun-agent',
      name: 'ui-rerun-agent',
      entity: 'default',
      hostname: 'h',
      queues: ['ui-rerun'],
      version: 't',
      max_jobs: 1,
    });
    await server.client.poll('ui-rerun-agent', { queues: ['ui-rerun'], max_items: 1, wait_ms: 0 });
    const run = await server.client.ackItem(first.id, 'ui-rerun-agent');

    const ui = await open();
    const { page } = ui;
    await ui.signIn();
    await ui.goto(`/runs/${run.id}`);
    await page.getByRole('button', { name: 'Re-run…' }).click();
    const dialog = page.getByRole('dialog', { name: `Re-run run ${run.id} on “ui-rerun”` });
    await dialog.waitFor();
    expect(await dialog.getByLabel('Git URL').inputValue()).toBe('https://example.com/r.git');
    expect(await dialog.getByLabel('Ref (optional)').inputValue()).toBe('v2');
    expect(await dialog.getByLabel('Entry point').inputValue()).toBe('python3 train.py');
    expect(await dialog.getByLabel('Arguments (optional)').inputValue()).toBe('--epochs 3');
    expect(await dialog.getByLabel('Run name (optional)').inputValue()).toBe('base');
    expect(await dialog.getByLabel('tier (string)').inputValue()).toBe('large');
    const config = dialog.getByLabel('Run config (YAML or JSON, optional)');
    expect(JSON.parse(await config.inputValue())).toEqual({ lr: 0.1, layers: [64, 32] });
    await ui.screenshot('rerun-dialog');
    await config.fill('lr: 0.01\nlayers: [64, 32]\n');
    await dialog.getByRole('button', { name: 'Launch' }).click();
    await page.waitForURL(/\/items\/[^/]+$/, { timeout: 20_000 });
    const again = await server.client.getItem(page.url().split('/').pop() as string);
    expect(again.queue).toBe('ui-rerun');
    expect(again.pushed?.spec).toMatchObject({
      source: { type: 'git', url: 'https://example.com/r.git', ref: 'v2' },
      entry_point: ['python3', 'train.py'],
      args: ['--epochs', '3'],
      run_config: { lr: 0.01, layers: [64, 32] },
      // Untouched fields go back as they were, even what the form cannot show (a value with a newline)…
      env: { PLAIN: 'visible', NOTE: 'two\nlines' },
      name: 'base',
      // …and what it has no input for.
      secret_env: { HF_TOKEN: 'HF_SECRET' },
      resource_args: { 'local-process': { extra: 'mine' } },
    });
    expect(again.pushed?.template_variables).toEqual({ tier: 'large' });
    expect(again.spec.resource_args).toEqual({ 'local-process': { tier: 'large', extra: 'mine' } });
    expectClean(ui);
  });

  it('launches a directory uploaded from the browser (packed as .tar.gz in the page)', async () => {
    const ui = await open();
    const { page } = ui;
    const dir = codeDir({
      'main.mjs':
        "import { readFileSync } from 'node:fs';\nconsole.log('uploaded:', readFileSync('data/input.txt', 'utf8'));\n",
      'data/input.txt': 'forty-two',
      'node_modules/skipped/index.js': 'throw new Error("must not be uploaded")',
    });
    await server.client.createQueue('default', { name: 'ui-upload', resource: 'local-process', resource_args: {} });
    await startAgent(server, { queues: ['ui-upload'], name: 'ui-upload-agent' });
    await ui.signIn();
    await ui.goto('/queues/ui-upload');
    await page.getByRole('button', { name: 'Launch job' }).click();
    const dialog = page.getByRole('dialog');
    await dialog.getByLabel('Upload a directory').check();
    await dialog.getByLabel('Code directory').setInputFiles(dir);
    await dialog.getByText('2 files chosen').waitFor();
    await dialog.getByLabel('Entry point').fill('node main.mjs');
    await dialog.getByRole('button', { name: 'Launch' }).click();
    await page.waitForURL(/\/runs\/[^/]+$/, { timeout: 20_000 });
    await page.locator('[data-testid="run-status"] [data-state="finished"]').waitFor({ timeout: 20_000 });
    await page.getByTestId('logs').filter({ hasText: 'uploaded: forty-two' }).waitFor();
    expect(await page.locator('[data-field="source"]').innerText()).toMatch(/^code archive /);
    expectClean(ui);
  });

  it('3. the Agents tab lists the real agent (ID, Polling, start date, host) and shows Killed once it is stopped', async () => {
    await server.client.createQueue('default', { name: 'ui-agents', resource: 'local-process', resource_args: {} });
    const agent = await startAgent(server, { queues: ['ui-agents'], name: 'ui-agent-one', maxJobs: 2 });
    const registered = (await server.client.listAgents('default')).agents.find((a) => a.name === 'ui-agent-one');
    if (!registered) throw new Error('agent not registered');

    const ui = await open();
    const { page } = ui;
    await ui.signIn();
    await ui.goto('/queues/ui-agents/agents');
    const row = page.locator(`tr[data-agent="${registered.id}"]`);
    await row.waitFor();
    expect(await row.locator('[data-col="id"]').innerText()).toBe(registered.id);
    expect(await row.locator('[data-col="status"]').innerText()).toContain('Polling');
    expect(await row.locator('[data-col="started"]').innerText()).toBe(localTime(registered.started_at));
    expect(await row.locator('[data-col="host"]').innerText()).toBe(hostname());
    expect(await row.innerText()).toContain('ui-agent-one');
    expect(
      (await page.getByRole('table', { name: 'Agents' }).getByRole('columnheader').allTextContents()).slice(0, 8),
    ).toEqual(['Agent ID', 'Status', 'Start date', 'Host', 'Last heartbeat', 'Version', 'Max jobs', 'Current jobs']);
    await ui.screenshot('queue-agents');

    // SIGTERM: the agent reports KILLED; the tab follows without a reload.
    expect((await agent.stop()).code).toBe(0);
    await row.locator('[data-col="status"] [data-status="KILLED"]').waitFor({ timeout: 10_000 });
    expect(await row.locator('[data-col="status"]').innerText()).toMatch(/Killed\s+stopped/);
    await page.getByText('No agent is polling this queue now').waitFor();
    expect(await page.locator('.empty .command code').innerText()).toBe('liftoff launch-agent -q ui-agents');
    expect(await page.getByRole('status').filter({ hasText: 'No agent is polling “ui-agents”' }).count()).toBe(1);
    expectClean(ui);
  });

  it('stops an agent from the Agents tab where the server supports remote stop', async (ctx) => {
    await server.client.createQueue('default', { name: 'ui-stop', resource: 'local-process', resource_args: {} });
    const agent = await startAgent(server, { queues: ['ui-stop'], name: 'ui-stop-agent' });
    const res = await fetch(`${server.url}/api/entities/default/agents`, {
      headers: { authorization: `Bearer ${server.apiKey}` },
    });
    const listed = ((await res.json()) as { agents: Array<Record<string, unknown>> }).agents;
    const registered = listed.find((a) => a.name === 'ui-stop-agent');
    if (!registered || !('stop_requested' in registered)) {
      console.warn('!!! this server has no remote agent stop (no stop_requested on agents); the Stop button is hidden');
      ctx.skip();
      return;
    }
    const ui = await open();
    const { page } = ui;
    await ui.signIn();
    await ui.goto('/queues/ui-stop/agents');
    const row = page.locator(`tr[data-agent="${String(registered.id)}"]`);
    await row.locator('[data-status="POLLING"]').waitFor();
    await row.getByRole('button', { name: `Stop agent ${String(registered.id)}` }).click();
    await row.getByRole('button', { name: 'Now' }).click();
    await row.locator('[data-col="status"] [data-status="KILLED"]').waitFor({ timeout: 15_000 });
    expect((await agent.proc.exited).code).toBe(0);
    expectClean(ui);
  });

  it('4. a pending item on a queue with no agent shows its position and the no-agent reason', async () => {
    await server.client.createQueue('default', {
      name: 'ui-idle',
      resource: 'local-process',
      resource_args: { 'local-process': {} },
    });
    const spec = { source: { type: 'git' as const, url: 'https://example.com/org/train.git' }, entry_point: ['true'] };
    const older = await server.client.push('default', 'ui-idle', { spec: { ...spec, name: 'baseline' } });
    const newer = await server.client.push('default', 'ui-idle', { spec: { ...spec, name: 'sweep' } });
    const items = (await server.client.listItems('default', 'ui-idle')).items;
    const api = new Map(items.map((i) => [i.id, i]));
    expect(api.get(older.id)?.position).toBe(1);
    expect(api.get(newer.id)?.position).toBe(2);
    expect(api.get(newer.id)?.pending_reason?.code).toBe('no_agent');

    const ui = await open();
    const { page } = ui;
    await ui.signIn();
    await ui.goto('/queues/ui-idle');
    for (const [id, position] of [
      [older.id, '1'],
      [newer.id, '2'],
    ] as const) {
      const row = page.locator(`tr[data-item="${id}"]`);
      await row.waitFor();
      expect(await row.locator('[data-col="position"]').innerText()).toBe(position);
      const reason = row.locator('[data-reason="no_agent"]');
      expect(await reason.innerText()).toBe(api.get(id)?.pending_reason?.message);
      expect(await row.innerText()).toContain('Pending');
    }
    await ui.screenshot('queue-items');

    // Filters by state go to the server.
    await page.getByLabel('State').selectOption('running');
    await page.getByText('No running items').waitFor();
    await page.getByLabel('State').selectOption('pending');
    await page.locator(`tr[data-item="${newer.id}"]`).waitFor();
    expect(await page.locator('table[aria-label="Items"] tbody tr').count()).toBe(2);

    // The item's own page says the same, with the command that would unblock it.
    await page.locator(`tr[data-item="${newer.id}"]`).getByRole('link').first().click();
    await page.getByTestId('position').filter({ hasText: '2' }).waitFor();
    expect(await page.locator('[data-reason="no_agent"]').innerText()).toBe(api.get(newer.id)?.pending_reason?.message);
    expect(await page.locator('.command code').innerText()).toBe('liftoff launch-agent -q ui-idle');

    // Cancel from the Items tab: the item ends stopped and leaves the queue.
    await ui.goto('/queues/ui-idle/items');
    await page.getByRole('button', { name: `Cancel item ${older.id}` }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Cancel item' }).click();
    await page.locator(`tr[data-item="${older.id}"] [data-state="stopped"]`).waitFor();
    await page.locator(`tr[data-item="${newer.id}"] [data-col="position"]`).filter({ hasText: '1' }).waitFor();
    expect((await server.client.getItem(older.id)).state).toBe('stopped');

    await page.getByRole('tab', { name: 'Config' }).click();
    await page.getByText('Default resource args').waitFor();
    expect(await page.locator('.code-block').innerText()).toContain('"local-process"');
    await ui.screenshot('queue-config');
    expectClean(ui);
  });

  it('5. cancels a running job from the run page: the process stops and the page shows stopped', async () => {
    await server.client.createQueue('default', { name: 'ui-cancel', resource: 'local-process', resource_args: {} });
    const work = jobWritableDir();
    const pidFile = join(work, 'pid');
    const repo = gitRepo({
      'main.mjs': `
import { writeFileSync } from 'node:fs';
writeFileSync(${JSON.stringify(pidFile)}, String(process.pid));
console.log('working…');
setInterval(() => console.log('still working'), 500);
`,
    });
    await startAgent(server, {
      queues: ['ui-cancel'],
      name: 'ui-cancel-agent',
      config: agentConfig(work, 'stopped_run_timeout: 2\ngit:\n  allow-file: true\n'),
    });
    const item = await server.client.push('default', 'ui-cancel', {
      spec: { source: { type: 'git', url: repo.url }, entry_point: ['node', 'main.mjs'] },
    });

    const ui = await open();
    const { page } = ui;
    await ui.signIn();
    await ui.goto(`/items/${item.id}`);
    await page.waitForURL(/\/runs\//, { timeout: 20_000 });
    await page.locator('[data-testid="run-status"] [data-state="running"]').waitFor({ timeout: 20_000 });
    await page.getByTestId('logs').filter({ hasText: 'still working' }).waitFor();
    for (let i = 0; i < 100 && !existsSync(pidFile); i++) await sleep(50);
    const pid = Number(readFileSync(pidFile, 'utf8'));
    expect(alive(pid)).toBe(true);

    await page.getByRole('button', { name: 'Cancel run' }).click();
    // It asks first: Keep leaves the run alone, the dialog's own Cancel run stops it.
    const dialog = page.getByRole('dialog');
    await dialog.getByRole('button', { name: 'Keep running' }).click();
    expect(await page.getByRole('dialog').count()).toBe(0);
    expect(alive(pid)).toBe(true);
    await page.getByRole('button', { name: 'Cancel run' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Cancel run' }).click();
    await page.locator('[data-testid="run-status"] [data-state="stopped"]').waitFor({ timeout: 15_000 });
    expect(alive(pid)).toBe(false);
    expect(await page.getByRole('button', { name: 'Cancel run' }).count()).toBe(0);
    await page.locator('[data-phase="ended"]').waitFor();
    expect((await server.client.getItem(item.id)).state).toBe('stopped');
    expectClean(ui);
  });

  it('charts the metrics a job prints, live and then exactly the series the API serves', async () => {
    const c = server.client;
    await c.createQueue('default', { name: 'ui-metrics', resource: 'local-process', resource_args: {} });
    const repo = gitRepo({
      'train.mjs': `
let step = 0;
const timer = setInterval(() => {
  console.log('epoch ' + step);
  console.log('LIFTOFF_METRICS ' + JSON.stringify({ step, loss: 1 / (step + 1), accuracy: step / 40 }));
  if (++step === 40) clearInterval(timer);
}, 100);
`,
    });
    await startAgent(server, {
      queues: ['ui-metrics'],
      name: 'ui-metrics-agent',
      config: agentConfig(tempDir(), 'git:\n  allow-file: true\n'),
    });
    const item = await c.push('default', 'ui-metrics', {
      spec: { source: { type: 'git', url: repo.url }, entry_point: ['node', 'train.mjs'] },
    });
    const ui = await open();
    const { page } = ui;
    await ui.signIn();
    await ui.goto(`/items/${item.id}`);
    await page.waitForURL(/\/runs\//, { timeout: 20_000 });
    // Live: the loss chart appears while the job still runs.
    await page.locator('figure[data-metric="loss"]').waitFor({ timeout: 20_000 });
    await page.locator('[data-phase="ended"]').waitFor({ timeout: 30_000 });
    await page.getByRole('table', { name: 'Final metrics' }).waitFor();
    // The run's own state follows the end of the stream at once (not at the next poll).
    await page.locator('[data-testid="run-status"] [data-state="finished"]').waitFor({ timeout: 3_000 });
    const runId = (await c.getItem(item.id)).run_id as string;
    const api = await c.runMetrics(runId);
    for (const key of ['accuracy', 'loss']) {
      const series = api.points.filter((p) => p.key === key);
      expect(series).toHaveLength(40);
      const chart = page.locator(`figure[data-metric="${key}"]`);
      expect(await chart.getAttribute('data-points')).toBe(String(series.length));
      expect(Number(await chart.getAttribute('data-last'))).toBe(series.at(-1)?.value);
      // uPlot drew it: a canvas inside the chart.
      expect(await chart.locator('canvas').count()).toBe(1);
    }
    const lossRow = page.locator('table[aria-label="Final metrics"] tr[data-key="loss"]');
    expect(await lossRow.innerText()).toMatch(/loss\s+0\.025\s+39\s+0\.025\s+1\s+40/);
    await ui.screenshot('run-metrics');
    expectClean(ui);
  });

  it('shows a run warning while it is set, and what became of a preempted run and its item', async () => {
    const c = server.client;
    await c.createQueue('default', { name: 'ui-warn', resource: 'local-process', preemption_backoff_seconds: 600 });
    // The run's states come from an agent speaking the protocol through the API, as a Kubernetes runner would.
    const agent = 'ui-warn-agent';
    await c.registerAgent({
      id: agent,
      name: agent,
      entity: 'default',
      hostname: 'h',
      queues: ['ui-warn'],
      version: 't',
      max_jobs: 1,
    });
    const item = await c.push('default', 'ui-warn', {
      spec: { source: { type: 'git', url: 'https://example.com/org/train.git' }, entry_point: ['python3', 'train.py'] },
    });
    await c.poll(agent, { queues: ['ui-warn'], max_items: 1, wait_ms: 0 });
    const run = await c.ackItem(item.id, agent);
    const warning = 'pod liftoff-abc: Unschedulable: 0/3 nodes are available: 3 Insufficient nvidia.com/gpu.';
    await c.reportRun(run.id, { agent_id: agent, state: 'starting', warning });

    const ui = await open();
    const { page } = ui;
    await ui.signIn();
    await ui.goto('/queues/ui-warn/runs');
    await page.locator(`tr[data-run="${run.id}"] [data-warning]`).waitFor();
    await ui.goto(`/runs/${run.id}`);
    const banner = page.getByTestId('run-warning');
    await banner.waitFor();
    expect(await banner.innerText()).toMatch(/^Warning\s+pod liftoff-abc: Unschedulable: 0\/3 nodes are available/);
    expect(await banner.innerText()).toContain(warning);
    await page.locator('[data-testid="run-status"] [data-state="starting"]').waitFor();

    // The agent clears it: the page drops the banner on its next refresh.
    await c.reportRun(run.id, { agent_id: agent, state: 'running', warning: null });
    await banner.waitFor({ state: 'detached' });

    // Preempted: its own badge, why, and where the item went.
    await c.reportRun(run.id, {
      agent_id: agent,
      state: 'preempted',
      error_message: 'pod evicted: spot node reclaimed',
    });
    await page.locator('[data-testid="run-status"] [data-state="preempted"]').waitFor();
    const preempted = page.getByTestId('run-preempted');
    await preempted.filter({ hasText: 'requeued for attempt 2' }).waitFor();
    expect(await preempted.innerText()).toContain('pod evicted: spot node reclaimed');
    expect(await page.getByTestId('run-error').count()).toBe(0);

    // The item page: pending again, with its preemptions and when it may start.
    await preempted.getByRole('link', { name: 'follow it' }).click();
    await page.getByTestId('preemptions').filter({ hasText: 'Preempted 1 time' }).waitFor();
    await page.getByTestId('eligible-at').waitFor();
    expect(await page.locator('[data-reason="backoff"]').innerText()).toMatch(
      /^Requeued after preemption 1 of 3; eligible at /,
    );
    expect(page.url()).toContain(`/items/${item.id}`);

    await ui.goto('/queues/ui-warn/config');
    expect(await page.locator('[data-field="preemption"]').innerText()).toBe(
      'requeued up to 3 times, after 600 s, doubling per retry',
    );
    expect(await page.locator('[data-field="start-timeout"]').innerText()).toBe('none');
    expect(await page.locator('[data-field="lost-retries"]').innerText()).toBe(
      'a lost run (its agent went silent) ends its item lost',
    );
    expectClean(ui);
  });

  it('is usable in a narrow window and from the keyboard', async () => {
    const ui = await open({ width: 390, height: 844 });
    const { page } = ui;
    await ui.signIn();
    // Nothing wider than the window: tables are cards there (accessibility.test.ts checks every page).
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    expect(overflow).toBeLessThanOrEqual(0);
    await ui.screenshot('queues-narrow');

    // Keyboard: tab to a queue link, open it, arrow between tabs, open and close the launch dialog.
    await ui.goto('/queues/default');
    await page.getByRole('tab', { name: 'Items' }).focus();
    await page.keyboard.press('ArrowRight');
    await page.waitForURL(/\/queues\/default\/runs$/);
    expect(await page.evaluate(() => document.activeElement?.textContent)).toBe('Runs');
    await page.getByRole('button', { name: 'Launch job' }).focus();
    await page.keyboard.press('Enter');
    const dialog = page.getByRole('dialog');
    await dialog.waitFor();
    expect(await page.evaluate(() => document.activeElement?.getAttribute('name'))).toBe('git-url');
    await page.keyboard.press('Escape');
    await dialog.waitFor({ state: 'detached' });
    expectClean(ui);
  });
});
