import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { packDirectory } from '@liftoff/cli';
import { codeDir } from '../helpers/jobs.js';
import {
  agentConfig,
  cleanupAll,
  cli,
  liftoff,
  outputOf,
  startAgent,
  startServer,
  tempDir,
  until,
  type TestServer,
} from '../helpers/procs.js';
import { slurmAvailable } from '../helpers/slurm.js';

/**
 * The SSH transport against the sshd of scripts/services/slurm.sh on 127.0.0.1:2222: the agent logs in as the
 * ordinary user liftoff-slurm with a key of this test, pinned host key, and drives sbatch/squeue/scancel there;
 * code and env file travel over ssh, the output is read with `tail -c +N`.
 */
const PORT = Number(process.env.LIFTOFF_TEST_SSHD_PORT ?? 2222);
const available = slurmAvailable();
const AUTHORIZED = '/var/lib/liftoff-slurm/ssh/liftoff-slurm';

describe.skipIf(!available)('the Slurm runner over ssh to a login node', () => {
  let server: TestServer;
  let keys: string;
  let root: string;
  const yaml = (extra: string) =>
    [
      'stopped_run_timeout: 5',
      `slurm: {transport: ssh, host: 127.0.0.1, port: ${PORT}, user: liftoff-slurm, key: ${join(keys, 'id')}, known-hosts: ${join(keys, 'known_hosts')}, workdir-root: ${root}, poll-seconds: 0.5${extra}}`,
      '',
    ].join('\n');

  beforeAll(async () => {
    keys = tempDir('liftoff-ssh-keys-');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(keys, 'id')]);
    writeFileSync(AUTHORIZED, readFileSync(join(keys, 'id.pub')));
    chmodSync(AUTHORIZED, 0o644);
    const hostKey = readFileSync('/etc/ssh/ssh_host_ed25519_key.pub', 'utf8').split(' ').slice(0, 2).join(' ');
    writeFileSync(join(keys, 'known_hosts'), `[127.0.0.1]:${PORT} ${hostKey}\n`);
    // The shared filesystem path, owned by the login user (who creates the run dirs there).
    const base = tempDir('liftoff-ssh-root-');
    chmodSync(base, 0o755);
    root = join(base, 'runs');
    mkdirSync(root);
    const uid = Number(execFileSync('id', ['-u', 'liftoff-slurm']).toString());
    chownSync(root, uid, uid);
    server = await startServer();
    await server.client.createQueue('default', { name: 'ssh', resource: 'slurm' });
  }, 60_000);
  afterAll(async () => {
    await cleanupAll();
    rmSync(AUTHORIZED, { force: true });
    // liftoff-slurm exists for this suite alone: a failed case leaves nothing of its in Slurm.
    execFileSync('scancel', ['-u', 'liftoff-slurm']);
  });

  it('submits over ssh as the login user: hostile args intact, exit 3 mapped; a running job streams and is cancelled', async () => {
    await startAgent(server, { queues: ['ssh'], name: 'ssh-agent', config: agentConfig(keys, yaml('')) });
    const job = `echo "uid=$(id -un) home=$HOME"\nfor a in "$@"; do printf '<%s>\\n' "$a"; done\nexit \${EXIT:-0}\n`;
    const hostile = ["it's", '$(touch /tmp/liftoff-ssh-pwned)', '`id`', 'a b\nc', '"q"', ';|&'];
    const archive = await server.client.uploadArchive(await packDirectory(codeDir({ 'job.sh': job })));
    const item = await server.client.push('default', 'ssh', {
      spec: {
        source: { type: 'code', archive_id: archive.id },
        entry_point: ['bash', 'job.sh'],
        args: hostile,
        env: { EXIT: '3' },
      },
    });
    const itemId = item.id;
    const runId = await until(async () => (await server.client.getItem(itemId)).run_id ?? undefined);
    const run = await until(async () => {
      const cur = await server.client.getRun(runId);
      return ['finished', 'failed', 'stopped'].includes(cur.status) ? cur : undefined;
    }, 60_000);
    expect(run).toMatchObject({ status: 'failed', exit_code: 3 });
    const out = await outputOf(server.client, runId);
    expect(out).toContain(`uid=liftoff-slurm home=${root}/${runId}/src\n`);
    expect(out).toContain(hostile.map((a) => `<${a}>\n`).join(''));
    expect((await server.client.readLogs(runId)).data).toMatch(/slurm job \d+ submitted on liftoff-slurm@127\.0\.0\.1/);
    expect(() => readFileSync('/tmp/liftoff-ssh-pwned')).toThrow();
    expect(() => readFileSync(join(root, runId, 'env'))).toThrow(/ENOENT/);

    // Live output read with tail -c +N over ssh, then scancel over ssh; the job's SIGTERM trap runs.
    const waiting = `trap 'echo "got TERM"; exit 143' TERM\necho ready\nwhile :; do sleep 0.1; done\n`;
    const a2 = await server.client.uploadArchive(await packDirectory(codeDir({ 'job.sh': waiting })));
    const i2 = await server.client.push('default', 'ssh', {
      spec: { source: { type: 'code', archive_id: a2.id }, entry_point: ['bash', 'job.sh'] },
    });
    const r2 = await until(async () => (await server.client.getItem(i2.id)).run_id ?? undefined);
    await until(async () => ((await outputOf(server.client, r2)).includes('ready\n') ? true : undefined), 30_000);
    // The state comes with the next squeue tick (output may be read first).
    await until(async () => ((await server.client.getRun(r2)).status === 'running' ? true : undefined));
    await server.client.cancelRun(r2);
    const stopped = await until(async () => {
      const cur = await server.client.getRun(r2);
      return cur.status === 'stopped' || cur.status === 'failed' ? cur : undefined;
    }, 30_000);
    expect(stopped.status).toBe('stopped');
    expect(await outputOf(server.client, r2)).toContain('got TERM');
  });

  it('fetches what the job wrote to $LIFTOFF_OUTPUT_DIR over ssh: regular files only, links named; past the cap nothing', async () => {
    // The agent of the case above still serves queue "ssh"; one with a 1 MiB cap serves "ssh-cap".
    await server.client.createQueue('default', { name: 'ssh-cap', resource: 'slurm' });
    await startAgent(server, {
      queues: ['ssh-cap'],
      name: 'ssh-cap-agent',
      config: agentConfig(keys, `outputs-max-mib: 1\n${yaml('')}`),
    });
    const job = [
      'case "$LIFTOFF_OUTPUT_DIR" in */outputs) ;; *) exit 9;; esac',
      'mkdir "$LIFTOFF_OUTPUT_DIR/ckpt"',
      'seq 1 3000 > "$LIFTOFF_OUTPUT_DIR/ckpt/seq.txt"',
      'ln -s /etc/shadow "$LIFTOFF_OUTPUT_DIR/shadow"',
      'ln "$LIFTOFF_OUTPUT_DIR/ckpt/seq.txt" "$LIFTOFF_OUTPUT_DIR/hard.txt"',
      'mkfifo "$LIFTOFF_OUTPUT_DIR/fifo"',
      '[ -z "$BIG" ] || head -c 3145728 /dev/zero > "$LIFTOFF_OUTPUT_DIR/big.bin"',
      '',
    ].join('\n');
    const archive = await server.client.uploadArchive(await packDirectory(codeDir({ 'job.sh': job })));
    const launch = async (queue: string, env: Record<string, string>) => {
      const item = await server.client.push('default', queue, {
        spec: { source: { type: 'code', archive_id: archive.id }, entry_point: ['bash', 'job.sh'], env },
      });
      const runId = await until(async () => (await server.client.getItem(item.id)).run_id ?? undefined);
      // Ended with its outputs settled: the agent collects them before its final report.
      const run = await until(async () => {
        const cur = await server.client.getRun(runId);
        return ['finished', 'failed', 'stopped'].includes(cur.status) ? cur : undefined;
      }, 60_000);
      return { run, log: (await server.client.readLogs(runId)).data };
    };

    const { run, log } = await launch('ssh', {});
    expect(run).toMatchObject({ status: 'finished', exit_code: 0 });
    expect(log).toContain('outputs: skipped "shadow": a symlink');
    expect(log).toContain('outputs: skipped "fifo": not a regular file');
    // tar stores the second name of a hard-linked file as a link to the first.
    expect(log).toMatch(/outputs: skipped "(hard\.txt|ckpt\/seq\.txt)": a hard link/);
    const listed = (await server.client.listOutputs(run.id)).outputs.map((o) => o.path);
    expect(listed).toHaveLength(1);
    const dir = tempDir('liftoff-ssh-download-');
    expect((await cli(['runs', 'outputs', run.id, '--download', dir], server.env)).code).toBe(0);
    expect(readFileSync(join(dir, listed[0] as string), 'utf8')).toBe(
      Array.from({ length: 3000 }, (_, i) => `${i + 1}\n`).join(''),
    );
    // The staging dir on the agent's host is gone once uploaded.
    expect(readdirSync(join(server.home, 'agents', 'ssh-agent', 'outputs-staging'))).toEqual([]);

    const over = await launch('ssh-cap', { BIG: '1' });
    expect(over.run).toMatchObject({ status: 'finished', exit_code: 0 });
    expect(over.log).toContain('outputs not uploaded: LIFTOFF_OUTPUT_DIR holds more than its cap of 1.0 MiB');
    expect((await server.client.listOutputs(over.run.id)).outputs).toEqual([]);
  }, 180_000);

  it('refuses to start when ssh cannot log in, naming the cause', async () => {
    const p = liftoff(
      [
        'launch-agent',
        '-q',
        'ssh',
        '--name',
        'ssh-bad',
        '--data-dir',
        join(keys, 'bad'),
        '-c',
        agentConfig(keys, yaml('').replace(`port: ${PORT}`, 'port: 1')),
      ],
      server.env,
    );
    const { code } = await p.exited;
    expect(code).not.toBe(0);
    expect(p.output).toMatch(
      /Queue "ssh" runs slurm jobs, but: ssh to liftoff-slurm@127\.0\.0\.1 failed: .*(refused|Connection)/,
    );
  });
});
