// The Slurm path (needs the one-node Slurm of scripts/services/slurm.sh and root): push → the job's first
// instruction on a slurm queue, next to a plain `sbatch` of the same script timed from the spawn of sbatch.
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { packDirectory } from '@liftoff/cli';
import { fmtMs, percentiles, ratio, sleep, spawnLiftoff, startServer, tempDir } from './lib.mjs';

const SCRIPT = 'date +%s%N\n';

function slurmReady() {
  const r = spawnSync('sinfo', ['-h', '-N', '-o', '%T'], { encoding: 'utf8' });
  return (
    process.getuid?.() === 0 &&
    r.status === 0 &&
    /idle|mixed/.test(r.stdout) &&
    spawnSync('id', ['-u', 'liftoff-tester']).status === 0
  );
}

async function waitEnded(client, id) {
  for (;;) {
    const item = await client.getItem(id);
    if (['finished', 'failed', 'stopped'].includes(item.state)) return item;
    await sleep(20);
  }
}

/** `sbatch` of the same one-line script as the Liftoff job (as the same user): spawn → its first instruction. */
async function plainSbatch(dir, i) {
  const out = join(dir, `plain-${i}.out`);
  const t0 = Date.now();
  execFileSync('sbatch', ['--parsable', '--uid=liftoff-tester', `--output=${out}`, '--export=NONE', `--chdir=${dir}`], {
    input: `#!/bin/bash\n${SCRIPT}`,
  });
  for (;;) {
    const text = existsSync(out) ? readFileSync(out, 'utf8').trim() : '';
    if (/^\d{19}$/.test(text)) return Number(BigInt(text) / 1_000_000n) - t0;
    await sleep(20);
  }
}

const skipped = (why) => ({
  tables: [{ title: 'Slurm path', how: '-', columns: ['-'], rows: [[`skipped: ${why}`]], notes: [] }],
  charts: [],
  json: { skipped: true },
});

export default {
  name: 'slurm',
  title: 'Slurm path',
  async run({ quick }) {
    if (!slurmReady()) return skipped('no Slurm, or not root (run scripts/services/slurm.sh as root)');
    const samples = quick ? 2 : 10;
    const server = await startServer();
    const { client } = server;
    const base = tempDir('liftoff-bench-slurm-');
    chmodSync(base, 0o1777);
    const config = join(base, 'agent.yaml');
    writeFileSync(
      config,
      `run-as: {user: liftoff-tester}\nslurm: {transport: local, workdir-root: ${join(base, 'runs')}, poll-seconds: 1}\n`,
    );
    await client.createQueue('default', { name: 'slurm', resource: 'slurm' });
    const agent = spawnLiftoff(
      [
        'launch-agent',
        '--name',
        'bench-slurm',
        '--data-dir',
        join(server.home, 'agents', 'slurm'),
        '-q',
        'slurm',
        '-c',
        config,
      ],
      server.env,
    );
    await agent.waitFor(/polling /);
    const code = tempDir();
    writeFileSync(join(code, 'job.sh'), SCRIPT);
    const archive = await client.uploadArchive(await packDirectory(code));
    const liftoff = [];
    const plain = [];
    for (let i = 0; i < samples + 1; i++) {
      const item = await client.push('default', 'slurm', {
        spec: { source: { type: 'code', archive_id: archive.id }, entry_point: ['bash', 'job.sh'] },
      });
      const ended = await waitEnded(client, item.id);
      const ns = /^(\d{19})$/m.exec((await client.readLogs(ended.run_id)).data)?.[1];
      const p = await plainSbatch(base, i);
      if (i > 0 && ns) {
        liftoff.push(Number(BigInt(ns) / 1_000_000n) - item.created_at);
        plain.push(p);
      }
    }
    const l = percentiles(liftoff);
    const d = percentiles(plain);
    return {
      tables: [
        {
          title: 'Slurm path',
          how: `Code job \`bash job.sh\` (\`date +%s%N\`) on a slurm queue of the one-node Slurm 22.05 of scripts/services/slurm.sh, ${samples} times after a warm-up, one at a time: push accepted → the job's first instruction (claim, code fetch and copy to the run dir, env file, sbatch, Slurm's scheduling), next to \`sbatch --export=NONE\` of the same script as the same user, timed from the spawn of sbatch.`,
          columns: ['what', 'Liftoff', 'plain sbatch', 'ratio'],
          rows: [
            [
              'push → job running, p50 / p95',
              `${fmtMs(l.p50)} / ${fmtMs(l.p95)}`,
              `${fmtMs(d.p50)} / ${fmtMs(d.p95)}`,
              ratio(l.p50, d.p50),
            ],
          ],
          notes: [],
        },
      ],
      charts: [],
      json: { liftoff: l, sbatch: d },
    };
  },
};
