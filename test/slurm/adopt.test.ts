import { describe, expect, it } from 'vitest';
import { findUnrecordedJob } from '../../packages/agent/src/runners/slurm/adopt.js';
import type { CommandResult, Transport } from '../../packages/agent/src/runners/slurm/transport.js';

/**
 * Finding the job of a run whose agent died between sbatch and recording its id, with Slurm's answers scripted: the
 * real-cluster path is in slurm.test.ts (kill -9 case); here the answers a hostile cluster user could arrange.
 */
function scripted(answers: Record<string, string>): Transport & { calls: string[][] } {
  const calls: string[][] = [];
  return {
    describe: 'the test',
    calls,
    run(argv: readonly string[]): Promise<CommandResult> {
      calls.push([...argv]);
      const key =
        argv[0] === 'find' ? 'find' : argv.includes('-j') ? `squeue -j ${argv[argv.indexOf('-j') + 1]}` : 'squeue';
      return Promise.resolve({ code: 0, stdout: answers[key] ?? '', stderr: '' });
    },
    prepareRunDir: () => Promise.resolve(),
    readFrom: () => Promise.resolve(undefined),
    removeRunDir: () => Promise.resolve(),
    removeFile: () => Promise.resolve(),
  };
}

const want = {
  name: 'liftoff-run1',
  comment: ['liftoff-run-id:run1', 'liftoff-agent:agent1'],
  owner: { uid: 999, gid: 999 },
  ssh: false,
  runDir: '/shared/run1',
};

describe('finding an unrecorded Slurm job', () => {
  it('takes the job of this run, agent and job user, skipping same-named jobs of others', async () => {
    const t = scripted({
      squeue: [
        '41|1000|liftoff-run-id:run1 liftoff-agent:agent1', // another user named a job like ours
        '42|999|liftoff-run-id:run1 liftoff-agent:other', // another agent
        '43|999|liftoff-run-id:run1x liftoff-agent:agent1', // a prefix of the run id is not the run
        '44|999|liftoff-run-id:run1 liftoff-agent:agent1',
      ].join('\n'),
    });
    expect(await findUnrecordedJob(t, want)).toEqual({ jobId: '44', how: 'found by its name in squeue' });
    expect(t.calls[0]).toContain('--user=999');
  });

  it('over ssh asks for the login user’s own jobs', async () => {
    const t = scripted({ squeue: '7||liftoff-run-id:run1 liftoff-agent:agent1' });
    expect(await findUnrecordedJob(t, { ...want, owner: undefined, ssh: true })).toMatchObject({ jobId: '7' });
    expect(t.calls[0]).toContain('--me');
  });

  it('falls back to the exit-code files only for a job squeue forgot, and only when they name one job', async () => {
    expect(await findUnrecordedJob(scripted({ find: 'exit-12_0\nexit-12_1\nslurm-12_0.out\n' }), want)).toEqual({
      jobId: '12',
      how: 'named by its exit-code file (Slurm had already forgotten it)',
    });
    // A file the job wrote naming a live job (someone else's): not taken.
    expect(await findUnrecordedJob(scripted({ find: 'exit-13\n', 'squeue -j 13': '13\n' }), want)).toBeUndefined();
    expect(await findUnrecordedJob(scripted({ find: 'exit-12\nexit-14\n' }), want)).toBeUndefined();
    expect(await findUnrecordedJob(scripted({ find: 'exit-x\nexit-12;rm\n' }), want)).toBeUndefined();
    expect(await findUnrecordedJob(scripted({}), want)).toBeUndefined();
  });
});
