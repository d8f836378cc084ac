import { spawn } from 'node:child_process';
import { constants } from 'node:fs';
import { chmod, cp, mkdir, open, rm, writeFile } from 'node:fs/promises';
import { SlurmError, type Env, type SlurmAgentConfig } from '@liftoff/core';
import { handOver } from '../../workDirAccess.js';
import { shCommand } from './quoting.js';
import { remoteTarCommand, unpackRemoteOutputs, type FetchedOutputs } from './remoteOutputs.js';

export interface CommandResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Who owns a run's files on the cluster (the job user), when the agent hands them over (an agent running as root). */
export interface Owner {
  uid: number;
  gid: number;
}

/**
 * Where the Slurm CLI runs and how the run's files get to the shared filesystem: on the agent's own host, or on a
 * login node over SSH. Commands are argv arrays, never a shell line; over SSH the one quoting module turns the argv
 * into the remote command (ssh always hands its command to the login user's shell).
 */
export interface Transport {
  readonly describe: string;
  run(argv: readonly string[], input?: string): Promise<CommandResult>;
  /** Creates the run dir (0700) with the code copied into `<dir>/src` and the env file (0600), owned by `owner`. */
  prepareRunDir(dir: string, code: string | undefined, envText: string, owner: Owner | undefined): Promise<void>;
  /** Bytes of a file from `offset` (at most `max`); undefined when the file does not exist (yet). */
  readFrom(path: string, offset: number, max: number, owner: Owner | undefined): Promise<Buffer | undefined>;
  removeRunDir(dir: string): Promise<void>;
  /** Removes one file of a run dir (the env file once the job ended: it holds the run's secrets). */
  removeFile(path: string): Promise<void>;
  /**
   * Over ssh, where the agent cannot read the run dir itself: the regular files of `dir` (a run's output dir)
   * unpacked into `into`, at most `capBytes` (remoteOutputs.ts); undefined when there is no such dir.
   */
  fetchOutputs?(dir: string, into: string, capBytes: number): Promise<FetchedOutputs | undefined>;
}

const TIMEOUT_MS = 60_000;

/** Spawns argv (no shell), feeds `input` on stdin, collects the output; a spawn failure is code null. */
export function execArgv(
  argv: readonly string[],
  env: Env,
  input?: string | NodeJS.ReadableStream,
): Promise<CommandResult & { stdoutBytes: Buffer }> {
  const [cmd, ...args] = argv;
  if (!cmd) throw new SlurmError('empty command');
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { env, stdio: ['pipe', 'pipe', 'pipe'] });
    // A timer of our own rather than spawn's `timeout`: that one stays armed when the spawn itself fails (ENOENT),
    // and kept an agent that was refusing to start alive for a minute.
    const timer = setTimeout(() => child.kill('SIGKILL'), TIMEOUT_MS);
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.stdin.on('error', () => undefined);
    if (typeof input === 'string') child.stdin.end(input);
    else if (input) input.pipe(child.stdin);
    else child.stdin.end();
    let failed: Error | undefined;
    child.on('error', (e) => (failed = e));
    child.on('close', (code) => {
      clearTimeout(timer);
      const stdoutBytes = Buffer.concat(out);
      resolve({
        code: failed ? null : code,
        stdout: stdoutBytes.toString('utf8'),
        stdoutBytes,
        stderr: failed ? failed.message : Buffer.concat(err).toString('utf8'),
      });
    });
  });
}

/** The agent's host is a Slurm submit host and `workdir-root` is on the filesystem the nodes share. */
export class LocalTransport implements Transport {
  readonly describe = 'the agent host';
  constructor(private readonly env: Env) {}

  run(argv: readonly string[], input?: string): Promise<CommandResult> {
    return execArgv(argv, this.env, input);
  }

  async prepareRunDir(dir: string, code: string | undefined, envText: string, owner: Owner | undefined) {
    await rm(dir, { recursive: true, force: true });
    await mkdir(dir, { mode: 0o700 });
    if (code) await cp(code, `${dir}/src`, { recursive: true, verbatimSymlinks: true });
    else await mkdir(`${dir}/src`, { mode: 0o700 });
    await writeFile(`${dir}/env`, envText, { mode: 0o600, flag: 'wx' });
    // The job's LIFTOFF_OUTPUT_DIR, handed over with the rest (docs/outputs.md).
    await mkdir(`${dir}/outputs`, { mode: 0o700 });
    if (owner) {
      // The fetched code was handed over by nobody yet (slurm jobs get no local user): every entry is chowned here,
      // links themselves (lchown), before the job exists, so nothing of the job's can race it.
      await handOver(dir, owner);
    }
    await chmod(dir, 0o700);
  }

  /**
   * The run dir belongs to the job user, who could put a link to any file there under the output file's name: the
   * file is opened without following links and without blocking (a FIFO), and read only when it is a regular file
   * of the job's user (a hard link to someone else's file is not).
   */
  async readFrom(path: string, offset: number, max: number, owner: Owner | undefined) {
    let fh;
    try {
      fh = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return undefined;
      if (code === 'ELOOP') throw new SlurmError(`${path} is a symbolic link; the job's output is not read from it.`);
      throw e;
    }
    try {
      const st = await fh.stat();
      if (!st.isFile()) throw new SlurmError(`${path} is not a regular file; the job's output is not read from it.`);
      if (owner && st.uid !== owner.uid) {
        throw new SlurmError(`${path} belongs to uid ${st.uid}, not the job's user; it is not read.`);
      }
      const size = Math.max(0, Math.min(max, st.size - offset));
      if (!size) return Buffer.alloc(0);
      const buf = Buffer.alloc(size);
      const { bytesRead } = await fh.read(buf, 0, size, offset);
      return buf.subarray(0, bytesRead);
    } finally {
      await fh.close();
    }
  }

