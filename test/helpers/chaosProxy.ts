import http from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * An HTTP proxy between agents and the server for the chaos test: it forwards every request to the current
 * upstream (a restarted server listens on another port), and for a share of log uploads and status reports it
 * lets the server handle the request, then drops the answer (the connection is cut), which is the lost-response
 * case an agent must survive. Hand-written: proxy libraries forward answers; none offers dropping one after the
 * upstream has acted on the request. `random` is seeded by the test so a run can be repeated.
 */
export class ChaosProxy {
  upstream: string;
  dropped = 0;
  private server: http.Server | undefined;

  constructor(
    upstream: string,
    private readonly dropShare: number,
    private readonly random: () => number,
  ) {
    this.upstream = upstream;
  }

  async start(): Promise<string> {
    this.server = http.createServer((req, res) => this.forward(req, res));
    await new Promise<void>((resolve) => this.server?.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async close(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  private forward(req: http.IncomingMessage, res: http.ServerResponse): void {
    const up = new URL(this.upstream);
    // A sync (agent protocol 2) carries the agent's log uploads and status reports, so its answers are dropped too.
    const droppable =
      req.method === 'POST' &&
      (/^\/api\/runs\/[^/]+\/(logs|status)(\?|$)/.test(req.url ?? '') ||
        /^\/api\/agents\/[^/]+\/sync(\?|$)/.test(req.url ?? ''));
    const out = http.request(
      { hostname: up.hostname, port: up.port, method: req.method, path: req.url, headers: req.headers },
      (answer) => {
        if (droppable && this.random() < this.dropShare) {
          // The server has handled it; the agent never hears so.
          answer.resume();
          answer.on('end', () => {
            this.dropped++;
            req.socket.destroy();
          });
          return;
        }
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    // The server is down (killed, restarting): the agent sees a reset connection, as it would without the proxy.
    out.on('error', () => res.destroy());
    req.on('error', () => out.destroy());
    res.on('close', () => out.destroy());
    req.pipe(out);
  }
}

/** A small seeded PRNG (mulberry32), so the chaos schedule is the same on every run. */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
