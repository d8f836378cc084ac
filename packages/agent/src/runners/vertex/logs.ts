import type { Logger } from 'pino';
import type { LogEntry, VertexApi } from './rest.js';

/**
 * Follows a custom job's Cloud Logging entries (`resource.type="ml_job"`, its job id): each poll reads, page by
 * page in timestamp order, everything from the last timestamp seen on (`>=`, not `>`: entries tie on timestamps,
 * and a strict bound would drop the rest of a tie), de-duplicated by insertId. With more than one task, each line
 * is prefixed `[workerpool0-1]`. W&B's runner reads no logs at all.
 */
export class LogFollower {
  private last: string | undefined;
  /** insertIds seen at timestamps >= `last` minus nothing older: pruned each pass so the set stays small. */
  private seen = new Map<string, string>();
  private busy: Promise<void> = Promise.resolve();

  constructor(
    private readonly api: VertexApi,
    private readonly jobId: string,
    private readonly onOutput: (text: string) => void,
    private readonly logger: Logger,
    private tasks: number,
  ) {}

  get filterNow(): string {
    const base = `resource.type="ml_job" AND resource.labels.job_id="${this.jobId}"`;
    return this.last ? `${base} AND timestamp>="${this.last}"` : base;
  }

  /** One pass; passes never overlap. */
  poll(): Promise<void> {
    this.busy = this.busy
      .then(() => this.pass())
      .catch((err: unknown) => {
        this.logger.warn({ err, job: this.jobId }, 'reading the custom job log failed; retrying at the next poll');
      });
    return this.busy;
  }

  private async pass(): Promise<void> {
    const filter = this.filterNow;
    let pageToken: string | undefined;
    do {
      const page = await this.api.entries(filter, pageToken);
      const fresh = (page.entries ?? []).filter((e) => !e.insertId || !this.seen.has(e.insertId));
      const names = new Set(fresh.map((e) => e.resource?.labels?.task_name).filter(Boolean));
      if (names.size > 1) this.tasks = Math.max(this.tasks, names.size);
      const text = fresh.map((e) => `${this.prefix(e)}${lineOf(e)}\n`).join('');
      for (const e of fresh) {
        if (e.insertId) this.seen.set(e.insertId, e.timestamp ?? '');
        if (e.timestamp && (!this.last || Date.parse(e.timestamp) > Date.parse(this.last))) this.last = e.timestamp;
      }
      if (text) this.onOutput(text);
      pageToken = page.nextPageToken || undefined;
    } while (pageToken);
    if (this.last) {
      const bound = Date.parse(this.last);
      for (const [id, t] of this.seen) if (Date.parse(t) < bound) this.seen.delete(id);
    }
  }

  private prefix(e: LogEntry): string {
    return this.tasks > 1 ? `[${e.resource?.labels?.task_name ?? '?'}] ` : '';
  }
}

function lineOf(e: LogEntry): string {
  const m = e.jsonPayload?.message;
  return typeof m === 'string' ? m : (e.textPayload ?? '');
}
