// Web UI transfer sizes: what a browser downloads on its first visit (the page, and the scripts and stylesheets it
// names), and one API answer a queue page polls, as sent before issue 18 (uncompressed) and now (brotli or gzip,
// as the browser accepts), over HTTP from a real `liftoff server`.
import { readdirSync, readFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { ROOT, startServer } from './lib.mjs';

function bytesOnWire(url, headers) {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers }, (res) => {
      let n = 0;
      const parts = [];
      res.on('data', (d) => {
        n += d.length;
        parts.push(d);
      });
      res.on('end', () =>
        resolve({ n, encoding: res.headers['content-encoding'] ?? 'none', body: Buffer.concat(parts) }),
      );
    });
    req.on('error', reject);
    req.end();
  });
}

const kb = (n) => `${(n / 1024).toFixed(1)} KB`;

export default {
  name: 'websize',
  title: 'Web UI transfer sizes',
  async run() {
    const server = await startServer();
    const page = await bytesOnWire(`${server.url}/`, {});
    const html = page.body.toString();
    const files = ['/', ...[...html.matchAll(/(?:src|href)="(\/assets\/[^"]+\.(?:js|css))"/g)].map((m) => m[1])];
    const rows = [];
    const total = { plain: 0, br: 0, gzip: 0 };
    for (const f of files) {
      const [plain, br, gzip] = await Promise.all(
        [{}, { 'accept-encoding': 'br' }, { 'accept-encoding': 'gzip' }].map((h) =>
          bytesOnWire(`${server.url}${f}`, h),
        ),
      );
      total.plain += plain.n;
      total.br += br.n;
      total.gzip += gzip.n;
      rows.push([
        f === '/' ? 'index.html' : f,
        kb(plain.n),
        `${kb(br.n)} (${br.encoding})`,
        `${kb(gzip.n)} (${gzip.encoding})`,
        `${(br.n / plain.n).toFixed(2)}×`,
      ]);
    }
    rows.push([
      'first visit, all of the above',
      kb(total.plain),
      kb(total.br),
      kb(total.gzip),
      `${(total.br / total.plain).toFixed(2)}×`,
    ]);
    // A queue page's items list: 200 items, as the UI polls it.
    const spec = {
      source: { type: 'git', url: 'https://git.example.com/team/train.git' },
      entry_point: ['python', 'train.py'],
      run_config: { lr: 0.001, epochs: 10 },
    };
    for (let i = 0; i < 200; i += 50)
      await server.client.pushBatch('default', 'default', { items: Array.from({ length: 50 }, () => ({ spec })) });
    const auth = { authorization: `Bearer ${server.env.LIFTOFF_API_KEY}` };
    const items = `${server.url}/api/entities/default/queues/default/items`;
    const [plain, br, gzip] = await Promise.all(
      [{}, { 'accept-encoding': 'br' }, { 'accept-encoding': 'gzip' }].map((h) =>
        bytesOnWire(items, { ...auth, ...h }),
      ),
    );
    rows.push([
      'API: a queue’s items list (200 pending items)',
      kb(plain.n),
      `${kb(br.n)} (${br.encoding})`,
      `${kb(gzip.n)} (${gzip.encoding})`,
      `${(br.n / plain.n).toFixed(2)}×`,
    ]);
    const split = await codeSplit(server, files);
    return {
      tables: [
        split,
        {
          title: 'Web UI transfer sizes',
          how: 'Bytes on the wire from a real `liftoff server` on loopback: each file the UI page names, fetched uncompressed (as every file was sent before issue 18), with `Accept-Encoding: br` and with `gzip`. The UI files are compressed at build time (packages/web/vite.config.js: brotli 11, gzip 9); API answers over 1 KiB at request time (brotli 4); the agent protocol never.',
          columns: ['what', 'before (uncompressed)', 'brotli', 'gzip', 'brotli vs before'],
          rows,
          notes: [],
        },
      ],
      charts: [],
      json: { files: rows, split: split.rows },
    };
  },
};

/**
 * Issue 18's code splitting: what a first visit fetches (the files index.html names) against all of the UI's code
 * (which before the split was one chunk every first visit fetched whole), and the chunks fetched on demand: the
 * YAML reader (forms that read YAML) and the charts (uPlot and the chart components). Chunks are told apart by
 * their content, as their names carry hashes.
 */
async function codeSplit(server, firstVisit) {
  const dir = join(ROOT, 'packages', 'web', 'dist', 'assets');
  const all = readdirSync(dir).filter((f) => /\.(js|css)$/.test(f));
  const kind = (f) => {
    // The app's own stylesheet styles charts too; only uPlot's is part of the charts.
    if (f.endsWith('.css')) return f.startsWith('uPlot') ? 'charts' : 'other';
    const code = readFileSync(join(dir, f), 'utf8');
    if (code.includes('YAMLParseError')) return 'yaml';
    if (code.includes('u-legend') || code.includes('uplot') || /^(Chart|MetricCharts|RunCompare|uPlot)/.test(f))
      return 'charts';
    return 'other';
  };
  const size = async (f) => {
    const [plain, br] = await Promise.all(
      [{}, { 'accept-encoding': 'br' }].map((h) => bytesOnWire(`${server.url}/assets/${f}`, h)),
    );
    return { plain: plain.n, br: br.n };
  };
  const sum = async (list) => {
    const t = { plain: 0, br: 0, n: list.length };
    for (const f of list) {
      const s = await size(f);
      t.plain += s.plain;
      t.br += s.br;
    }
    return t;
  };
  const initial = firstVisit.filter((f) => f !== '/').map((f) => f.replace('/assets/', ''));
  const groups = [
    ['first visit: the scripts and stylesheet index.html names', initial],
    ['on demand: the YAML reader (New queue, launch dialog)', all.filter((f) => kind(f) === 'yaml')],
    ['on demand: the charts (uPlot and chart components)', all.filter((f) => kind(f) === 'charts')],
    ['all of the UI’s code (before the split: fetched whole on a first visit)', all],
  ];
  const rows = [];
  for (const [what, list] of groups) {
    const t = await sum(list);
    rows.push([what, String(t.n), kb(t.plain), kb(t.br)]);
  }
  return {
    title: 'Web UI code splitting',
    how: 'The built UI (packages/web/dist/assets) over HTTP from a real `liftoff server`: each group’s files fetched uncompressed and with `Accept-Encoding: br`. Before issue 18’s split the UI was one script, so a first visit fetched the last row; it now fetches the first row and the YAML reader and charts only on the pages that use them.',
    columns: ['what', 'files', 'uncompressed', 'brotli'],
    rows,
    notes: [],
  };
}
