import { spawn } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { selfSignedCert } from '../kube/index.js';
import { Proc, ROOT, sleep, tempDir } from '../procs.js';

/** The emulator's one built-in account and its published (well-known, not secret) key. */
export const ACCOUNT = 'devstoreaccount1';
export const ACCOUNT_KEY = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';
const BIN = join(ROOT, 'node_modules', '.bin', 'azurite-blob');

/**
 * Whether Azurite (a devDependency) is installed. Missing: the suite skips with a loud reason, unless
 * LIFTOFF_REQUIRE_SERVICES=1, where that is a failure.
 */
export function azuriteAvailable(): boolean {
  if (existsSync(BIN)) return true;
  const reason = 'azurite is not installed (npm ci installs it as a devDependency)';
  if (process.env.LIFTOFF_REQUIRE_SERVICES === '1') throw new Error(`${reason} (LIFTOFF_REQUIRE_SERVICES=1)`);
  console.warn(`\n*** SKIPPING Azure Blob suites: ${reason} ***\n`);
  return false;
}

export interface Azurite {
  /** `https://127.0.0.1:<port>`: every account path-style under it (LIFTOFF_AZURE_BLOB_ENDPOINT). */
  origin: string;
  /** The test CA (Azurite's own self-signed certificate), for NODE_EXTRA_CA_CERTS. */
  caFile: string;
  ca: string;
}

/**
 * Azurite's Blob service on a free loopback port, over HTTPS with a throwaway self-signed certificate and with
 * `--oauth basic`, so bearer tokens (checked for issuer, audience and lifetime, as Azure does; not for a signature)
 * and user-delegation SAS work. Always `--disableTelemetry`: it would otherwise report to Application Insights.
 */
export async function startAzurite(): Promise<Azurite> {
  const dir = tempDir('liftoff-azurite-');
  const tls = await selfSignedCert(join(dir, 'tls'));
  writeFileSync(join(dir, 'key.pem'), tls.key);
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = 20000 + Math.floor(Math.random() * 30000);
    // prettier-ignore
    const proc = new Proc(spawn(BIN, [
      '--blobHost', '127.0.0.1', '--blobPort', String(port), '--location', join(dir, 'data'),
      '--oauth', 'basic', '--cert', tls.caFile, '--key', join(dir, 'key.pem'),
      '--skipApiVersionCheck', '--disableTelemetry', '--silent',
    ], { stdio: ['ignore', 'pipe', 'pipe'] }));
    for (let i = 0; i < 200 && proc.child.exitCode === null; i++) {
      if (proc.output.includes('successfully listens on')) {
        return { origin: `https://127.0.0.1:${port}`, caFile: tls.caFile, ca: tls.cert };
      }
      await sleep(100);
    }
    if (!/EADDRINUSE/.test(proc.output)) throw new Error(`azurite did not start:\n${proc.output}`);
  }
  throw new Error('azurite found no free port');
}

/**
 * A Blob client of the emulator's account with its well-known shared key (not the agent's way in): for a test to
 * create containers and read back what the agent wrote, as an administrator would with `az storage`.
 */
export async function adminClient(azurite: Azurite): Promise<import('@azure/storage-blob').BlobServiceClient> {
  const { BlobServiceClient, StorageSharedKeyCredential } = await import('@azure/storage-blob');
  return new BlobServiceClient(`${azurite.origin}/${ACCOUNT}`, new StorageSharedKeyCredential(ACCOUNT, ACCOUNT_KEY), {
    tlsOptions: { ca: azurite.ca },
  } as import('@azure/storage-blob').StoragePipelineOptions);
}

/** GET `url` trusting `ca` (fetch cannot take a CA without an extra dispatcher package): status and body. */
export async function httpsGet(url: string, ca: string): Promise<{ status: number; body: Buffer }> {
  const { get } = await import('node:https');
  return new Promise((resolve, reject) => {
    get(url, { ca }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (b: Buffer) => parts.push(b));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(parts) }));
      res.on('error', reject);
    }).on('error', reject);
  });
}
