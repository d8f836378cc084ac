/**
 * Clients Liftoff did not write, for driving the test API server over TLS: the machine's `kubectl` (1.32,
 * scripts/services/kubectl.sh) and the official Python client (Debian's python3-kubernetes, scripts/services/base.sh)
 * through test/kube/pyclient.py. Used by test/kube/kubectl.test.ts and test/kube/pythonClient.test.ts.
 */
import { execFile, execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BUSYBOX } from '../docker.js';
import { selfSignedCert, startFakeKube, type FakeKube } from './index.js';

const PYTHON = '/usr/bin/python3';
const PYCLIENT = join(import.meta.dirname, '../../kube/pyclient.py');

/** Whether a client is there: missing, its suite skips loudly unless LIFTOFF_REQUIRE_SERVICES=1 (then fails). */
export function clientAvailable(which: 'kubectl' | 'python'): boolean {
  try {
    if (which === 'kubectl') execFileSync('kubectl', ['version', '--client'], { stdio: 'ignore' });
    else execFileSync(PYTHON, ['-c', 'import kubernetes'], { stdio: 'ignore' });
    return true;
  } catch {
    const reason =
      which === 'kubectl'
        ? 'kubectl missing (scripts/services/kubectl.sh)'
        : 'python3-kubernetes missing (scripts/services/base.sh)';
    if (process.env.LIFTOFF_REQUIRE_SERVICES === '1') throw new Error(`${reason} (LIFTOFF_REQUIRE_SERVICES=1)`);
    console.warn(`\n*** SKIPPING the ${which} suite: ${reason} ***\n`);
    return false;
  }
}

export interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a client (no shell) and answers its exit code and output, failing or not. */
export const run = (file: string, args: string[], timeout = 60_000): Promise<Ran> =>
  new Promise((resolve) => {
    execFile(file, args, { timeout, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
  });

/** A batch/v1 Job of one busybox container running `script`, as a user's manifest (wire JSON). */
export const jobManifest = (name: string, script: string, extra: Record<string, unknown> = {}) => ({
  apiVersion: 'batch/v1',
  kind: 'Job',
  metadata: { name },
  spec: {
    backoffLimit: 0 as unknown,
    template: {
      spec: {
        restartPolicy: 'Never',
        terminationGracePeriodSeconds: 1,
        containers: [{ name: 'main', image: BUSYBOX, command: ['sh', '-c', script], ...extra }],
      },
    },
  },
});

export interface RealClients {
  kube: FakeKube;
  kubectl(...args: string[]): Promise<Ran>;
  /** One pyclient.py operation: its JSON answer (`{error: {status, reason, body}}` for an ApiException). */
  py(op: string, args?: Record<string, unknown>): Promise<any>;
  /** Writes a manifest file for `kubectl -f` and returns its path. */
  file(obj: unknown): string;
}

/** A TLS test API server (a self-signed certificate made with openssl) and a kubeconfig for it in `dir`. */
export async function startForRealClients(dir: string): Promise<RealClients> {
  const cert = await selfSignedCert(join(dir, 'tls'));
  const kube = await startFakeKube({ tls: { key: cert.key, cert: cert.cert } });
  const kubeconfig = await kube.writeKubeconfig(dir, { namespace: 'default' });
  let files = 0;
  return {
    kube,
    // Its own discovery cache: kubectl would otherwise write under ~/.kube/cache.
    kubectl: (...args) =>
      run('kubectl', ['--kubeconfig', kubeconfig, '--cache-dir', join(dir, 'kubectl-cache'), ...args]),
    async py(op, args = {}) {
      const r = await run(PYTHON, [PYCLIENT, kubeconfig, op, JSON.stringify(args)]);
      if (r.code !== 0) throw new Error(`pyclient ${op} exited ${r.code}: ${r.stderr}`);
      return JSON.parse(r.stdout);
    },
    file(obj) {
      const path = join(dir, `manifest-${++files}.json`);
      writeFileSync(path, JSON.stringify(obj));
      return path;
    },
  };
}
