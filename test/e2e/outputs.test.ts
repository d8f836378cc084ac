import { createHash } from 'node:crypto';
import { existsSync, lstatSync, readFileSync, readdirSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BUSYBOX, cleanupDockerAfter, dockerAvailable } from '../helpers/docker.js';
import { codeDir } from '../helpers/jobs.js';
import {
  agentConfig,
  cleanupAll,
  cli,
  outputOf,
  sleep,
  startAgent,
  startServer,
  tempDir,
  until,
  type TestServer,
} from '../helpers/procs.js';

const runIdOf = (output: string): string => /run (\S+) of item/.exec(output)?.[1] ?? '';
const seq = (n: number) => Array.from({ length: n }, (_, i) => `${i + 1}\n`).join('');
const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

/** Issue 17, outputs end to end: real server and agent processes, jobs writing to $LIFTOFF_OUTPUT_DIR. */
describe('run outputs', () => {
  let server: TestServer;
  const agents: string[] = [];

  beforeAll(async () => {
    server = await startServer();
    const agent = await startAgent(server, {
      queues: ['default'],
      maxJobs: 2,
      config: agentConfig(tempDir(), 'stopped_run_timeout: 20\noutputs-max-mib: 8\n'),
    });
    agents.push(agent.name);
    await server.client.createQueue('default', { name: 'small', resource: 'local-process' });
    const small = await startAgent(server, {
      queues: ['small'],
      config: agentConfig(tempDir(), 'outputs-max-mib: 1\n'),
    });
    agents.push(small.name);
  });
  afterAll(cleanupAll);

  it('uploads what a local-process job wrote, skips its symlinks, and downloads it byte for byte', async () => {
    const job = codeDir({
      'main.mjs': `
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
const out = process.env.LIFTOFF_OUTPUT_DIR;
mkdirSync(join(out, 'model'));
const weights = Buffer.alloc(3 * 1024 * 1024 + 5);
for (let i = 0; i < weights.length; i++) weights[i] = (i * 7) % 251;
writeFileSync(join(out, 'model', 'weights.bin'), weights);
writeFileSync(join(out, 'metrics.json'), JSON.stringify({ accuracy: 0.93 }));
symlinkSync('/etc/passwd', join(out, 'passwd'));
console.log('saved to', out);
`,
    });
    const r = await cli(['launch', '--code', job, '-E', 'node main.mjs', '--wait'], server.env);
    expect(r.code).toBe(0);
    expect(r.output).toContain('skipped "passwd": a symlink (only regular files are uploaded)');
    expect(r.output).toMatch(/outputs uploaded: 2 file\(s\), 3\.0 MiB/);
    const run = runIdOf(r.output);
    const listed = await cli(['runs', 'outputs', run], server.env);
    expect(listed.output).toMatch(/model\/weights\.bin\s+3\.0 MiB/);
    const dir = tempDir('liftoff-download-');
    const got = await cli(['runs', 'outputs', run, '--download', dir], server.env);
    expect(got.code).toBe(0);
    const weights = Buffer.alloc(3 * 1024 * 1024 + 5);
    for (let i = 0; i < weights.length; i++) weights[i] = (i * 7) % 251;
    expect(readFileSync(join(dir, 'model', 'weights.bin')).equals(weights)).toBe(true);
    expect(JSON.parse(readFileSync(join(dir, 'metrics.json'), 'utf8'))).toEqual({ accuracy: 0.93 });
    expect(existsSync(join(dir, 'passwd'))).toBe(false);
    // A folder of the download dir that is a symlink is never written through.
    const trap = tempDir('liftoff-download-');
    const elsewhere = tempDir('liftoff-elsewhere-');
    symlinkSync(elsewhere, join(trap, 'model'));
    const refused = await cli(['runs', 'outputs', run, '--download', trap], server.env);
    expect(refused.code).toBe(2);
    expect(refused.output).toContain('is a symlink; output "model/weights.bin" is not written through it');
    expect(readdirSync(elsewhere)).toEqual([]);
    // The agent removed the dir (and unmounted its tmpfs) once the outputs were up.
    expect(existsSync(join(server.home, 'agents', agents[0] as string, 'job-outputs', run))).toBe(false);
  }, 120_000);

  it('fails the upload of a dir past its cap with a note, keeps the run state, and lists nothing', async () => {
    const job = codeDir({
      'main.mjs': `
import { writeFileSync } from 'node:fs';
try {
  writeFileSync(process.env.LIFTOFF_OUTPUT_DIR + '/big.bin', Buffer.alloc(2 * 1024 * 1024));
} catch (e) {
  console.log('write failed:', e.code);
}
`,
    });
    const r = await cli(['launch', '-q', 'small', '--code', job, '-E', 'node main.mjs', '--wait'], server.env);
    expect(r.code).toBe(0);
    const run = runIdOf(r.output);
    const log = r.output;
    expect(log).toContain('write failed: ENOSPC');
    expect(log).toMatch(/outputs not uploaded: LIFTOFF_OUTPUT_DIR (filled|holds [\d.]+ MiB, over) its cap of 1\.0 MiB/);
    expect(log).toContain("raise the agent's outputs-max-mib");
    const detail = await server.client.getRun(run);
    expect([detail.status, detail.exit_code]).toEqual(['finished', 0]);
    expect((await server.client.listOutputs(run)).outputs).toEqual([]);
  }, 120_000);

  describe.skipIf(!dockerAvailable())('container jobs', () => {
    beforeAll(async () => {
      await server.client.createQueue('default', { name: 'box', resource: 'local-container' });
      const agent = await startAgent(server, {
        queues: ['box'],
        maxJobs: 2,
        config: agentConfig(tempDir(), 'stopped_run_timeout: 20\noutputs-max-mib: 8\n'),
      });
      agents.push(agent.name);
      cleanupDockerAfter(() => agents);
    });

    it('uploads what a container job wrote as uid 1000', async () => {
      const script = 'seq 1 20000 > "$LIFTOFF_OUTPUT_DIR/seq.txt" && id -u > "$LIFTOFF_OUTPUT_DIR/uid"';
      const r = await cli(
        ['launch', '-q', 'box', '--image', BUSYBOX, '-E', 'sh -c', '--wait', '--', script],
        server.env,
      );
      expect(r.code).toBe(0);
      const run = runIdOf(r.output);
      const dir = tempDir('liftoff-download-');
      expect((await cli(['runs', 'outputs', run, '--download', dir], server.env)).code).toBe(0);
      expect(readFileSync(join(dir, 'seq.txt'), 'utf8')).toBe(seq(20000));
      expect(readFileSync(join(dir, 'uid'), 'utf8')).toBe('1000\n');
    }, 120_000);

    it('keeps a checkpoint a container job writes on SIGTERM: stopped, with its own exit code', async () => {
      const script =
        'trap \'seq 1 5000 > "$LIFTOFF_OUTPUT_DIR/ckpt.txt"; echo saved; exit 3\' TERM; echo ready; while true; do sleep 0.1; done';
      const launched = await cli(
        ['launch', '-q', 'box', '--image', BUSYBOX, '-E', 'sh -c', '--json', '--', script],
        server.env,
      );
      const itemId = (JSON.parse(launched.output) as { id: string }).id;
      const runId = await until(async () => (await server.client.getItem(itemId)).run_id ?? undefined, 60_000);
      await until(async () => ((await outputOf(server.client, runId)).includes('ready') ? true : undefined), 60_000);
      await server.client.cancelRun(runId);
      const ended = await until(async () => {
        const r = await server.client.getRun(runId);
        return r.status === 'stopped' ? r : undefined;
      }, 60_000);
      expect(ended.exit_code).toBe(3);
      const outputs = (await server.client.listOutputs(runId)).outputs;
      expect(outputs.map((o) => [o.path, o.size, o.sha256])).toEqual([['ckpt.txt', seq(5000).length, sha(seq(5000))]]);
      const dir = tempDir('liftoff-download-');
      expect((await cli(['runs', 'outputs', runId, '--download', dir], server.env)).code).toBe(0);
      expect(readFileSync(join(dir, 'ckpt.txt'), 'utf8')).toBe(seq(5000));
      expect(lstatSync(join(dir, 'ckpt.txt')).isFile()).toBe(true);
      await sleep(0);
    }, 120_000);
  });
});
