// Web UI transfer sizes: what a browser downloads on its first visit (the page, and the scripts and stylesheets it
// names), and one API answer a queue page polls, as sent before issue 18 (uncompressed) and now (brotli or gzip,
// as the browser accepts), over HTTP from a real `liftoff server`.
import { request } from 'node:http';
import { startServer } from './lib.mjs';

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
    return {
      tables: [
        {
          title: 'Web UI transfer sizes',
          how: 'Bytes on the wire from a real `liftoff server` on loopback: each file the UI page names, fetched uncompressed (as every file was sent before issue 18), with `Accept-Encoding: br` and with `gzip`. The UI files are compressed at build time (packages/web/vite.config.js: brotli 11, gzip 9); API answers over 1 KiB at request time (brotli 4); the agent protocol never.',
          columns: ['what', 'before (uncompressed)', 'brotli', 'gzip', 'brotli vs before'],
          rows,
          notes: [],
        },
      ],
      charts: [],
      json: { files: rows },
    };
  },
};
