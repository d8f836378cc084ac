import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { chmod, lstat, mkdir } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { RunnerError } from '@liftoff/core';
import {
  SUPERVISOR_LOG,
  SUPERVISOR_SOCKET,
  readProcessRecord,
  supervisorHome,
  type ProcessRecord,
  type SupervisorRequest,
} from './supervisorFiles.js';

/** supervisor.ts, compiled next to this file. */
const SUPERVISOR_SCRIPT = fileURLToPath(new URL('./supervisor.js', import.meta.url));
/**
 * Node flags of the supervisor: one V8 worker thread instead of four. It forks every job, and a fork and the exit
 * that follows cost more the more threads the forking process has (perf showed the supervisor's kernel time in
 * cross-CPU calls and context switches); it compiles little and collects small heaps, so the workers bought nothing.
 * Measured on 2 cores, 80 trivial jobs at once: the supervisor's CPU per job (its jobs' included) fell ~5%.
 */
const SUPERVISOR_NODE_FLAGS = ['--v8-pool-size=1'];

/**
 * The arguments after `node` that start the supervisor of `home`: one place, so that the supervisor's own tests run
 * it exactly as the agent does. `script` is for those tests, which run the built file from the package's dist.
 */
export function supervisorArgs(home: string, script: string = SUPERVISOR_SCRIPT): string[] {
  return [...SUPERVISOR_NODE_FLAGS, script, home];
}
/** How long a kill request waits for the supervisor's answer before the agent kills by itself (jobUsers.ts). */
const KILL_ANSWER_MS = 3_000;
/** sun_path holds 108 bytes with its NUL. */
const MAX_SOCKET_PATH = 107;

export interface StartedJob {
  record: ProcessRecord;
  /** Resolves when the supervisor says the job's status is written (or the supervisor is gone): a prompt wake-up. */
  ended: Promise<void>;
}

interface Connection {
  socket: Socket;
  pending: Map<number, (m: { pid?: unknown; done?: unknown; error?: unknown } | undefined) => void>;
  closed: boolean;
}

/**
 * The agent's side of its supervisor (supervisor.ts): connects to the one that runs for this data dir, or starts it
 * (detached, a session of its own, an empty environment, never through a shell), and asks it to start jobs. A
 * connection lost (the supervisor was killed) is made again, with a new supervisor, for the next job; the runs of
 * the old one end as their files say (localProcess.ts).
 */
export class SupervisorClient {
  private conn: Promise<Connection> | undefined;
  private nextId = 1;
  private closing = false;
  /** Wake-ups by run state dir, for jobs started or re-attached by this agent. */
  private readonly watchers = new Map<string, () => void>();

  async start(req: SupervisorRequest): Promise<StartedJob> {
    const conn = await this.connection(supervisorHome(req.dir), true);
    if (!conn) throw new RunnerError('Could not reach the job supervisor.');
    const ended = this.watch(req.dir);
    const id = this.nextId++;
    const answer = await new Promise<{ pid?: unknown; error?: unknown } | undefined>((resolve) => {
      conn.pending.set(id, resolve);
      conn.socket.write(`${JSON.stringify({ id, start: req })}\n`);
    });
    const logPath = join(supervisorHome(req.dir), SUPERVISOR_LOG);
    if (!answer) {
      this.unwatch(req.dir);
      throw new RunnerError(`The job supervisor went away before the job started; its errors are in ${logPath}.`);
    }
    if (typeof answer.error === 'string') {
      this.unwatch(req.dir);
      throw new RunnerError(`Could not start "${req.program}": ${answer.error}. Check the entry point (-E).`);
    }
    const record = readProcessRecord(req.dir);
    if (typeof answer.pid !== 'number' || !record) {
      this.unwatch(req.dir);
      throw new RunnerError(`The job supervisor answered without recording the job; its errors are in ${logPath}.`);
    }
    return { record, ended };
  }

