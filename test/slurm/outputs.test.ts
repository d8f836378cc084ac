import { chmodSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { codeDir } from '../helpers/jobs.js';
import { agentConfig, cleanupAll, cli, startAgent, startServer, tempDir, type TestServer } from '../helpers/procs.js';
import { slurmAvailable } from '../helpers/slurm.js';

const available = slurmAvailable();
const runIdOf = (output: string): string => /run (\S+) of item/.exec(output)?.[1] ?? '';

/**
 * Issue 17 on Slurm (scripts/services/slurm.sh's one-node cluster, local transport): LIFTOFF_OUTPUT_DIR is
 * `<run dir>/outputs` on the shared filesystem, and the agent collects it after the job like any run's.
 */
describe.skipIf(!available)('run outputs on Slurm', () => {
  let server: TestServer;

  beforeAll(async () => {
    server = await startServer();
    const base = tempDir('liftoff-slurm-out-');
    chmodSync(base, 0o711);
    const config = agentConfig(
      base,
      `run-as: {user: liftoff-tester}\nslurm: {transport: local, workdir-root: ${join(base, 'runs')}, poll-seconds: 0.5}\n`,
    );
    await server.client.createQueue('default', { name: 'slurm-out', resource: 'slurm' });
    await startAgent(server, { queues: ['slurm-out'], config });
  }, 60_000);
  afterAll(cleanupAll);

  it('uploads what the job wrote to $LIFTOFF_OUTPUT_DIR on the shared filesystem, skipping its symlinks', async () => {
    const job = codeDir({
      'job.sh':
        'case "$LIFTOFF_OUTPUT_DIR" in */outputs) ;; *) exit 9;; esac\nmkdir "$LIFTOFF_OUTPUT_DIR/ckpt"\nseq 1 3000 > "$LIFTOFF_OUTPUT_DIR/ckpt/seq.txt"\nln -s /etc/shadow "$LIFTOFF_OUTPUT_DIR/shadow"\n',
    });
    const r = await cli(['launch', '-q', 'slurm-out', '--code', job, '-E', 'bash job.sh', '--wait'], server.env);
    expect(r.code).toBe(0);
    expect(r.output).toContain('skipped "shadow": a symlink');
    const run = runIdOf(r.output);
    const dir = tempDir('liftoff-download-');
    expect((await cli(['runs', 'outputs', run, '--download', dir], server.env)).code).toBe(0);
    expect(readFileSync(join(dir, 'ckpt', 'seq.txt'), 'utf8')).toBe(
      Array.from({ length: 3000 }, (_, i) => `${i + 1}\n`).join(''),
    );
    expect((await server.client.listOutputs(run)).outputs.map((o) => o.path)).toEqual(['ckpt/seq.txt']);
  }, 120_000);
});
