import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { StringDecoder } from 'node:string_decoder';
import { fileURLToPath } from 'node:url';
import { RunnerError } from '@liftoff/core';
import {
  isAlive,
  readExitStatus,
  readProcessRecord,
  supervisorPath,
  type ExitStatus,
  type ProcessRecord,
  type SupervisorRequest,
} from './supervisorFiles.js';

/** supervisor.ts, compiled next to this file. */
const SUPERVISOR_SCRIPT = fileURLToPath(new URL('./supervisor.js', import.meta.url));

/**
 * How often the agent looks at the output file and the status file of a supervised job. Hand-written polling rather
 * than a tail library: the agent needs exact byte offsets, a last read after the status appears, and a liveness
 * check of a process that is not its child (after a restart) in the same loop; inotify would not see a supervisor
 * that died. 100 ms is below the log shipper's own 200 ms batching, so it adds no visible delay.
 */
const POLL_MS = 100;

export interface StartedSupervisor {
  record: ProcessRecord;
  /** Resolves when the supervisor (the agent's child until the agent restarts) exits: a prompt wake-up. */
  exited: Promise<void>;
}

/**
 * Starts the supervisor of a job and waits until the job runs (or could not start). The supervisor is detached: a
 * session and process group of its own, so neither a signal to the agent's group nor the agent's death reaches it.
 * Its environment is empty (the job's is in the request, on a pipe, never in an argv others can read).
 */
export async function startSupervisor(req: SupervisorRequest): Promise<StartedSupervisor> {
  const logFd = openSync(supervisorPath(req.dir, 'log'), 'a', 0o600);
  let child: ChildProcess;
  try {
    child = spawn(process.execPath, [SUPERVISOR_SCRIPT], {
      detached: true,
      stdio: ['pipe', 'pipe', logFd],
      env: {},
      cwd: '/',
    });
  } finally {
    // The supervisor holds its own copy from here on.
    closeSync(logFd);
  }
  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => resolve());
    child.once('error', () => resolve());
  });
  const { stdin, stdout } = child;
  if (!stdin || !stdout) throw new RunnerError('Could not start the supervisor of the job: no pipes to it.');
  stdin.on('error', () => undefined);
  stdin.end(JSON.stringify(req));
  const line = await new Promise<string>((resolve) => {
    let text = '';
    stdout.setEncoding('utf8');
    stdout.on('data', (d: string) => {
      text += d;
      if (text.includes('\n')) resolve(text);
    });
    stdout.once('end', () => resolve(text));
    stdout.once('error', () => resolve(text));
    child.once('error', () => resolve(text));
  });
  stdout.destroy();
  child.unref();
  let answer: { pid?: unknown; error?: unknown } = {};
  try {
    answer = JSON.parse(line) as typeof answer;
  } catch {
    // No answer: the supervisor died first; said below.
  }
  if (typeof answer.error === 'string') {
    throw new RunnerError(`Could not start "${req.program}": ${answer.error}. Check the entry point (-E).`);
  }
  const record = readProcessRecord(req.dir);
  if (typeof answer.pid !== 'number' || !record) {
    throw new RunnerError(
      `The supervisor of the job exited before the job started; its errors are in ${supervisorPath(req.dir, 'log')}.`,
    );
  }
  return { record, exited };
}

/** Reads the output file from where it last stopped, as UTF-8 text (a character split across reads is kept whole). */
export class OutputTail {
  private fh: FileHandle | undefined;
  private pos = 0;
  private readonly decoder = new StringDecoder('utf8');
  private readonly buf = Buffer.allocUnsafe(256 * 1024);

  constructor(
    private readonly path: string,
    private readonly onOutput: (text: string) => void,
  ) {}

  /** Reads everything written so far. A missing file is empty (the supervisor had not created it yet). */
  async pump(): Promise<void> {
    if (!this.fh) {
      try {
        this.fh = await open(this.path, 'r');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
        throw err;
      }
    }
    for (;;) {
      const { bytesRead } = await this.fh.read(this.buf, 0, this.buf.length, this.pos);
      if (!bytesRead) return;
      this.pos += bytesRead;
      const text = this.decoder.write(this.buf.subarray(0, bytesRead));
      if (text) this.onOutput(text);
    }
  }

  async close(): Promise<void> {
    const text = this.decoder.end();
    if (text) this.onOutput(text);
    await this.fh?.close();
    this.fh = undefined;
  }
}

/**
 * Ships the job's output as it is written until the job has ended, then returns its exit status, or undefined when
 * the supervisor is gone without having written one. Everything in the output file is delivered before it returns.
 */
export async function followSupervised(
  dir: string,
  record: ProcessRecord | undefined,
  onOutput: (text: string) => void,
  wake?: Promise<void>,
): Promise<ExitStatus | undefined> {
  const tail = new OutputTail(supervisorPath(dir, 'output'), onOutput);
  try {
    for (;;) {
      await tail.pump();
      // The supervisor writes the status only after the output file is complete: one more read gets the rest.
      const status = readExitStatus(dir);
      // Looked at after the status: a supervisor that wrote it and exited in between is read again below.
      const gone = !status && (!record || !isAlive(record.supervisor));
      if (status || gone) {
        await tail.pump();
        return status ?? readExitStatus(dir);
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, POLL_MS);
        void wake?.then(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  } finally {
    await tail.close();
  }
}
