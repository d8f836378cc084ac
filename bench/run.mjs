// `npm run bench [-- NAME...] [-- --quick]`: runs the benchmarks and writes bench/RESULTS.md, bench/results.json and
// the charts. Results of benchmarks not run this time are kept from results.json, marked with their date.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import archive from './archive.mjs';
import { latencyChart } from './chart.mjs';
import container from './container.mjs';
import depth from './depth.mjs';
import dispatch from './dispatch.mjs';
import footprint from './footprint.mjs';
import globalRuns from './globalRuns.mjs';
import idle from './idle.mjs';
import logViewer from './logViewer.mjs';
import metrics from './metricsIngest.mjs';
import outputs from './outputs.mjs';
import runs from './runs.mjs';
import serverCost from './serverCost.mjs';
import slurm from './slurm.mjs';
import sweepDispatch from './sweepDispatch.mjs';
import { cleanup, machine, pgReachable, ROOT } from './lib.mjs';
import throughput from './throughput.mjs';
import websize from './webSize.mjs';

const ALL = [
  dispatch,
  throughput,
  serverCost,
  depth,
  idle,
  footprint,
  container,
  archive,
  slurm,
  outputs,
  runs,
  globalRuns,
  metrics,
  logViewer,
  websize,
  sweepDispatch,
];
const args = process.argv.slice(2);
const quick = args.includes('--quick');
const names = args.filter((a) => !a.startsWith('--'));
const unknown = names.filter((n) => !ALL.some((b) => b.name === n));
if (unknown.length) {
  console.error(`unknown benchmark(s): ${unknown.join(', ')}; known: ${ALL.map((b) => b.name).join(', ')}`);
  process.exit(2);
}
// `--render`: rewrite RESULTS.md from results.json without running anything.
const selected = args.includes('--render') ? [] : names.length ? ALL.filter((b) => names.includes(b.name)) : ALL;
const outDir = process.env.LIFTOFF_BENCH_OUT ?? join(ROOT, 'bench');
const pgCandidate = process.env.LIFTOFF_BENCH_DATABASE_URL ?? 'postgres://liftoff:liftoff@127.0.0.1:5432/liftoff';
const pgUrl = (await pgReachable(pgCandidate)) ? pgCandidate : undefined;
if (!pgUrl)
  console.warn(`bench: no PostgreSQL at ${pgCandidate}; the PostgreSQL rows and graphile-worker will be missing`);

const resultsFile = join(outDir, 'results.json');
const previous = existsSync(resultsFile) ? JSON.parse(readFileSync(resultsFile, 'utf8')) : { benchmarks: {} };
const results = args.includes('--render')
  ? previous
  : { machine: machine(), quick, benchmarks: { ...previous.benchmarks } };

for (const bench of selected) {
  const t0 = Date.now();
  console.log(`bench: ${bench.name} ...`);
  try {
    const out = await bench.run({ pgUrl, quick });
    for (const chart of out.charts) writeFileSync(join(outDir, chart.file), latencyChart(chart.title, chart.rows));
    results.benchmarks[bench.name] = {
      title: bench.title,
      ranAt: new Date().toISOString(),
      seconds: (Date.now() - t0) / 1000,
      ...out,
    };
    console.log(`bench: ${bench.name} done in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  } finally {
    await cleanup();
  }
}

writeFileSync(resultsFile, `${JSON.stringify(results, null, 2)}\n`);
writeFileSync(join(outDir, 'RESULTS.md'), render(results));
console.log(`bench: wrote ${join(outDir, 'RESULTS.md')}`);

function render(r) {
  const m = r.machine;
  const lines = [
    '# Benchmark results',
    '',
    `Written by \`npm run bench\`${r.quick ? ' (quick mode: tiny sizes, not representative)' : ''}. Machine: ${m.cpu}, ${m.cores} cores, ${m.memoryGb} GiB, Node ${m.node}, Linux ${m.kernel}. Every figure is from real \`liftoff\` server and agent processes on this machine; baselines ran in the same run.`,
    '',
  ];
  for (const b of ALL) {
    const res = r.benchmarks[b.name];
    if (!res) continue;
    lines.push(`## ${res.title}`, '', `_Run ${res.ranAt}, ${res.seconds.toFixed(0)} s._`, '');
    for (const t of res.tables) {
      if (res.tables.length > 1 || t.title !== res.title) lines.push(`### ${t.title}`, '');
      lines.push(t.how, '', `| ${t.columns.join(' | ')} |`, `| ${t.columns.map(() => '---').join(' | ')} |`);
      for (const row of t.rows) lines.push(`| ${row.join(' | ')} |`);
      lines.push('');
      for (const n of t.notes) lines.push(`> ${n}`, '');
    }
    for (const c of res.charts) lines.push(`![${c.title}](${c.file})`, '');
  }
  return `${lines.join('\n')}\n`;
}
