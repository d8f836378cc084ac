import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { generate } from 'selfsigned';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LiftoffClient, LiftoffError, readCredentials } from '@liftoff/core';
import { cleanupAll, cli, liftoff, tempDir, type Proc } from '../helpers/procs.js';

/** A private CA and a server certificate it signed for localhost and 127.0.0.1, written as PEM files. */
async function certificates(dir: string) {
  const ca = await generate([{ name: 'commonName', value: 'Liftoff test CA' }], {
    keyType: 'ec',
    algorithm: 'sha256',
    extensions: [
      { name: 'basicConstraints', cA: true, critical: true },
      { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    ],
  });
  const leaf = await generate([{ name: 'commonName', value: 'localhost' }], {
    keyType: 'ec',
    algorithm: 'sha256',
    ca: { key: ca.private, cert: ca.cert },
    extensions: [
      { name: 'basicConstraints', cA: false },
      { name: 'extKeyUsage', serverAuth: true },
      {
        name: 'subjectAltName',
        altNames: [
          { type: 2, value: 'localhost' },
          { type: 7, ip: '127.0.0.1' },
        ],
      },
    ],
  });
  const self = await generate([{ name: 'commonName', value: 'localhost' }], {
    keyType: 'ec',
    algorithm: 'sha256',
    extensions: [{ name: 'subjectAltName', altNames: [{ type: 7, ip: '127.0.0.1' }] }],
  });
  const files = {
    ca: join(dir, 'ca.pem'),
    cert: join(dir, 'server.pem'),
    key: join(dir, 'server.key'),
    selfCert: join(dir, 'self.pem'),
    selfKey: join(dir, 'self.key'),
  };
  writeFileSync(files.ca, ca.cert);
  writeFileSync(files.cert, leaf.cert);
  writeFileSync(files.key, leaf.private, { mode: 0o600 });
  writeFileSync(files.selfCert, self.cert);
  writeFileSync(files.selfKey, self.private, { mode: 0o600 });
  return files;
}

async function server(flags: string[]): Promise<{ proc: Proc; url: string; env: Record<string, string> }> {
  const home = tempDir('liftoff-tls-');
  chmodSync(home, 0o711);
  const proc = liftoff(['server', '--port', '0', '--data-dir', join(home, 'data'), ...flags], { HOME: home });
  const [, url] = (await proc.waitFor(/listening on (https?:\/\/\S+)/)) as unknown as [string, string];
  const key = readCredentials(join(home, '.config', 'liftoff', 'credentials'))?.api_key ?? '';
  return { proc, url, env: { HOME: home, LIFTOFF_BASE_URL: url, LIFTOFF_API_KEY: key } };
}

/** Issue 12, point 7: `--tls-cert/--tls-key`, a CA file for the CLI and agent, a warning for plain http off loopback. */
// Each case spawns several CLI processes and servers; on a loaded two-core machine that takes a while.
describe('TLS', { timeout: 240_000 }, () => {
  let files: Awaited<ReturnType<typeof certificates>>;
  let tls: Awaited<ReturnType<typeof server>>;
  beforeAll(async () => {
    files = await certificates(tempDir('liftoff-certs-'));
    tls = await server(['--tls-cert', files.cert, '--tls-key', files.key]);
  });
  afterAll(cleanupAll);

  it('serves https; the CLI trusts it with --ca-file, LIFTOFF_CA_FILE or ca_file in the credentials file', async () => {
    expect(tls.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const withFlag = await cli(['queue', 'list', '--ca-file', files.ca], tls.env);
    expect(withFlag.output).toContain('default');
    expect(withFlag.code).toBe(0);
    const withEnv = await cli(['queue', 'list'], { ...tls.env, LIFTOFF_CA_FILE: files.ca });
    expect(withEnv.code).toBe(0);
    // Another user's home, whose credentials file names the CA.
    const home = tempDir('liftoff-tls-user-');
    mkdirSync(join(home, '.config', 'liftoff'), { recursive: true });
    writeFileSync(
      join(home, '.config', 'liftoff', 'credentials'),
      `url: ${tls.url}\napi_key: ${tls.env.LIFTOFF_API_KEY}\nca_file: ${files.ca}\n`,
      { mode: 0o600 },
    );
    const withConfig = await cli(['queue', 'list'], { HOME: home });
    expect(withConfig.code).toBe(0);
  });

  it('fails without the CA with a named error that says how to fix it, and never sends the request', async () => {
    const r = await cli(['queue', 'list'], tls.env);
    expect(r.code).toBe(2);
    expect(r.output).toContain('The TLS certificate of the Liftoff server at https://127.0.0.1');
    expect(r.output).toContain('--ca-file');
    const client = new LiftoffClient({ baseUrl: tls.url, apiKey: tls.env.LIFTOFF_API_KEY as string });
    const e = await client.whoami().catch((x: unknown) => x);
    expect(e).toBeInstanceOf(LiftoffError);
    expect((e as LiftoffError).code).toBe('TLS_UNTRUSTED');
    // A CA that did not sign the certificate does not help.
    const other = new LiftoffClient({
      baseUrl: tls.url,
      apiKey: tls.env.LIFTOFF_API_KEY as string,
      ca: (await generate([{ name: 'commonName', value: 'other CA' }], { keyType: 'ec' })).cert,
    });
    expect(((await other.whoami().catch((x: unknown) => x)) as LiftoffError).code).toBe('TLS_UNTRUSTED');
  });

  it('lets a launch agent register over https with --ca-file, and refuses it without', async () => {
    const key = (
      await new LiftoffClient({
        baseUrl: tls.url,
        apiKey: tls.env.LIFTOFF_API_KEY as string,
        ca: readFileSync(files.ca, 'utf8'),
      }).createKey({ name: 'tls-agent', role: 'agent', entity: 'default' })
    ).key;
    const env = { ...tls.env, LIFTOFF_API_KEY: key };
    const dataDir = join(tls.env.HOME as string, 'agent');
    const refused = await cli(['launch-agent', '--name', 'tls-a', '--data-dir', dataDir, '-q', 'default'], env);
    expect(refused.code).toBe(2);
    expect(refused.output).toContain('is not trusted');
    const agent = liftoff(
      ['launch-agent', '--name', 'tls-a', '--data-dir', dataDir, '-q', 'default', '--ca-file', files.ca],
      env,
    );
    await agent.waitFor(/agent tls-a \(id \S+\) polling default/, 30_000);
    const listed = await cli(['agents', 'list', '--ca-file', files.ca], tls.env);
    expect(listed.output).toMatch(/tls-a.*POLLING/);
    agent.kill('SIGTERM');
    await agent.exited;
  });

  it('refuses --tls-cert without --tls-key, and an unreadable certificate, naming the flag', async () => {
    const home = tempDir('liftoff-tls-');
    const r = await cli(['server', '--port', '0', '--data-dir', join(home, 'd'), '--tls-cert', files.cert], {
      HOME: home,
    });
    expect(r.code).toBe(2);
    expect(r.output).toContain('--tls-cert and --tls-key go together');
    const missing = await cli(
      [
        'server',
        '--port',
        '0',
        '--data-dir',
        join(home, 'd'),
        '--tls-cert',
        join(home, 'nope.pem'),
        '--tls-key',
        files.key,
      ],
      { HOME: home },
    );
    expect(missing.code).toBe(2);
    expect(missing.output).toContain('--tls-cert');
    expect(missing.output).toContain('ENOENT');
  });

  it('warns when listening beyond loopback without TLS, and not on loopback or with TLS', async () => {
    const open = await server(['--host', '0.0.0.0']);
    await open.proc.waitFor(/without TLS/);
    const local = await server([]);
    const secured = await server(['--host', '0.0.0.0', '--tls-cert', files.cert, '--tls-key', files.key]);
    // Both have started and logged what they log at start (the warning comes right after listening).
    expect((await cli(['queue', 'list'], local.env)).code).toBe(0);
    expect((await cli(['queue', 'list', '--ca-file', files.ca], secured.env)).code).toBe(0);
    expect(local.proc.output).not.toContain('without TLS');
    expect(secured.proc.output).not.toContain('without TLS');
  });

  it('runs liftoff up over https with a self-signed certificate: the embedded agent trusts it', async () => {
    const home = tempDir('liftoff-tls-up-');
    chmodSync(home, 0o711);
    const up = liftoff(
      ['up', '--port', '0', '--data-dir', join(home, 'data'), '--tls-cert', files.selfCert, '--tls-key', files.selfKey],
      { HOME: home },
    );
    await up.waitFor(/Liftoff is up at https:\/\/127\.0\.0\.1:\d+/, 30_000);
    // The lines after the first may arrive in a later chunk of stdout.
    await up.waitFor(/agent:\s+\S+ polling queue "default"/, 10_000);
    up.kill('SIGTERM');
    await up.exited;
  });
});
