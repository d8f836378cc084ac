import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { Proc, sleep } from '../procs.js';

/**
 * moto_server on a random loopback port, for the fake's cross-checks (an independent implementation of the same
 * APIs). Kept here rather than in test/helpers/moto.ts, which the environment work owns; either serves.
 */
export async function startMoto(): Promise<{ endpoint: string; proc: Proc }> {
  const port = await new Promise<number>((resolve, reject) => {
    const srv = createServer();
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
  const proc = new Proc(
    spawn('moto_server', ['-H', '127.0.0.1', '-p', String(port)], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        HOME: process.env.HOME ?? '/tmp',
        AWS_EC2_METADATA_DISABLED: 'true',
      },
    }),
  );
  const endpoint = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 200; i++) {
    const res = await fetch(`${endpoint}/moto-api/`).catch(() => undefined);
    if (res) return { endpoint, proc };
    if (proc.child.exitCode !== null) break;
    await sleep(100);
  }
  proc.kill('SIGKILL');
  throw new Error(`moto_server did not start:\n${proc.output}`);
}
