// Archive check: how fast the server checks an uploaded code archive (MB of tar per second), and what push and poll
// latency other clients see while the worst archive within the caps (a gzip bomb: one entry of zeros just under the
// 2 GiB unpacked cap, about 2 MB packed) is being checked in the server's worker thread.
import { randomBytes } from 'node:crypto';
import { createWriteStream, readFileSync, statSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { Header } from 'tar';
import { fmtMs, percentiles, ratio, registerProtocolAgent, startServer, tempDir, ROOT } from './lib.mjs';

const MIB = 1024 * 1024;

/** A .tar.gz of `files` entries of `size` bytes each, from `fill(i)` (zeros or random), written as it is made. */
async function writeArchive(path, { files, size, fill }) {
  async function* tar() {
    for (let i = 0; i < files; i++) {
      const header = new Header({ path: `f/${i}.bin`, mode: 0o644, size, type: 'File', mtime: new Date(0) });
      header.encode();
      yield header.block;
      const chunk = 4 * MIB;
      for (let done = 0; done < size; done += chunk) yield fill(Math.min(chunk, size - done));
      if (size % 512) yield Buffer.alloc(512 - (size % 512));
    }
    yield Buffer.alloc(1024); // the two zero blocks that end a tar
  }
  await pipeline(Readable.from(tar()), createGzip({ level: 6 }), createWriteStream(path));
  return { path, packed: statSync(path).size, unpacked: files * (Math.ceil(size / 512) * 512 + 512) + 1024 };
}

const zeros = (n) => Buffer.alloc(n);

/** Times the check alone (the server's worker, in this process) and a whole upload to a real server. */
async function throughput(server, archive) {
  const { checkArchiveInWorker } = await import(join(ROOT, 'packages/server/dist/archiveCheck.js'));
  const limits = { compressedBytes: 512 * MIB, uncompressedBytes: 2048 * MIB, entries: 100_000 };
  let t = performance.now();
  await checkArchiveInWorker({ path: archive.path, limits }, 600_000);
  const checkMs = performance.now() - t;
  const body = readFileSync(archive.path);
  t = performance.now();
  // A refusal is a result too: on a loaded machine the worst archive can outlast the check's 60 s timeout.
  const refused = await server.client.uploadArchive(body).then(
    () => undefined,
    (e) => e.message,
  );
  const uploadMs = performance.now() - t;
  return { ...archive, checkMs, uploadMs, refused };
}

/** Rounds of one push and one pop (a poll claiming one item without waiting, released again), timed at the client. */
async function latencyRounds(client, agentId, { until, rounds }) {
  const spec = { source: { type: 'git', url: 'https://example.com/r.git' }, entry_point: ['true'] };
  const push = [];
  const pop = [];
  for (let i = 0; until ? !until() : i < rounds; i++) {
    let t = performance.now();
    await client.push('default', 'default', { spec });
    push.push(performance.now() - t);
    t = performance.now();
    const got = await client.poll(agentId, { queues: ['default'], max_items: 1, wait_ms: 0 });
    pop.push(performance.now() - t);
    if (got.items[0]) await client.cancelItem(got.items[0].item_id);
  }
  return { push: percentiles(push), pop: percentiles(pop) };
}

export default {
  name: 'archive',
  title: 'Archive check',
  async run({ quick }) {
    const load = loadavg()[0];
    const dir = tempDir();
    const server = await startServer();
    await registerProtocolAgent(server.client, 'archive-bench');

    const bombSize = quick ? 256 * MIB : 2048 * MIB - 4 * MIB;
    const bomb = await writeArchive(join(dir, 'bomb.tar.gz'), { files: 1, size: bombSize, fill: zeros });
    // Code as it comes: many small files that do not compress (random bytes), 4 KiB each.
    const code = await writeArchive(join(dir, 'code.tar.gz'), {
      files: quick ? 2_000 : 20_000,
      size: 4096,
      fill: (n) => randomBytes(n),
    });
    const checked = [
      { what: 'source tree: 4 KiB files of random bytes', ...(await throughput(server, code)) },
      { what: 'gzip bomb: one entry of zeros', ...(await throughput(server, bomb)) },
    ];

    await latencyRounds(server.client, 'archive-bench', { rounds: 30 }); // warm-up, not recorded
    const idle = await latencyRounds(server.client, 'archive-bench', { rounds: quick ? 30 : 200 });
    let uploading = true;
    const body = readFileSync(bomb.path);
    const t0 = performance.now();
    const upload = server.client
      .uploadArchive(body)
      .then(
        () => undefined,
        (e) => e.message,
      )
      .finally(() => (uploading = false));
    const during = await latencyRounds(server.client, 'archive-bench', { until: () => !uploading });
    const refusedDuring = await upload;
    const bombMs = performance.now() - t0;
    // Idle again afterwards: other processes on the machine change its load between the phases.
    const after = await latencyRounds(server.client, 'archive-bench', { rounds: quick ? 30 : 200 });

    const mb = (n) => `${(n / MIB).toFixed(n < 10 * MIB ? 1 : 0)} MiB`;
    const rate = (bytes, ms) => `${(bytes / MIB / (ms / 1000)).toFixed(0)} MiB/s`;
    const lat = (p) => `${fmtMs(p.p50)} / ${fmtMs(p.p95)} / ${fmtMs(p.p99)}`;
    return {
      tables: [
        {
          title: 'Archive check throughput (SQLite)',
          how: "The server's archive check (a worker thread: gunzip, tar parse, entry paths, the caps on entries and unpacked size) run alone on a prepared .tar.gz, and a whole upload of it to a `liftoff server` (streamed to disk, hashed, checked, stored), timed at the client. MiB/s are of unpacked tar.",
          columns: ['archive', 'packed', 'unpacked tar', 'check alone', 'check MiB/s', 'whole upload', 'upload MiB/s'],
          rows: checked.map((c) => [
            c.what,
            mb(c.packed),
            mb(c.unpacked),
            fmtMs(c.checkMs),
            rate(c.unpacked, c.checkMs),
            c.refused ? `refused after ${fmtMs(c.uploadMs)}` : fmtMs(c.uploadMs),
            c.refused ? '-' : rate(c.unpacked, c.uploadMs),
          ]),
          notes: [
            `Load average (1 min) when the run started: ${load.toFixed(1)} on ${cpus().length} cores (other processes shared the machine, so the two timings of one archive may differ by more than the upload's own work).`,
            ...checked.filter((c) => c.refused).map((c) => `${c.what}: ${c.refused}`),
          ],
        },
        {
          title: 'Push and pop latency while the worst archive is checked (SQLite)',
          how: `One client pushes an item and pops it (a poll claiming one without waiting; the claim is then cancelled), round after round, on an idle server (${idle.push.n} rounds after 30 of warm-up, before and again after), and for as long as another client's upload of the gzip bomb (${mb(bomb.packed)} packed, ${mb(bomb.unpacked)} unpacked) takes to be answered (${(bombMs / 1000).toFixed(1)} s, ${during.push.n} rounds${refusedDuring ? `; it was refused: ${refusedDuring}` : ''}).`,
          columns: ['server', 'push p50 / p95 / p99', 'pop p50 / p95 / p99', 'pop p50 vs idle'],
          rows: [
            ['idle, before', lat(idle.push), lat(idle.pop), '1×'],
            ['checking the gzip bomb', lat(during.push), lat(during.pop), ratio(during.pop.p50, idle.pop.p50)],
            ['idle, after', lat(after.push), lat(after.pop), ratio(after.pop.p50, idle.pop.p50)],
          ],
          notes: [
            'The check runs in a worker thread, so the event loop keeps answering; on two cores, gunzip in the worker and the server thread share the CPU with this client.',
            `Load average (1 min) before / after this table: ${load.toFixed(1)} / ${loadavg()[0].toFixed(1)}; other processes shared the machine, so differences of a few ms between the rows are theirs as much as the check's.`,
          ],
        },
      ],
      charts: [],
    };
  },
};
