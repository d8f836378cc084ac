import { open, type FileHandle } from 'node:fs/promises';
import { StringDecoder } from 'node:string_decoder';
import { isAlive, readExitStatus, supervisorPath, type ExitStatus, type ProcessRecord } from './supervisorFiles.js';

/**
 * How often the agent looks at the output file and the status file of a supervised job. Hand-written polling rather
 * than a tail library: the agent needs exact byte offsets, a last read after the status appears, and a liveness
 * check of a process that is not its child (after a restart) in the same loop; inotify would not see a supervisor
 * that died. 100 ms is below the log shipper's own 200 ms batching, so it adds no visible delay.
 */
const POLL_MS = 100;

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
