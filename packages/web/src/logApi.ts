import type { LogReadResponse, LogSearchResponse } from '@liftoff/core/web';
import { ApiError, enc, type Api } from './api.js';

/** A page of a run's log (`GET /api/runs/{id}/logs?limit=`) and of its search, docs/api.md: core's wire types. */
export type LogPage = LogReadResponse;
export type LogSearchPage = LogSearchResponse;

/** At most `limit` bytes of the log from the start of line `line` (1-based), or from byte `offset`. */
export function readLogPage(
  api: Api,
  runId: string,
  at: { line: number } | { offset: number },
  limit: number,
  signal?: AbortSignal,
): Promise<LogPage> {
  const where = 'line' in at ? `line=${at.line}` : `offset=${at.offset}`;
  return api.request<LogPage>('GET', `/api/runs/${enc(runId)}/logs?${where}&limit=${limit}`, undefined, signal);
}

/** One page of the server's literal search of the log, from byte `cursor`. */
export function searchLogPage(
  api: Api,
  runId: string,
  q: string,
  caseSensitive: boolean,
  cursor: number,
  signal?: AbortSignal,
): Promise<LogSearchPage> {
  const query = `q=${enc(q)}&case_sensitive=${caseSensitive}&cursor=${cursor}&limit=5000`;
  return api.request<LogSearchPage>('GET', `/api/runs/${enc(runId)}/logs/search?${query}`, undefined, signal);
}

/**
 * The whole stored log as a Blob. The key goes in a header, never a URL (as for outputs), so a plain link cannot
 * fetch it: the server streams it, the browser holds it until it is saved.
 */
export async function downloadRawLog(api: Api, runId: string): Promise<Blob> {
  let res: Response;
  try {
    res = await fetch(`/api/runs/${enc(runId)}/logs/raw`, { headers: api.headers() });
  } catch {
    throw new ApiError(0, 'UNREACHABLE', 'Cannot reach the Liftoff server. Is it running?');
  }
  if (!res.ok) throw new ApiError(res.status, `HTTP_${res.status}`, `Download failed: HTTP ${res.status}`);
  return res.blob();
}
