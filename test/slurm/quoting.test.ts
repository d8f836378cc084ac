import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { SlurmError, SlurmOptionRefusedError } from '@liftoff/core';
import { batchScript } from '../../packages/agent/src/runners/slurm/batchScript.js';
import { bashWord, envFile, shCommand, shWord } from '../../packages/agent/src/runners/slurm/quoting.js';
import { sbatchOptions } from '../../packages/agent/src/runners/slurm/sbatchArgs.js';

const dir = mkdtempSync(join(tmpdir(), 'liftoff-slurm-quoting-'));
const canary = join(dir, 'pwned');
const BASH_SPECIAL = new Set([
  '_',
  'UID',
  'EUID',
  'PPID',
  'SHELLOPTS',
  'BASHOPTS',
  'BASHPID',
  'RANDOM',
  'SECONDS',
  'LINENO',
  'SRANDOM',
  'OPTIND',
  'IFS',
  'PWD',
  'OLDPWD',
  'HOSTNAME',
  'GROUPS',
  'EPOCHSECONDS',
  'EPOCHREALTIME',
  'FUNCNAME',
  'BASH_ARGV0',
  'BASH_SUBSHELL',
  'HISTCMD',
  'DIRSTACK',
  'SHLVL',
  'COMP_WORDBREAKS',
]);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Strings built to break out: quotes, $(), backticks, newlines, CR, backslashes, control bytes, any unicode. */
const hostile = fc
  .oneof(
    fc.string({ unit: 'binary' }),
    fc
      .array(
        fc.constantFrom(
          "'",
          '"',
          '\\',
          '\n',
          '\r',
          '$(touch ' + canary + ')',
          '`touch ' + canary + '`',
          '${IFS}',
          ';',
          '&&',
          '|',
          '#',
          '\u001b',
          '\u007f',
          '$',
          "'\\''",
          'é€',
          ' ',
          '*',
        ),
      )
      .map((a) => a.join('')),
  )
  .map((s) => s.replace(/\0/g, ''));

// Bash and dash read back exactly what went in, and nothing ran (the canary file never appears).
describe('slurm quoting', () => {
  it('bashWord is one line that bash reads back as the value', () => {
    fc.assert(
      fc.property(hostile, (s) => {
        const word = bashWord(s);
        expect(word).not.toMatch(/[\n\r]/);
        const out = execFileSync('bash', ['-c', `printf %s ${word}`]);
        expect(out.toString('utf8')).toBe(s);
      }),
      { numRuns: 150 },
    );
    expect(existsSync(canary)).toBe(false);
  });

  it('shWord and shCommand give sh (dash) the exact argv', () => {
    fc.assert(
      fc.property(fc.array(hostile, { minLength: 1, maxLength: 4 }), (argv) => {
        const script = `for a in ${argv.map((a) => shWord(a)).join(' ')}; do printf '%s\\0' "$a"; done`;
        const out = execFileSync('sh', ['-c', script]).toString('utf8');
        expect(out.split('\0').slice(0, -1)).toEqual(argv);
        expect(shCommand(argv)).toBe(argv.map((a) => shWord(a)).join(' '));
      }),
      { numRuns: 150 },
    );
    expect(existsSync(canary)).toBe(false);
  });

  it('the env file sets each variable to its value, one line each, and nothing else runs', () => {
    fc.assert(
      fc.property(
        fc.dictionary(
          // Bash's own special and readonly names are left out: they are not settable by any env file.
          fc.stringMatching(/^[A-Za-z_][A-Za-z0-9_]{0,8}$/).filter((n) => !BASH_SPECIAL.has(n)),
          hostile,
        ),
        (env) => {
          const text = envFile(env);
          expect(text.split('\n').length).toBe(Object.keys(env).length + 2);
          const file = join(dir, 'env');
          writeFileSync(file, text);
          const names = Object.keys(env);
          const out = execFileSync('bash', [
            '-c',
            `set -a; . ${bashWord(file)}; set +a; for liftoff_test_loop_name in ${names.join(' ')}; do printf '%s\\0' "\${!liftoff_test_loop_name}"; done`,
          ]).toString('utf8');
          expect(out.split('\0').slice(0, -1)).toEqual(names.map((n) => env[n]));
        },
      ),
      { numRuns: 100 },
    );
    expect(existsSync(canary)).toBe(false);
  });

  it('refuses NUL and names that are not shell identifiers', () => {
    expect(() => bashWord('a\0b')).toThrow(SlurmError);
    expect(() => shWord('a\0b')).toThrow(/NUL/);
    expect(() => envFile({ 'A;touch x': '1' })).toThrow(/not a shell identifier/);
    expect(() => envFile({ A: 'x\0' })).toThrow(/NUL/);
  });

  it('the batch script runs the hostile argv exactly and records the exit code', () => {
    fc.assert(
      fc.property(fc.array(hostile, { maxLength: 3 }), (args) => {
        const runDir = join(dir, "run ' $(x)\n");
        execFileSync('mkdir', ['-p', runDir]);
        writeFileSync(join(runDir, 'env'), envFile({ LIFTOFF_X: "$(touch x)'\n", liftoff_key: 'evil' }));
        const script = batchScript({
          runId: 'r1',
          runDir,
          srcDir: dir,
          argv: ['bash', '-c', 'for a in "$@"; do printf "%s\\0" "$a"; done; exit 3', 'argv0', ...args],
          srun: false,
        });
        let out = '';
        try {
          execFileSync('bash', ['-s'], { input: script, env: { SLURM_JOB_ID: '42', PATH: process.env.PATH ?? '' } });
        } catch (e) {
          out = String((e as { stdout: Buffer }).stdout);
          expect((e as { status: number }).status).toBe(3);
        }
        expect(out.split('\0').slice(0, -1)).toEqual(args);
        // The job's variable liftoff_key did not move the exit-code file.
        expect(readFileSync(join(runDir, 'exit-42'), 'utf8')).toBe('3\n');
        rmSync(join(runDir, 'exit-42'));
      }),
      { numRuns: 40 },
    );
    expect(existsSync(canary)).toBe(false);
    expect(existsSync(join(dir, 'x'))).toBe(false);
  });
});

