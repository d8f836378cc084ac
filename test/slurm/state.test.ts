import { describe, expect, it } from 'vitest';
import {
  arrayTasks,
  exitCodeOf,
  outcomeOf,
  parseQueue,
  rangeHas,
  readExitFile,
  readRow,
} from '../../packages/agent/src/runners/slurm/state.js';
import { parseSacct } from '../../packages/agent/src/runners/slurm/accounting.js';

const row = (state: string, reason = 'None', task?: string) => ({
  jobId: '7',
  arrayJobId: '7',
  task,
  state,
  reason,
});
const ended = (state: string, exitCode: number | null = null, task?: number) => ({
  ...(task === undefined ? {} : { task }),
  r: { kind: 'ended' as const, state, reason: 'None', exitCode },
});

describe('Slurm state map', () => {
  it('parses squeue lines, arrays and pending ranges', () => {
    expect(parseQueue('12|12|N/A|RUNNING|None\n13|11|2|PENDING|Resources\n11|11|[3-5%1]|PENDING|a|b\n')).toEqual([
      { jobId: '12', arrayJobId: '12', task: undefined, state: 'RUNNING', reason: 'None' },
      { jobId: '13', arrayJobId: '11', task: '2', state: 'PENDING', reason: 'Resources' },
      { jobId: '11', arrayJobId: '11', task: '[3-5%1]', state: 'PENDING', reason: 'a|b' },
    ]);
    expect(arrayTasks('0-9%2')).toHaveLength(10);
    expect(arrayTasks('1,3,5-9:2')).toEqual([1, 3, 5, 7, 9]);
    expect(rangeHas('[3-5%1]', 4)).toBe(true);
    expect(rangeHas('3-5', 6)).toBe(false);
  });

  it('maps pending (reason kept), requeued, running, held', () => {
    expect(readRow(row('PENDING', 'QOSMaxGRESPerUser'))).toEqual({
      kind: 'pending',
      reason: 'QOSMaxGRESPerUser',
      requeued: false,
    });
    expect(readRow(row('REQUEUED'))).toMatchObject({ kind: 'pending', requeued: true });
    expect(readRow(row('COMPLETING'))).toEqual({ kind: 'running', warning: null });
    expect(readRow(row('SUSPENDED'))).toEqual({ kind: 'running', warning: 'the Slurm job is suspended' });
    expect(readRow(row('COMPLETED'))).toMatchObject({ kind: 'ended', exitCode: 0 });
  });

  it('maps end states to outcomes: cancelled by Liftoff or outside, preempted, OOM, timeout, node fail', () => {
    expect(outcomeOf([ended('COMPLETED', 0)], false)).toEqual({ state: 'finished', exitCode: 0 });
    expect(outcomeOf([ended('CANCELLED', 0)], true)).toEqual({ state: 'stopped', exitCode: 0 });
    expect(outcomeOf([ended('CANCELLED', 0)], false)).toMatchObject({
      state: 'failed',
      message: expect.stringContaining('cancelled outside Liftoff'),
    });
    expect(outcomeOf([ended('PREEMPTED')], false)).toMatchObject({ state: 'preempted' });
    expect(outcomeOf([ended('OUT_OF_MEMORY', 137)], false)).toEqual({
      state: 'failed',
      exitCode: 137,
      message: 'The Slurm job ran out of memory (OUT_OF_MEMORY) with exit code 137.',
    });
    expect(outcomeOf([ended('TIMEOUT')], false)).toMatchObject({ message: expect.stringContaining('time limit') });
    expect(outcomeOf([ended('NODE_FAIL')], false)).toMatchObject({ message: expect.stringContaining('NODE_FAIL') });
    expect(outcomeOf([ended('COMPLETED', 0, 0), ended('FAILED', 5, 1), ended('FAILED', 2, 2)], false)).toEqual({
      state: 'failed',
      exitCode: 5,
      message: 'Array task 1 ended FAILED with exit code 5. 1 more task(s) did not complete either (2).',
    });
  });

  it('reads ExitCode=a:b and the exit-code file', () => {
    expect(exitCodeOf('JobId=3 JobState=FAILED Reason=NonZeroExitCode ExitCode=3:0 Restarts=0')).toBe(3);
    expect(exitCodeOf('ExitCode=0:9')).toBe(137);
    expect(readExitFile('4\n')).toMatchObject({ state: 'FAILED', exitCode: 4 });
    expect(readExitFile('0\n')).toMatchObject({ state: 'COMPLETED', exitCode: 0 });
    expect(readExitFile('garbage')).toBeUndefined();
  });
});

describe('sacct records', () => {
  it('reads end states and exit codes of forgotten jobs and array tasks, leaving active ones to squeue', () => {
    const m = parseSacct('41|COMPLETED|0:0\n42_1|FAILED|5:0\n42_2|CANCELLED by 999|0:15\n43|RUNNING|0:0\n');
    expect(m.get('41')).toMatchObject({ state: 'COMPLETED', exitCode: 0 });
    expect(m.get('42_1')).toMatchObject({ state: 'FAILED', exitCode: 5 });
    expect(m.get('42_2')).toMatchObject({ state: 'CANCELLED', exitCode: 143 });
    expect(m.has('43')).toBe(false);
  });
});
