import { spawn, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LiftoffClient } from '@liftoff/core';
import { cleanupAll, startServer, tempDir, type TestServer } from '../../../test/helpers/procs.js';

/** Debian's python3: the helper must run on a stock interpreter with nothing installed. */
const PYTHON = '/usr/bin/python3';
const HELPER = fileURLToPath(new URL('../helpers/liftoff_outputs.py', import.meta.url));
const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

interface Done {
  code: number | null;
  stderr: string;
}

/** Runs the helper with a run's upload token and nothing else of the agent's (no key, no agent id). */
function helper(args: string[], env: Record<string, string>, onStart?: (pid: number) => void): Promise<Done> {
  return new Promise((resolve, reject) => {
    const child = spawn(PYTHON, [HELPER, ...args], {
      env: { PATH: '/usr/bin:/bin', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdout.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    if (child.pid && onStart) onStart(child.pid);
    child.on('close', (code) => resolve({ code, stderr }));
  });
}

/**
 * The outputs helper for pods (packages/agent/helpers/liftoff_outputs.py; docs/outputs.md), run with Debian's
 * python3 against a real `liftoff server` process: what it uploads, what it skips, the resume from the server's
 * offset, `run --` forwarding SIGTERM, and clear non-zero exits when the server refuses.
 */
describe.skipIf(!existsSync(PYTHON))('liftoff_outputs.py against a real server', () => {
  let server: TestServer;
  let c: LiftoffClient;
  let n = 0;

  /** A live run held by a registered agent, its upload token, and the helper's environment for it. */
  async function liveRun(dir: string) {
    const agent = `helper-${n++}`;
    await c.registerAgent({
      id: agent,
      name: agent,
      entity: 'default',
      hostname: 'h',
      queues: ['default'],
      version: 't',
      max_jobs: 1,
    });
    const item = await c.push('default', 'default', {
      spec: { source: { type: 'git', url: 'https://git.example.com/x.git' }, entry_point: ['true'] },
    });
    await c.poll(agent, { queues: ['default'], max_items: 1, wait_ms: 0 });
    const id = (await c.ackItem(item.id, agent)).id;
    await c.reportRun(id, { agent_id: agent, state: 'running' });
    const { token } = await c.createUploadToken(id, { agent_id: agent });
    const env = {
      LIFTOFF_UPLOAD_URL: server.url,
      LIFTOFF_UPLOAD_TOKEN: token,
      LIFTOFF_RUN_ID: id,
      LIFTOFF_OUTPUT_DIR: dir,
    };
    return { agent, id, token, env };
  }

  const download = async (run: string, path: string) => {
    const parts: Buffer[] = [];
    for await (const p of await c.downloadOutput(run, path)) parts.push(p);
    return Buffer.concat(parts);
  };

  beforeAll(async () => {
    server = await startServer({ flags: ['--max-run-outputs-mib', '1'] });
    c = server.client;
  });
  afterAll(cleanupAll);

  it('uploads regular files and skips a symlink, a FIFO and a name the server refuses, each with a note', async () => {
    const dir = tempDir('liftoff-helper-out-');
    const model = Buffer.from('weights '.repeat(4000));
    writeFileSync(join(dir, 'model.pt'), model);
    mkdirSync(join(dir, 'ckpt', 'epoch1'), { recursive: true });
    writeFileSync(join(dir, 'ckpt', 'epoch1', 'last.pt'), 'step 1');
    writeFileSync(join(dir, 'empty.txt'), '');
    const secret = join(tempDir('liftoff-helper-secret-'), 'key');
    writeFileSync(secret, 'not yours');
    symlinkSync(secret, join(dir, 'link.pt'));
    execFileSync('mkfifo', [join(dir, 'pipe')]);
    writeFileSync(join(dir, 'back\\slash'), 'x');
    const r = await liveRun(dir);
    const done = await helper(['upload'], r.env);
    expect(done.code, done.stderr).toBe(0);
    expect(done.stderr).toContain('skipped "link.pt": a symlink');
    expect(done.stderr).toContain('skipped "pipe": not a regular file');
    expect(done.stderr).toContain('skipped "back\\\\slash": the server refuses that name (it holds a backslash)');
    expect(done.stderr).toContain('outputs uploaded: 3 file(s)');
    const listed = await c.listOutputs(r.id);
    expect(listed.outputs.map((o) => [o.path, o.sha256])).toEqual([
      ['ckpt/epoch1/last.pt', sha('step 1')],
      ['empty.txt', sha('')],
      ['model.pt', sha(model)],
    ]);
    expect((await download(r.id, 'model.pt')).equals(model)).toBe(true);
    // Committed once: a second upload is refused, clearly and with a non-zero exit.
    const again = await helper(['upload'], r.env);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/outputs not uploaded: CONFLICT: .*already committed.*nothing is listed/);
  });

  it('resumes a file from the offset the server holds', async () => {
    const dir = tempDir('liftoff-helper-resume-');
    const data = Buffer.alloc(300_000, 7);
    writeFileSync(join(dir, 'big.bin'), data);
    const r = await liveRun(dir);
    // The first 100,000 bytes arrived earlier (the agent's key here; the same upload either way).
    const u = await c.startOutputUpload(r.id, {
      agent_id: r.agent,
      path: 'big.bin',
      size: data.length,
      sha256: sha(data),
    });
    await c.putOutputBytes(r.id, u.upload_id, r.agent, 0, [data.subarray(0, 100_000)], 100_000);
    const done = await helper(['upload'], r.env);
    expect(done.code, done.stderr).toBe(0);
    expect((await download(r.id, 'big.bin')).equals(data)).toBe(true);
  });

  it('run -- forwards SIGTERM, uploads the checkpoint the command wrote, and exits with its code', async () => {
    const dir = tempDir('liftoff-helper-run-');
    const r = await liveRun(dir);
    const script = [
      'import os, signal, sys, time',
      'def stop(*_):',
      '    open(os.path.join(os.environ["LIFTOFF_OUTPUT_DIR"], "checkpoint.pt"), "w").write("saved on SIGTERM")',
      '    sys.exit(3)',
      'signal.signal(signal.SIGTERM, stop)',
      'open(os.path.join(os.environ["LIFTOFF_OUTPUT_DIR"], "started"), "w").write("1")',
      'time.sleep(120)',
    ].join('\n');
    let pid = 0;
    const running = helper(['run', '--', PYTHON, '-c', script], r.env, (p) => (pid = p));
    for (let i = 0; i < 200 && !existsSync(join(dir, 'started')); i++) await new Promise((res) => setTimeout(res, 50));
    process.kill(pid, 'SIGTERM');
    const done = await running;
    expect(done.code, done.stderr).toBe(3);
    expect(done.stderr).toContain('outputs uploaded: 2 file(s)');
    expect((await download(r.id, 'checkpoint.pt')).toString()).toBe('saved on SIGTERM');
  });

  it('a refusal mid-way (over the run limit) ends with a non-zero exit, a clear message and nothing listed', async () => {
    const dir = tempDir('liftoff-helper-limit-');
    writeFileSync(join(dir, 'a.bin'), Buffer.alloc(600 * 1024));
    writeFileSync(join(dir, 'b.bin'), Buffer.alloc(600 * 1024));
    const r = await liveRun(dir);
    const done = await helper(['upload'], r.env);
    expect(done.code).toBe(1);
    expect(done.stderr).toMatch(/outputs not uploaded: OUTPUTS_TOO_LARGE: Run .* over the server's limit of 1 MiB/);
    expect(done.stderr).toContain('nothing is listed');
    expect((await c.listOutputs(r.id)).outputs).toEqual([]);
  });

  it('a token of an ended run, or none, or another run id: non-zero with the reason', async () => {
    const dir = tempDir('liftoff-helper-ended-');
    writeFileSync(join(dir, 'a'), 'a');
    const r = await liveRun(dir);
    const other = await liveRun(dir);
    const cross = await helper(['upload'], { ...other.env, LIFTOFF_RUN_ID: r.id });
    expect(cross.code).toBe(1);
    expect(cross.stderr).toContain('NOT_FOUND');
    await c.reportRun(r.id, { agent_id: r.agent, state: 'finished', exit_code: 0 });
    const ended = await helper(['upload'], r.env);
    expect(ended.code).toBe(1);
    expect(ended.stderr).toContain('UPLOAD_TOKEN_REFUSED');
    const none = await helper(['upload'], { ...r.env, LIFTOFF_UPLOAD_TOKEN: '' });
    expect(none.code).toBe(2);
    expect(none.stderr).toContain('LIFTOFF_UPLOAD_TOKEN not set');
    expect((await c.listOutputs(r.id)).outputs).toEqual([]);
  });

  it('a server that cannot be reached: non-zero after its retries, naming the address', async () => {
    const dir = tempDir('liftoff-helper-down-');
    writeFileSync(join(dir, 'a'), 'a');
    const r = await liveRun(dir);
    const done = await helper(['upload'], {
      ...r.env,
      LIFTOFF_UPLOAD_URL: 'http://127.0.0.1:9',
      LIFTOFF_UPLOAD_ATTEMPTS: '2',
    });
    expect(done.code).toBe(1);
    expect(done.stderr).toMatch(/cannot reach the Liftoff server at 127\.0\.0\.1:9 .*gave up after 2 tries/);
  });
});