describe('resource_args.slurm → sbatch options', () => {
  it('maps the allow-list in a stable order, W&B-style sbatch entries through the same list', () => {
    const o = sbatchOptions({
      partition: 'gpu',
      time: '1:00:00',
      mem: 512,
      exclusive: true,
      requeue: false,
      sbatch: { 'cpus-per-task': 2, '--gres': 'gpu:a100:2' },
      builder: { base_image: 'x' },
    });
    expect(o.argv).toEqual([
      '--partition=gpu',
      '--time=1:00:00',
      '--cpus-per-task=2',
      '--mem=512',
      '--gres=gpu:a100:2',
      '--exclusive',
      '--no-requeue',
    ]);
    expect(o).toMatchObject({ array: undefined, srun: false });
    expect(sbatchOptions({ array: '0-2', nodes: 2 })).toEqual({
      argv: ['--nodes=2', '--array=0-2'],
      array: '0-2',
      srun: true,
    });
    expect(sbatchOptions(undefined).argv).toEqual([]);
  });

  it('refuses options Liftoff owns and unknown keys, naming the key', () => {
    for (const [args, key] of [
      [{ wrap: 'id' }, 'resource_args.slurm.wrap'],
      [{ sbatch: { export: 'ALL' } }, 'resource_args.slurm.sbatch.export'],
      [{ sbatch: { '--output': '/etc/x' } }, 'resource_args.slurm.sbatch.--output'],
      [{ chdir: '/' }, 'resource_args.slurm.chdir'],
      [{ uid: 0 }, 'resource_args.slurm.uid'],
      [{ 'job-name': 'x' }, 'resource_args.slurm.job-name'],
      [{ bogus: 1 }, 'resource_args.slurm.bogus'],
      [{ sbatch: { 'get-user-env': true } }, 'resource_args.slurm.sbatch.get-user-env'],
    ] as const) {
      expect(() => sbatchOptions(args)).toThrow(SlurmOptionRefusedError);
      expect(() => sbatchOptions(args)).toThrow(key);
    }
    expect(() => sbatchOptions({ partition: 'a\nb' })).toThrow(/printable/);
    expect(() => sbatchOptions({ partition: { x: 1 } })).toThrow(/string, a number/);
    expect(() => sbatchOptions({ partition: 'a', sbatch: { partition: 'b' } })).toThrow(/twice/);
    expect(() => sbatchOptions({ requeue: 'yes' })).toThrow(/true \(--requeue\)/);
  });
});
