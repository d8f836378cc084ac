import { StringDecoder } from 'node:string_decoder';
import { outputFile } from './batchScript.js';
import type { Owner, Transport } from './transport.js';

const CHUNK = 1024 * 1024;

/** One Slurm output file read by byte offset; a character split across reads is kept whole. */
class FileTail {
  offset = 0;
  private readonly decoder = new StringDecoder('utf8');
  private partial = '';

  constructor(
    readonly path: string,
    /** `[task n] ` for array tasks (each line gets it), '' for a plain job. */
    private readonly prefix: string,
  ) {}

  /** Text to emit for new bytes; with a prefix only whole lines (the rest waits for its newline or the end). */
  take(bytes: Buffer, end = false): string {
    this.offset += bytes.length;
    let text = this.decoder.write(bytes);
    if (end) text += this.decoder.end();
    if (!this.prefix) return text;
    text = this.partial + text;
    const cut = end ? text.length : text.lastIndexOf('\n') + 1;
    this.partial = text.slice(cut);
    return text
      .slice(0, cut)
      .split(/(?<=\n)/)
      .filter(Boolean)
      .map((l) => this.prefix + l)
      .join('');
  }
}

/**
 * Follows a run's Slurm output files (`slurm-<job id>.out`, or one per array task) by byte offset: a plain read on
 * the shared filesystem, `tail -c +N` over SSH. A file appears only once its batch step starts. After the end the
 * files are read until their size stops changing (NFS may show the last writes late).
 */
export class LogFollower {
  private readonly tails = new Map<string, FileTail>();

  constructor(
    private readonly transport: Transport,
    private readonly runDir: string,
    private readonly owner: Owner | undefined,
    private readonly onOutput: (text: string) => void,
    private readonly onProblem: (message: string) => void,
  ) {}

  /** Output keys (`<job id>` or `<array id>_<task>`) to follow; each key once, in the order first seen. */
  add(key: string, task?: number): void {
    if (!this.tails.has(key)) {
      this.tails.set(key, new FileTail(outputFile(this.runDir, key), task === undefined ? '' : `[task ${task}] `));
    }
  }

  /** Reads what is new in every file; true when something was. */
  async poll(end = false): Promise<boolean> {
    let any = false;
    for (const tail of this.tails.values()) {
      for (;;) {
        let bytes: Buffer | undefined;
        try {
          bytes = await this.transport.readFrom(tail.path, tail.offset, CHUNK, this.owner);
        } catch (e) {
          this.onProblem((e as Error).message);
          break;
        }
        if (bytes === undefined || (!bytes.length && !end)) break;
        const text = tail.take(bytes, end && bytes.length < CHUNK);
        if (text) this.onOutput(text);
        if (bytes.length) any = true;
        if (bytes.length < CHUNK) break;
      }
    }
    return any;
  }

  /** After the end: reads until nothing changes for two looks in a row, then flushes partial lines. */
  async drain(settleMs = 500, maxLooks = 10): Promise<void> {
    let quiet = 0;
    for (let i = 0; i < maxLooks && quiet < 2; i++) {
      quiet = (await this.poll()) ? 0 : quiet + 1;
      if (quiet < 2) await new Promise((r) => setTimeout(r, settleMs));
    }
    await this.poll(true);
  }
}
