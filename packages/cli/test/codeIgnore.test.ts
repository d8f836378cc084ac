import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { Parser } from 'tar';
import { packDirectory, uploadCode } from '../src/commands/launchRun.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function tree(files: Record<string, string>): string {
  const root = mkdtempSync(join(tmpdir(), 'liftoff-ignore-'));
  dirs.push(root);
  for (const [rel, text] of Object.entries(files)) {
    mkdirSync(dirname(join(root, rel)), { recursive: true });
    writeFileSync(join(root, rel), text);
  }
  return root;
}

/** The files (not directories) of a packed archive, sorted. */
async function filesOf(archive: Buffer): Promise<string[]> {
  const names: string[] = [];
  await new Promise<void>((resolve, reject) => {
    const parser = new Parser({
      onReadEntry: (e) => {
        if (e.type === 'File') names.push(e.path.replace(/^\.\//, ''));
        e.resume();
      },
    });
    parser.on('end', resolve).on('error', reject);
    Readable.from([archive]).pipe(parser);
  });
  return names.sort();
}

/** Issue 17: `liftoff launch --code` leaves out what .gitignore and .liftoffignore exclude. */
describe('the code archive of launch --code', () => {
  it('honours .gitignore and .liftoffignore at every level, with re-includes, and always skips .git and venvs', async () => {
    const root = tree({
      'train.py': 'print(1)\n',
      '.gitignore': 'data/\n*.ckpt\nlogs\n',
      '.liftoffignore': '!keep.ckpt\nscratch.txt\n',
      'data/big.bin': 'x',
      'model.ckpt': 'x',
      'keep.ckpt': 'x',
      'scratch.txt': 'x',
      'logs/run.log': 'x',
      'src/util.py': 'x',
      'src/.gitignore': '/generated.py\n',
      'src/generated.py': 'x',
      'src/deep/generated.py': 'x',
      '.git/HEAD': 'ref\n',
      '.venv/bin/python': 'x',
      'pkg/node_modules/m/index.js': 'x',
    });
    expect(await filesOf(await packDirectory(root))).toEqual([
      '.gitignore',
      '.liftoffignore',
      'keep.ckpt',
      'src/.gitignore',
      'src/deep/generated.py', // "/generated.py" is anchored to src/
      'src/util.py',
      'train.py',
    ]);
  });

  it('packs everything but the always-skipped directories when there is no ignore file', async () => {
    const root = tree({ 'a.py': 'x', 'data/b.csv': 'x', '__pycache__/a.pyc': 'x' });
    expect(await filesOf(await packDirectory(root))).toEqual(['a.py', 'data/b.csv']);
  });
});

describe('a code archive over the server limit', () => {
  it('is refused with the limit, the archive size and how to leave files out', async () => {
    const { startServer } = await import('@liftoff/server');
    const { LiftoffClient, readCredentials } = await import('@liftoff/core');
    const home = tree({});
    const server = await startServer({
      host: '127.0.0.1',
      port: 0,
      dataDir: join(home, 'data'),
      env: { HOME: home },
      settings: { archiveLimits: { compressedBytes: 64 * 1024, uncompressedBytes: 1 << 30, entries: 1000 } },
    });
    try {
      const key = readCredentials(join(home, '.config', 'liftoff', 'credentials'))?.api_key ?? '';
      const client = new LiftoffClient({ baseUrl: server.url, apiKey: key });
      const code = tree({ 'train.py': 'x', 'data/blob.bin': randomBytes(300 * 1024).toString('base64') });
      const refused = await uploadCode(client, code, 'default').then(
        () => undefined,
        (e: unknown) => e as { code: string; message: string },
      );
      expect(refused?.code).toBe('PAYLOAD_TOO_LARGE');
      expect(refused?.message).toContain("larger than the server's limit of 64 KiB");
      expect(refused?.message).toMatch(/is 0\.\d MiB packed\. Leave data and checkpoints out with a \.liftoffignore/);
      // With the data left out it fits.
      writeFileSync(join(code, '.liftoffignore'), 'data/\n');
      expect(await uploadCode(client, code, 'default')).toMatch(/\w+/);
    } finally {
      await server.close();
    }
  });
});
