import { closeSync, openSync, readSync } from 'node:fs';
import { StringDecoder } from 'node:string_decoder';
import { isAlive, readExitStatus, supervisorPath, type ExitStatus, type ProcessRecord } from './supervisorFiles.js';

/**
 * How often the agent looks at the output file and the status file of a supervised job. Hand-written polling rather
 * than a tail library: the agent needs exact byte offsets, a last read after the status appears, and a liveness
 * check of a process that is not its child (after a restart) in the same loop; inotify would not see a supervisor
 * that died. 100 ms is below the log shipper's own 200 ms batching, so it adds no visible delay.
 */
const POLL_MS = 100;
/** The first read buffer; it doubles, up to the largest, while reads fill it (a job that prints a lot). */
const FIRST_READ_BYTES = 16 * 1024;
const LARGEST_READ_BYTES = 256 * 1024;

/**
 * Reads the output file from where it last stopped, as UTF-8 text (a character split across reads is kept whole).
 *
 * Synchronous reads on purpose: the file is on the agent's own disk and read from the page cache, each read at most
 * 256 KiB, and a trivial job's whole tail is an open, a read or two and a close. fs/promises made each of those a
 * thread-pool round trip, about three times the CPU of the call itself (issue 20); a 256 KiB buffer was also taken
 * for every job however little it printed.
 */
export class OutputTail {
  private fd: number | undefined;
  private pos = 0;
  private readonly decoder = new StringDecoder('utf8');
  private buf = Buffer.allocUnsafe(FIRST_READ_BYTES);

  constructor(
    private readonly path: string,
    private readonly onOutput: (text: string) => void,
  ) {}

  /** Reads everything written so far. A missing file is empty (the supervisor had not created it yet). */
  async pump(): Promise<void> {
    if (this.fd === undefined) {
      try {
        this.fd = openSync(this.path, 'r');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
        throw err;
      }
    }
    for (;;) {
      const bytesRead = readSync(this.fd, this.buf, 0, this.buf.length, this.pos);
      if (!bytesRead) return;
      this.pos += bytesRead;
      const text = this.decoder.write(this.buf.subarray(0, bytesRead));
      if (text) this.onOutput(text);
      // Short: the end of what is written so far (a regular file's read is short only there).
      if (bytesRead < this.buf.length) return;
      if (this.buf.length < LARGEST_READ_BYTES) this.buf = Buffer.allocUnsafe(this.buf.length * 2);
      // A job printing without pause must not hold the agent's loop: the rest is read after other work had its turn.
      await new Promise<void>((r) => setImmediate(r));
    }
  }

  async close(): Promise<void> {
    const text = this.decoder.end();
    if (text) this.onOutput(text);
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
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
          // Once: a wake-up that did not end the job (the agent lost its connection) must not turn this into a spin.
          wake = undefined;
          clearTimeout(timer);
          resolve();
        });
      });
    }
  } finally {
    await tail.close();
  }
}
