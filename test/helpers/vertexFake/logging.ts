import type { IncomingMessage, ServerResponse } from 'node:http';
import { googleError, json, readBody } from '../gcpFake/http.js';

export interface LogEntry {
  logName: string;
  resource: { type: 'ml_job'; labels: { job_id: string; task_name: string; project_id: string } };
  textPayload: string;
  timestamp: string;
  receiveTimestamp: string;
  insertId: string;
  severity: 'INFO' | 'ERROR';
}

/**
 * Cloud Logging's `POST /v2/entries:list` over the container output of fake custom jobs. Only the filter shapes a
 * known client sends are understood (Liftoff's runner and gcloud's `ai custom-jobs stream-logs`): a conjunction of
 * `resource.type="ml_job"`, `resource.labels.job_id="<id>"`, optionally `resource.labels.task_name="<t>"`,
 * `timestamp>"<rfc3339>"` / `>=`, and gcloud's `timestamp<"<t>"` and `((timestamp="<t>" AND insertId>"<id>") OR
 * timestamp>"<t>")`. Anything else is a 400, so a change in what the runner asks is caught here rather
 * than silently answered. Timestamps have millisecond resolution, so entries tie as in the real service.
 */
export class FakeLogging {
  readonly entries: LogEntry[] = [];
  /** Every filter asked, in order (tests check what the runner sent). */
  readonly filters: string[] = [];
  /** Largest page served (a test lowers it to exercise paging). */
  maxPageSize = 1000;
  private seq = 0;

  constructor(private readonly project: string) {}

  append(jobId: string, task: string, text: string, severity: LogEntry['severity'] = 'INFO'): void {
    const t = new Date().toISOString();
    this.entries.push({
      logName: `projects/${this.project}/logs/${task}`,
      resource: { type: 'ml_job', labels: { job_id: jobId, task_name: task, project_id: this.project } },
      textPayload: text,
      timestamp: t,
      receiveTimestamp: t,
      insertId: `${(++this.seq).toString(36).padStart(8, '0')}${Math.random().toString(36).slice(2, 6)}`,
      severity,
    });
  }

  async list(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let body: Record<string, unknown>;
    try {
      body = JSON.parse((await readBody(req)).toString('utf8') || '{}') as Record<string, unknown>;
    } catch {
      return googleError(res, 400, 'INVALID_ARGUMENT', 'Invalid JSON payload received.');
    }
    const known = [
      'resourceNames',
      'resource_names',
      'filter',
      'orderBy',
      'order_by',
      'pageSize',
      'page_size',
      'pageToken',
      'page_token',
    ];
    const unknown = Object.keys(body).find((k) => !known.includes(k));
    if (unknown)
      return googleError(
        res,
        400,
        'INVALID_ARGUMENT',
        `Invalid JSON payload received. Unknown name "${unknown}": Cannot find field.`,
      );
    const names = body.resourceNames ?? body.resource_names;
    if (!Array.isArray(names) || !names.length || names.some((n) => n !== `projects/${this.project}`)) {
      return googleError(
        res,
        400,
        'INVALID_ARGUMENT',
        `resourceNames must be ["projects/${this.project}"] (got ${JSON.stringify(names)})`,
      );
    }
    const filterText = typeof body.filter === 'string' ? body.filter : '';
    this.filters.push(filterText);
    const match = parseFilter(filterText);
    if (typeof match === 'string') return googleError(res, 400, 'INVALID_ARGUMENT', match);
    const orderBy = body.orderBy ?? body.order_by ?? 'timestamp asc';
    const order = typeof orderBy === 'string' ? orderBy.trim() : '';
    if (order !== 'timestamp asc' && order !== 'timestamp desc') {
      return googleError(
        res,
        400,
        'INVALID_ARGUMENT',
        `Unsupported orderBy "${order}" (the fake knows "timestamp asc|desc").`,
      );
    }
    const size = Math.min(Number(body.pageSize ?? body.page_size ?? 50) || 50, this.maxPageSize);
    const start =
      (body.pageToken ?? body.page_token)
        ? Number(Buffer.from(String(body.pageToken ?? body.page_token), 'base64url').toString())
        : 0;
    if (!Number.isInteger(start) || start < 0) return googleError(res, 400, 'INVALID_ARGUMENT', 'Invalid page token.');
    const all = this.entries.filter(match);
    if (order === 'timestamp desc') all.reverse();
    const page = all.slice(start, start + size);
    const next = start + size < all.length ? Buffer.from(String(start + size)).toString('base64url') : undefined;
    json(res, 200, { entries: page, ...(next ? { nextPageToken: next } : {}) });
  }
}

/** The filter subset above → a predicate, or the 400 message. */
function parseFilter(filter: string): ((e: LogEntry) => boolean) | string {
  const checks: Array<(e: LogEntry) => boolean> = [];
  // gcloud's stream-logs position after the first page (command_lib/logs/stream.py GetFilterLowerBound).
  const position = /\(\(timestamp="([^"]+)" AND insertId>"([^"]+)"\) OR timestamp>"([^"]+)"\)/.exec(filter);
  if (position) {
    const [whole, tie = '', after = '', later = ''] = position;
    if (tie !== later || Number.isNaN(Date.parse(tie))) return `The fake Logging does not understand "${whole}".`;
    const t = Date.parse(tie);
    checks.push((e) => Date.parse(e.timestamp) > t || (Date.parse(e.timestamp) === t && e.insertId > after));
    filter = filter.replace(whole, 'resource.type="ml_job"');
  }
  const terms = filter
    .split(/\s+AND\s+/)
    .map((t) => t.trim())
    .filter(Boolean);
  let type = false;
  let job = false;
  for (const term of terms) {
    let m: RegExpExecArray | null;
    if (term === 'resource.type="ml_job"') type = true;
    else if ((m = /^resource\.labels\.job_id="(\d+)"$/.exec(term))) {
      const id = m[1];
      job = true;
      checks.push((e) => e.resource.labels.job_id === id);
    } else if ((m = /^resource\.labels\.task_name="([a-z0-9-]+)"$/.exec(term))) {
      const task = m[1];
      checks.push((e) => e.resource.labels.task_name === task);
    } else if ((m = /^timestamp<"([^"]+)"$/.exec(term)) && !Number.isNaN(Date.parse(m[1] ?? ''))) {
      // gcloud's upper bound (now minus its lag allowance).
      const t = Date.parse(m[1] ?? '');
      checks.push((e) => Date.parse(e.timestamp) < t);
    } else if ((m = /^timestamp(>=?)"([^"]+)"$/.exec(term)) && !Number.isNaN(Date.parse(m[2] ?? ''))) {
      const strict = m[1] === '>';
      const t = Date.parse(m[2] ?? '');
      checks.push((e) => (strict ? Date.parse(e.timestamp) > t : Date.parse(e.timestamp) >= t));
    } else return `The fake Logging does not understand the filter term "${term}" (filter: ${filter}).`;
  }
  if (!type || !job)
    return `The fake Logging needs resource.type="ml_job" AND resource.labels.job_id="<id>" (filter: ${filter}).`;
  return (e) => checks.every((c) => c(e));
}
