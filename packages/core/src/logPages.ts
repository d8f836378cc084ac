import type { LogKind, LogReadResponse } from './api.js';

/** A page of a run's log cut into the job's output and the agent's notes, by the byte ranges in `page.notes`. */
export function splitLogPage(page: LogReadResponse): Array<{ kind: LogKind; text: string }> {
  const bytes = Buffer.from(page.data);
  const out: Array<{ kind: LogKind; text: string }> = [];
  let at = 0;
  for (const n of page.notes) {
    const start = Math.max(at, n.offset - page.offset);
    const end = Math.min(bytes.length, Math.max(start, n.offset - page.offset + n.size));
    if (start > at) out.push({ kind: 'output', text: bytes.subarray(at, start).toString('utf8') });
    if (end > start) out.push({ kind: 'note', text: bytes.subarray(start, end).toString('utf8') });
    at = end;
  }
  if (at < bytes.length) out.push({ kind: 'output', text: bytes.subarray(at).toString('utf8') });
  return out;
}