  async removeRunDir(dir: string) {
    await rm(dir, { recursive: true, force: true });
  }

  async removeFile(path: string) {
    await rm(path, { force: true });
  }
}

/** The Slurm CLI on a login node over OpenSSH (the `ssh` binary: the user's agent, config and known_hosts). */
export class SshTransport implements Transport {
  readonly describe: string;
  private readonly base: string[];

  constructor(
    cfg: SlurmAgentConfig,
    private readonly env: Env,
  ) {
    if (!cfg.host) throw new SlurmError('slurm.transport ssh needs slurm.host');
    this.describe = `${cfg.user ? `${cfg.user}@` : ''}${cfg.host}`;
    this.base = [
      'ssh',
      '-o',
      'BatchMode=yes',
      '-o',
      'ConnectTimeout=15',
      '-o',
      'ServerAliveInterval=15',
      ...(cfg.port ? ['-p', String(cfg.port)] : []),
      ...(cfg.key ? ['-i', cfg.key, '-o', 'IdentitiesOnly=yes'] : []),
      ...(cfg['known-hosts']
        ? ['-o', `UserKnownHostsFile=${cfg['known-hosts']}`, '-o', 'StrictHostKeyChecking=yes']
        : []),
      ...(cfg.user ? ['-l', cfg.user] : []),
      '--',
      cfg.host,
    ];
  }

  /** ssh exits 255 for its own failures (login refused, host unreachable): those are errors, not command results. */
  private async ssh(argv: readonly string[], input?: string | NodeJS.ReadableStream) {
    const r = await execArgv([...this.base, shCommand(argv)], this.env, input);
    if (r.code === 255 || r.code === null) {
      throw new SlurmError(`ssh to ${this.describe} failed: ${r.stderr.trim() || 'no output'}`);
    }
    return r;
  }

  run(argv: readonly string[], input?: string): Promise<CommandResult> {
    return this.ssh(argv, input);
  }

  async prepareRunDir(dir: string, code: string | undefined, envText: string) {
    // With the job's LIFTOFF_OUTPUT_DIR, fetched back after the run (docs/outputs.md).
    const mk = await this.ssh([
      'sh',
      '-c',
      'umask 077 && rm -rf -- "$1" && mkdir -p -- "$1/src" "$1/outputs"',
      'sh',
      dir,
    ]);
    if (mk.code !== 0) throw new SlurmError(`Could not create ${dir} on ${this.describe}: ${mk.stderr.trim()}`);
    const env = await this.ssh(['sh', '-c', 'umask 077 && cat > "$1/env"', 'sh', dir], envText);
    if (env.code !== 0) throw new SlurmError(`Could not write ${dir}/env on ${this.describe}: ${env.stderr.trim()}`);
    if (!code) return;
    // The code travels as a tar stream on ssh's stdin: no temporary file, no rsync needed on either side.
    const tar = spawn('tar', ['-C', code, '-cf', '-', '.'], { stdio: ['ignore', 'pipe', 'pipe'], env: this.env });
    const [sent, done] = await Promise.all([
      new Promise<number | null>((r) => tar.on('close', r)),
      this.ssh(['tar', '-xf', '-', '-C', `${dir}/src`], tar.stdout),
    ]);
    if (sent !== 0 || done.code !== 0) {
      throw new SlurmError(`Copying the code to ${dir}/src on ${this.describe} failed: ${done.stderr.trim()}`);
    }
  }

  async readFrom(path: string, offset: number, max: number) {
    // `tail -c +N` counts from 1; `head -c` caps one read. A missing file is exit 3 (told apart from other errors).
    const r = await execArgv(
      [
        ...this.base,
        shCommand([
          'sh',
          '-c',
          '[ -e "$1" ] || exit 3; [ -f "$1" ] && [ ! -L "$1" ] || exit 4; tail -c +"$2" -- "$1" | head -c "$3"',
          'sh',
          path,
          String(offset + 1),
          String(max),
        ]),
      ],
      this.env,
    );
    if (r.code === 3) return undefined;
    if (r.code === 4) throw new SlurmError(`${path} is not a regular file; the job's output is not read from it.`);
    if (r.code !== 0) throw new SlurmError(`Reading ${path} on ${this.describe} failed: ${r.stderr.trim()}`);
    return r.stdoutBytes;
  }

  async removeRunDir(dir: string) {
    await this.ssh(['rm', '-rf', '--', dir]);
  }

  fetchOutputs(dir: string, into: string, capBytes: number): Promise<FetchedOutputs | undefined> {
    // Streamed into the unpacker, never held whole (execArgv collects output): the cap is what bounds it.
    const [cmd, ...args] = [...this.base, shCommand(remoteTarCommand(dir))];
    const child = spawn(cmd as string, args, { env: this.env, stdio: ['ignore', 'pipe', 'pipe'] });
    return unpackRemoteOutputs(child, into, capBytes);
  }

  async removeFile(path: string) {
    await this.ssh(['rm', '-f', '--', path]);
  }
}