  /**
   * Asks the supervisor of the data dir `stateDir` belongs to, when one runs, to make kill(-1) as `identity`
   * (supervisor.ts killAllAs). Resolves true once that ran, false when no supervisor could do it (the caller then
   * does it itself). Never starts a supervisor for this.
   */
  async killAllAs(stateDir: string, identity: { uid: number; gid: number }): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    // Bounded: a supervisor dying while it is asked must not hold the run's end; the caller then kills by itself.
    const late = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), KILL_ANSWER_MS)));
    try {
      return await Promise.race([this.askKillAll(stateDir, identity), late]);
    } finally {
      clearTimeout(timer);
    }
  }

  private async askKillAll(stateDir: string, identity: { uid: number; gid: number }): Promise<boolean> {
    const conn = await this.connection(supervisorHome(stateDir), false).catch(() => undefined);
    if (!conn || conn.closed || conn.socket.destroyed) return false;
    const id = this.nextId++;
    const answer = await new Promise<{ done?: unknown; error?: unknown } | undefined>((resolve) => {
      conn.pending.set(id, resolve);
      conn.socket.write(`${JSON.stringify({ id, killAll: { uid: identity.uid, gid: identity.gid } })}\n`);
    });
    return answer?.done === true;
  }

  /**
   * A wake-up for a re-attached job, when the supervisor that runs it can be reached (it is never started for this):
   * the agent otherwise notices the job's end by polling its files.
   */
  async reattach(dir: string): Promise<{ ended: Promise<void> } | undefined> {
    const conn = await this.connection(supervisorHome(dir), false).catch(() => undefined);
    // Wrapped: awaiting a promise of a promise would wait for the job's end.
    return conn ? { ended: this.watch(dir) } : undefined;
  }

  close(): void {
    this.closing = true;
    void this.conn?.then((c) => c.socket.destroy()).catch(() => undefined);
    this.conn = undefined;
  }

  private watch(dir: string): Promise<void> {
    return new Promise<void>((resolve) => this.watchers.set(dir, resolve));
  }

  private unwatch(dir: string): void {
    this.watchers.delete(dir);
  }

  private connection(home: string, startIfNeeded: boolean): Promise<Connection | undefined> {
    const current = this.conn;
    if (current) {
      // Only the first caller to find it lost makes it again; the others wait for that one.
      const again = () =>
        this.conn === current ? this.reconnect(home, startIfNeeded) : this.connection(home, startIfNeeded);
      return current.then((c) => (c.closed ? again() : c), again);
    }
    return this.reconnect(home, startIfNeeded);
  }

  private reconnect(home: string, startIfNeeded: boolean): Promise<Connection | undefined> {
    const attempt = (async () => {
      await privateDir(home);
      const path = join(home, SUPERVISOR_SOCKET);
      if (Buffer.byteLength(path) > MAX_SOCKET_PATH) {
        throw new RunnerError(
          `The agent's data dir is too deep for the job supervisor's socket (${path} is over ${MAX_SOCKET_PATH} bytes). Use a shorter --data-dir.`,
        );
      }
      // Twice: a supervisor that was just ending (idle) closes the connection; the second try starts a new one.
      for (let i = 0; i < 2; i++) {
        const socket = await open(path);
        if (socket) return this.adopt(socket);
        if (!startIfNeeded) return undefined;
        await startSupervisor(home);
      }
      throw new RunnerError(
        `Could not start the job supervisor; its errors are in ${join(home, SUPERVISOR_LOG)}. Check that the agent's data dir is writable.`,
      );
    })();
    this.conn = attempt.then((c) => c ?? Promise.reject(new Error('no supervisor')));
    this.conn.catch(() => undefined);
    return attempt;
  }

  private adopt(socket: Socket): Connection {
    const conn: Connection = { socket, pending: new Map(), closed: false };
    // The agent's exit must not wait for this connection.
    socket.unref();
    socket.on('error', () => undefined);
    createInterface({ input: socket, crlfDelay: Infinity }).on('line', (line) => {
      let msg: { id?: unknown; ended?: unknown; pid?: unknown; done?: unknown; error?: unknown };
      try {
        msg = JSON.parse(line) as typeof msg;
      } catch {
        return;
      }
      if (typeof msg.ended === 'string') {
        this.watchers.get(msg.ended)?.();
        this.watchers.delete(msg.ended);
      } else if (typeof msg.id === 'number') {
        conn.pending.get(msg.id)?.(msg);
        conn.pending.delete(msg.id);
      }
    });
    socket.once('close', () => {
      conn.closed = true;
      for (const resolve of conn.pending.values()) resolve(undefined);
      conn.pending.clear();
      // The supervisor is gone: every job it ran is looked at now (its status, or that it is gone). Not when the
      // agent itself closes the connection: its jobs still run and are followed by polling.
      if (!this.closing) for (const wake of this.watchers.values()) wake();
      this.watchers.clear();
    });
    return conn;
  }
}

/** The supervisor's dir: created 0700, and refused unless it is a real directory of the agent's own user. */
async function privateDir(home: string): Promise<void> {
  await mkdir(home, { recursive: true, mode: 0o700 });
  const st = await lstat(home);
  if (!st.isDirectory() || st.uid !== process.getuid?.()) {
    throw new RunnerError(
      `${home} is not a directory of the agent's user: the job supervisor's socket cannot be kept private there. Remove it.`,
    );
  }
  if ((st.mode & 0o777) !== 0o700) await chmod(home, 0o700);
}

/** Connects, or resolves undefined when no supervisor listens there. */
function open(path: string): Promise<Socket | undefined> {
  return new Promise((resolve) => {
    const socket = connect(path);
    socket.once('connect', () => resolve(socket));
    socket.once('error', () => resolve(undefined));
  });
}

/** Starts the supervisor and waits until it listens (or found another one listening). */
async function startSupervisor(home: string): Promise<void> {
  const logFd = openSync(join(home, SUPERVISOR_LOG), 'a', 0o600);
  try {
    const child = spawn(process.execPath, supervisorArgs(home), {
      detached: true,
      stdio: ['ignore', 'pipe', logFd],
      env: {},
      cwd: '/',
    });
    const stdout = child.stdout;
    await new Promise<void>((resolve) => {
      let text = '';
      stdout?.setEncoding('utf8');
      stdout?.on('data', (d: string) => {
        text += d;
        if (text.includes('\n')) resolve();
      });
      stdout?.once('close', () => resolve());
      child.once('error', () => resolve());
    });
    stdout?.destroy();
    child.unref();
  } finally {
    // The supervisor holds its own copy from here on.
    closeSync(logFd);
  }
}
