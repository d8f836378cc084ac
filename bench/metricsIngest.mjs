// Metric parsing on log ingestion (issue 17): the server parses `LIFTOFF_METRICS {...}` lines in the transaction that
// accepts a log append. This measures what that costs: log lines per second through the agent's append call with no
// metric lines, with one in ten, and with every line one, side by side in one run, on SQLite and PostgreSQL.
import { cpus, loadavg } from 'node:os';
import { heldRun, median, registerProtocolAgent, startServer } from './lib.mjs';

const CHUNK_BYTES = 256 * 1024;
const ROUNDS = 3;

/** `count` log lines, every `every`-th a metric line (0: none), about 60 bytes each as a training loop prints. */
function lines(count, every) {
  const out = [];
  for (let i = 0; i < count; i++) {
    out.push(
      every && i % every === 0
        ? `LIFTOFF_METRICS {"step": ${i}, "loss": ${(1 / (i + 1)).toFixed(6)}, "accuracy": ${(i / count).toFixed(4)}}`
        : `epoch ${i} batch ${i % 100} loss ${(1 / (i + 1)).toFixed(6)} lr 0.001 elapsed 12.5s`,
    );
  }
  return out.join('\n') + '\n';
}

/** Splits `text` into appends of about CHUNK_BYTES, cut anywhere (a line may span two appends, as in real uploads). */
function chunks(text) {
  const out = [];
  for (let i = 0; i < text.length; i += CHUNK_BYTES) out.push(text.slice(i, i + CHUNK_BYTES));
  return out;
}

/** Lines per second of appending `text` to a fresh run, median of ROUNDS after one warm-up. */
async function rate(server, agentId, text, lineCount) {
  const parts = chunks(text);
  const times = [];
  for (let round = 0; round <= ROUNDS; round++) {
    const run = await heldRun(server.client, agentId);
    let offset = 0;
    const t = performance.now();
    for (const part of parts) {
      await server.client.appendLogs(run, agentId, offset, part);
      offset += Buffer.byteLength(part);
    }
    const ms = performance.now() - t;
    if (round > 0) times.push(ms);
  }
  return lineCount / (median(times) / 1000);
}

export default {
  name: 'metrics',
  title: 'Metric parsing on log ingestion',
  async run({ pgUrl, quick }) {
    const load = loadavg()[0];
    const count = quick ? 20_000 : 200_000;
    const cases = [
      ['no metric lines (baseline)', lines(count, 0)],
      ['1 line in 10 a metric line', lines(count, 10)],
      ['every line a metric line', lines(count, 1)],
    ];
    const rows = [];
    for (const [backend, opts] of [['SQLite', {}], ...(pgUrl ? [['PostgreSQL', { database: pgUrl }]] : [])]) {
      const server = await startServer(opts);
      const agentId = `metrics-bench-${backend.toLowerCase()}`;
      await registerProtocolAgent(server.client, agentId);
      let baseline = 0;
      for (const [label, text] of cases) {
        const r = await rate(server, agentId, text, count);
        baseline ||= r;
        rows.push([
          backend,
          label,
          `${Math.round(r).toLocaleString('en-US')} lines/s`,
          `${(r / baseline).toFixed(2)}×`,
        ]);
      }
    }
    return {
      tables: [
        {
          title: 'Metric parsing on log ingestion',
          how: `${count.toLocaleString('en-US')} log lines of about 60 bytes appended to one run through the agent's log append call (\`POST /api/runs/{id}/logs\`) in pieces of ${CHUNK_BYTES / 1024} KiB cut anywhere, on a \`liftoff server\` on loopback; median of ${ROUNDS} runs after a warm-up. Metric lines carry step, loss and accuracy. "vs none" is the rate over the rate without metric lines on the same database.`,
          columns: ['database', 'log', 'rate', 'vs none'],
          rows,
          notes: [
            `Load average (1 min) when the run started: ${load.toFixed(1)} on ${cpus().length} cores; other processes shared the machine.`,
            'Metric points are stored with the per-key bounds of docs/metrics.md (a stride once a key has many points), so every-line metrics also measure that thinning.',
          ],
        },
      ],
      charts: [],
    };
  },
};
