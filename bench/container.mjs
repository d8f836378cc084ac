// The container path (needs the Docker engine and the test images of scripts/services/docker.sh): push → container
// running next to a plain `docker run` of the same image, and a cold build next to a cached relaunch.
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { packDirectory } from '@liftoff/cli';
import { fmtMs, median, percentiles, ratio, sleep, startAgent, startServer, tempDir } from './lib.mjs';

const PYTHON = 'liftoff-test/python:3';
const PRINT_NS = 'import time; print(time.time_ns())';

function dockerAvailable() {
  try {
    execFileSync('docker', ['image', 'inspect', PYTHON], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

async function waitEnded(client, id) {
  for (;;) {
    const item = await client.getItem(id);
    if (['finished', 'failed', 'stopped'].includes(item.state)) return item;
    await sleep(20);
  }
}

function plainDockerRun() {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const child = spawn('docker', ['run', '--rm', PYTHON, 'python3', '-c', PRINT_NS]);
    let out = '';
    child.stdout.on('data', (b) => (out += b));
    child.on('exit', (code) =>
      code === 0
        ? resolve(Number(BigInt(out.trim()) / 1_000_000n) - t0)
        : reject(new Error(`docker run exited ${code}`)),
    );
  });
}

export default {
  name: 'container',
  title: 'Container path',
  async run({ quick }) {
    if (!dockerAvailable()) {
      return {
        tables: [
          {
            title: 'Container path',
            how: '-',
            columns: ['-'],
            rows: [['skipped: no Docker engine or test images (run scripts/services/docker.sh)']],
            notes: [],
          },
        ],
        charts: [],
        json: { skipped: true },
      };
    }
    const samples = quick ? 2 : 10;
    const server = await startServer();
    const { client } = server;
    await client.createQueue('default', {
      name: 'containers',
      resource: 'local-container',
      resource_args: { 'local-container': { builder: { base_image: PYTHON } } },
    });
    await startAgent(server, { queues: ['containers'] });
    const liftoff = [];
    const plain = [];
    for (let i = 0; i < samples + 1; i++) {
      const item = await client.push('default', 'containers', {
        spec: { source: { type: 'image', image: PYTHON }, entry_point: ['python3', '-c', PRINT_NS] },
      });
      const ended = await waitEnded(client, item.id);
      const ns = /^(\d{19})$/m.exec((await client.readLogs(ended.run_id)).data)?.[1];
      const p = await plainDockerRun();
      if (i > 0 && ns) {
        liftoff.push(Number(BigInt(ns) / 1_000_000n) - item.created_at);
        plain.push(p);
      }
    }
    const builds = [];
    for (let i = 0; i < (quick ? 1 : 3); i++) {
      const dir = join(tempDir(), 'code');
      mkdirSync(dir);
      writeFileSync(join(dir, 'main.py'), `print("build benchmark ${Date.now()}-${Math.random()}")\n`);
      const archive = await client.uploadArchive(await packDirectory(dir));
      const spec = { source: { type: 'code', archive_id: archive.id }, entry_point: ['python3', 'main.py'] };
      const cold = await waitEnded(client, (await client.push('default', 'containers', { spec })).id);
      const warm = await waitEnded(client, (await client.push('default', 'containers', { spec })).id);
      builds.push({ cold: cold.ended_at - cold.created_at, cached: warm.ended_at - warm.created_at });
    }
    const l = percentiles(liftoff);
    const d = percentiles(plain);
    const cold = median(builds.map((b) => b.cold));
    const cached = median(builds.map((b) => b.cached));
    return {
      tables: [
        {
          title: 'Container path',
          how: `Image job \`python3 -c "print(time.time_ns())"\` on a local-container queue, ${samples} times after a warm-up: push accepted → the container's first instruction, next to \`docker run --rm\` of the same image and command timed from the spawn of the docker CLI. Builds: a code job with a fresh main.py built from a generated Dockerfile (cold), then the same job again (cached: same tag, no build); push → run ended, median of ${builds.length}.`,
          columns: ['what', 'Liftoff', 'baseline', 'ratio'],
          rows: [
            [
              'push → container running, p50 / p95',
              `${fmtMs(l.p50)} / ${fmtMs(l.p95)}`,
              `docker run: ${fmtMs(d.p50)} / ${fmtMs(d.p95)}`,
              ratio(l.p50, d.p50),
            ],
            [
              'git/code job push → finished',
              `cached relaunch: ${fmtMs(cached)}`,
              `cold build: ${fmtMs(cold)}`,
              `${ratio(cold, cached)} faster with the cache`,
            ],
          ],
          notes: [],
        },
      ],
      charts: [
        {
          file: 'container-start.svg',
          title: 'Push → container running',
          rows: [
            { label: 'Liftoff image job', ...l },
            { label: 'plain docker run', baseline: true, ...d },
          ],
        },
      ],
      json: { liftoff: l, dockerRun: d, builds },
    };
  },
};
