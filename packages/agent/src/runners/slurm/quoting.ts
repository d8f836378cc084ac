import { SlurmError } from '@liftoff/core';

/**
 * The one place text becomes shell syntax for Slurm: the batch script, the 0600 env file and the commands the SSH
 * transport sends. Hand-written because each is a handful of lines whose exact output is what the tests check, and
 * no maintained npm package quotes for both POSIX sh (ssh's remote shell) and bash's one-line `$'…'` form.
 *
 * Every value is attacker input (entry point, args, env, resource args of a pushed job). NUL is refused outright:
 * no argv, environment or shell word can hold it, and a shell would silently cut the value there.
 */

function refuseNul(value: string, what: string): void {
  if (value.includes('\0')) throw new SlurmError(`${what} contains a NUL byte, which no shell word can hold.`);
}

/**
 * A POSIX sh word: `'…'` with each `'` as `'\''`. Nothing inside single quotes is special to sh, dash, bash or zsh
 * (no `$`, backtick, backslash or newline handling), so the word is exactly the value. Used for ssh commands, whose
 * remote shell is the login user's and may not be bash.
 */
export function shWord(value: string, what = 'a value'): string {
  refuseNul(value, what);
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

/** An argv as one sh command line, each element a quoted word: what ssh hands to the remote shell. */
export function shCommand(argv: readonly string[]): string {
  return argv.map((a) => shWord(a, 'a command argument')).join(' ');
}

/**
 * A bash `$'…'` word that stays on one line: backslash and `'` escaped, every control character (newline, CR, ESC,
 * DEL …) written as `\xHH`. Bytes ≥ 0x80 pass as they are (UTF-8 text). The batch script and the env file are bash,
 * so a value can neither end its line nor its quote.
 */
export function bashWord(value: string, what = 'a value'): string {
  refuseNul(value, what);
  let out = "$'";
  for (const ch of value) {
    const c = ch.codePointAt(0) ?? 0;
    if (ch === '\\' || ch === "'") out += `\\${ch}`;
    else if (c < 0x20 || c === 0x7f) out += `\\x${c.toString(16).padStart(2, '0')}`;
    else out += ch;
  }
  return `${out}'`;
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * The env file the batch script sources (`set -a; . env`): one `NAME=$'value'` line per variable. A name that is
 * not a shell identifier is refused (it could not be set, and `a;b` would be a command).
 */
export function envFile(env: Readonly<Record<string, string>>): string {
  let out = "# Written by the Liftoff agent: this run's environment (0600, sourced by the batch script).\n";
  for (const [name, value] of Object.entries(env)) {
    if (!ENV_NAME.test(name)) {
      throw new SlurmError(`The environment variable name ${JSON.stringify(name)} is not a shell identifier.`);
    }
    out += `${name}=${bashWord(value, `the value of ${name}`)}\n`;
  }
  return out;
}
