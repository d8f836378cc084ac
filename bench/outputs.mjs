// Outputs upload: how fast a run's outputs go from the agent's output dir to the server's artifact store, against a
// plain copy of the same bytes on this machine (issue 17). The upload is the agent's own code (uploadOutputs: a
// sha256 pass over each file, then a streamed, chunked upload and the commit), timed around the whole call.
import { randomBytes } from 'node:crypto';
import { copyFileSync, createReadStream, createWriteStream, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { fmtMs, heldRun, median, registerProtocolAgent, startServer, tempDir, ROOT } from './lib.mjs';

const MIB = 1024 * 1024;
const ROUNDS = 3;

async function timeUploads(server, dir, bytes) {
  const { uploadOutputs } = await import(join(ROOT, 'packages/agent/dist/outputs/upload.js'));
  await registerProtocolAgent(server.client, 'outputs-bench');
  const times = [];
  const notes = [];
  for (let i = 0; i < ROUNDS + 1; i++) {
    const run = await heldRun(server.client, 'outputs-bench');
    const t = performance.now();
    await uploadOutputs(server.client, run, 'outputs-bench', dir, { bytes: 2 * bytes, capped: false }, (l) =>
      notes.push(l),
    );
    const ms = performance.now() - t;
    const listed = await server.client.listOutputs(run);
    if (listed.total_bytes !== bytes) throw new Error(`upload incomplete: ${notes.join('; ')}`);
    if (i > 0) times.push(ms); // the first round warms the server up
  }
  return median(times);
}

async function timeCopies(src, dst) {
  const stream = [];
  const copy = [];
  for (let i = 0; i < ROUNDS; i++) {
    let t = performance.now();
    await pipeline(createReadStream(src), createWriteStream(dst));
    stream.push(performance.now() - t);
    rmSync(dst);
    t = performance.now();
    copyFileSync(src, dst);
    copy.push(performance.now() - t);
    rmSync(dst);
  }
  return { stream: median(stream), copyFile: median(copy) };
}

export default {
  name: 'outputs',
  title: 'Outputs upload',
  async run({ pgUrl, quick }) {
    const load = loadavg()[0];
    const bytes = (quick ? 16 : 256) * MIB;
    const dir = tempDir();
    const outDir = join(dir, 'out');
    mkdirSync(outDir);
    // Random bytes, as model weights are to a compressor; written in pieces so the benchmark holds little memory.
    const file = join(outDir, 'model.bin');
    writeFileSync(file, '');
    for (let done = 0; done < bytes; done += 16 * MIB) writeFileSync(file, randomBytes(16 * MIB), { flag: 'a' });
    const copies = await timeCopies(file, join(dir, 'copy.bin'));
    const rows = [];
    const rate = (ms) => `${(bytes / MIB / (ms / 1000)).toFixed(0)} MiB/s`;
    const vs = (ms) => `${(copies.stream / ms).toFixed(2)}×`;
    rows.push(['plain copy: read stream → write stream (baseline)', fmtMs(copies.stream), rate(copies.stream), '1×']);
    rows.push([
      'plain copy: fs.copyFile (copy_file_range)',
      fmtMs(copies.copyFile),
      rate(copies.copyFile),
      vs(copies.copyFile),
    ]);
    const sqlite = await startServer();
    const sqliteMs = await timeUploads(sqlite, outDir, bytes);
    rows.push(['outputs upload, SQLite server, datadir store', fmtMs(sqliteMs), rate(sqliteMs), vs(sqliteMs)]);
    if (pgUrl) {
      const pg = await startServer({ database: pgUrl });
      const pgMs = await timeUploads(pg, outDir, bytes);
      rows.push(['outputs upload, PostgreSQL server, database store', fmtMs(pgMs), rate(pgMs), vs(pgMs)]);
    }
    return {
      tables: [
        {
          title: 'Outputs upload',
          how: `One file of ${bytes / MIB} MiB of random bytes in an output dir, uploaded by the agent's own upload code (a sha256 pass over the file, then one streamed PUT the server stores in 8 MiB chunks, or 4 MiB rows in the database store, and the commit) to a \`liftoff server\` on loopback, median of ${ROUNDS} runs after one warm-up. The baseline copies the same file on the same disk, read stream to write stream as node does it, median of ${ROUNDS}. "vs copy" is the copy's time over the upload's (1× would be as fast as a copy).`,
          columns: ['what', 'time', 'rate', 'vs copy'],
          rows,
          notes: [
            `Load average (1 min) when the run started: ${load.toFixed(1)} on ${cpus().length} cores; other processes shared the machine.`,
            'The upload reads the file twice (hash, then send) and the server writes every byte once more (a chunk file, or a row), hashing it again; the copy reads and writes once. What the upload pays for beyond the copy: that second read, two sha256 passes, HTTP on loopback and the per-chunk database records.',
          ],
        },
      ],
      charts: [],
    };
  },
};
