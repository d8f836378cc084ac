import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupDockerAfter, dockerAvailable, PYTHON } from '../helpers/docker.js';
import {
  ROOT,
  agentConfig,
  cleanupAll,
  cli,
  startAgent,
  startServer,
  tempDir,
  until,
  type TestServer,
} from '../helpers/procs.js';
import { UiPage, browserUnavailable, launchBrowser } from '../ui/browser.js';

/** Debian's python3 with python3-numpy (scripts/services/base.sh); the container image has the same packages. */
const HOST_PYTHON = '/usr/bin/python3';

/** The README's example, launched as it is. */
const EXAMPLE = join(ROOT, 'examples', 'train-numpy');

/** Loads a downloaded model with numpy and scores it on the same data, as a user would after training. */
const SCORE = `
import json, sys
import numpy as np
rng = np.random.default_rng(7)
x = rng.normal(size=(400, 2))
y = (x @ np.array([2.0, -1.0]) + 0.3 > 0).astype(float)
x = np.hstack([x, np.ones((400, 1))])
w = np.load(sys.argv[1])
print(json.dumps({"accuracy": float(np.mean(((x @ w) > 0) == (y > 0.5))), "shape": list(w.shape)}))
`;

const skipUi = browserUnavailable();

/**
 * Issue 17's acceptance: the "train a model" walkthrough of the README end to end, on a local-process and a
 * local-container queue: launch with hyperparameters, the metrics through the API and `liftoff runs metrics`, the
 * model fetched with `liftoff runs outputs --download` and loaded with numpy, and the run page's charts plotting the
 * series the API serves (point count and last value) in Chromium.
 */
describe.skipIf(!dockerAvailable() || skipUi !== undefined)('training a model from launch to downloaded model', () => {
  let server: TestServer;
  let browser: Browser;
  const agents: string[] = [];

  beforeAll(async () => {
    server = await startServer();
    await server.client.createQueue('default', {
      name: 'train-box',
      resource: 'local-container',
      resource_args: { 'local-container': { builder: { base_image: PYTHON } } },
    });
    await server.client.createQueue('default', { name: 'train-proc', resource: 'local-process' });
    for (const queue of ['train-box', 'train-proc']) {
      const agent = await startAgent(server, {
        queues: [queue],
        name: `${queue}-agent`,
        config: agentConfig(tempDir(), ''),
      });
      agents.push(agent.name);
    }
    cleanupDockerAfter(() => agents);
    browser = await launchBrowser();
  }, 120_000);
  afterAll(async () => {
    await browser?.close();
    await cleanupAll();
  });

  const train = async (queue: string, extra: string[]) => {
    const r = await cli(
      ['launch', '-q', queue, '--code', EXAMPLE, ...extra, '--set', 'lr=0.8', '--set', 'epochs=25', '--wait'],
      server.env,
    );
    expect(r.code, r.output).toBe(0);
    const runId = /run (\S+) of item/.exec(r.output)?.[1] ?? '';
    expect(r.output).toMatch(/saved model with accuracy 0\.\d+/);
    return { runId, output: r.output };
  };

  const check = async (runId: string) => {
    // The series through the API: 25 epochs of each key, and the CLI's table agrees.
    const api = await server.client.runMetrics(runId);
    const accuracy = api.points.filter((p) => p.key === 'accuracy');
    const loss = api.points.filter((p) => p.key === 'loss');
    expect([accuracy.length, loss.length]).toEqual([25, 25]);
    expect(loss.at(-1)!.value).toBeLessThan(loss[0]!.value);
    const table = await cli(['runs', 'metrics', runId], server.env);
    expect(table.code, table.output).toBe(0);
    expect(table.output).toMatch(new RegExp(`accuracy\\s+${accuracy.at(-1)!.value}\\b`));
    // The model, downloaded and loaded with numpy, scores what the job reported.
    const dir = tempDir('liftoff-model-');
    const got = await cli(['runs', 'outputs', runId, '--download', dir], server.env);
    expect(got.code, got.output).toBe(0);
    const scored = JSON.parse(execFileSync(HOST_PYTHON, ['-c', SCORE, join(dir, 'model.npy')], { encoding: 'utf8' }));
    expect(scored).toEqual({ accuracy: accuracy.at(-1)!.value, shape: [3] });
    // The run page charts exactly these series.
    const ui = await UiPage.open(browser, server);
    try {
      await ui.signIn();
      await ui.goto(`/runs/${runId}`);
      for (const [key, series] of [
        ['accuracy', accuracy],
        ['loss', loss],
      ] as const) {
        const chart = ui.page.locator(`figure[data-metric="${key}"]`);
        await chart.waitFor({ timeout: 20_000 });
        expect(await chart.getAttribute('data-points')).toBe(String(series.length));
        expect(Number(await chart.getAttribute('data-last'))).toBe(series.at(-1)?.value);
      }
      await ui.page.getByText('model.npy').waitFor();
    } finally {
      await ui.close();
    }
  };

  it('in a container built from the Debian numpy image', async () => {
    const { runId } = await train('train-box', ['-E', 'python3 train.py']);
    await check(runId);
  }, 300_000);

  it('as a local process with the host’s Debian numpy', async () => {
    const { runId } = await train('train-proc', ['-E', `${HOST_PYTHON} train.py`]);
    await check(runId);
    // The README's next steps: a re-run with another learning rate, then both runs side by side, lowest final loss
    // first (their final accuracies tie, so the loss orders them).
    const again = await cli(['runs', 'rerun', runId, '--set', 'lr=0.05', '--json'], server.env);
    expect(again.code, again.output).toBe(0);
    const itemId = (JSON.parse(again.output) as { id: string }).id;
    await until(async () => ((await server.client.getItem(itemId)).state === 'finished' ? true : undefined), 60_000);
    const list = await cli(
      ['runs', 'list', '-q', 'train-proc', '--columns', 'config.lr,metric.loss', '--sort', 'metric.loss', '--json'],
      server.env,
    );
    const rows = JSON.parse(list.output) as Array<{ id: string; columns: Record<string, unknown> }>;
    expect(rows.map((r) => r.columns['config.lr'])).toEqual([0.8, 0.05]);
    expect(rows[0]!.id).toBe(runId);
  }, 300_000);
});
