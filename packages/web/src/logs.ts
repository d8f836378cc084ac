import { useEffect, useRef, useState } from 'react';
import { createParser } from 'eventsource-parser';
import { ApiError, enc, type Api, type MetricPoint, type Run } from './api.js';
import { useSession } from './hooks.js';
import { readLogPage } from './logApi.js';
import { LogTail } from './logLines.js';

export interface LogState {
  /** The live end of the log: lines from its last line at open on, as the stream delivers them (logLines.ts). */
  tail: LogTail;
  /** connecting → live → ended; `retrying` after a dropped connection. */
  phase: 'connecting' | 'live' | 'retrying' | 'ended';
  error?: string;
  /** The run as the stream's `end` event carried it. */
  endedRun?: Run;
  /** Metric points as the stream delivered them (`metrics` events), in arrival order. */
  metrics: MetricPoint[];
}

/** Most metric points kept in the page (200 keys × 2,000 stored points, the server's own bounds). */
const MAX_METRIC_POINTS = 400_000;

/**
 * Where the stream starts: at the log's last line (read as a page), so opening a long log never streams it whole;
 * what comes before is paged by the viewer (LogViewer.tsx) as it is scrolled to.
 */
async function attachTail(api: Api, runId: string, tail: LogTail, signal: AbortSignal): Promise<number> {
  const head = await readLogPage(api, runId, { offset: 0 }, 1, signal);
  if (head.lines === 0) {
    tail.reset(1, '', false);
    return 0;
  }
  const last = await readLogPage(api, runId, { line: head.lines }, 1 << 20, signal);
  tail.reset(last.line, '', false);
  tail.append(last.data, last.notes.length > 0);
  return last.next_offset;
}

/**
 * Follows `GET /api/runs/{id}/logs/stream` with fetch (EventSource cannot send the bearer header) and an SSE parser.
 * It starts at the log's last line (attachTail) and feeds the tail; a dropped connection is resumed from the last
 * offset (and metric seq). The same stream carries the run's metric points (`metrics_after`).
 */
export function useLogStream(runId: string): LogState {
  const { api, signOut } = useSession();
  const [state, setState] = useState<LogState>(() => ({ tail: new LogTail(), phase: 'connecting', metrics: [] }));
  const offsetRef = useRef<number | null>(null);
  const metricSeqRef = useRef(-1);

  useEffect(() => {
    const abort = new AbortController();
    offsetRef.current = null;
    metricSeqRef.current = -1;
    const tail = new LogTail();
    setState({ tail, phase: 'connecting', metrics: [] });
    let ended = false;

    const follow = async () => {
      let delay = 500;
      while (!abort.signal.aborted && !ended) {
        try {
          if (offsetRef.current === null) offsetRef.current = await attachTail(api, runId, tail, abort.signal);
          const query = `offset=${offsetRef.current}&metrics_after=${metricSeqRef.current}`;
          const res = await fetch(`/api/runs/${enc(runId)}/logs/stream?${query}`, {
            headers: api.headers({ accept: 'text/event-stream' }),
            signal: abort.signal,
          });
          if (!res.ok || !res.body) {
            const body = (await res.json().catch(() => undefined)) as { error?: { message?: string } } | undefined;
            const err = new ApiError(res.status, 'STREAM', body?.error?.message ?? `HTTP ${res.status}`);
            if (res.status === 401) signOut(err.message);
            if (res.status === 404 || res.status === 401 || res.status === 403) {
              setState((s) => ({ ...s, phase: 'ended', error: err.message }));
              return;
            }
            throw err;
          }
          setState((s) => ({ ...s, phase: 'live', error: undefined }));
          delay = 500;
          const parser = createParser({
            onEvent(ev) {
              if (ev.event === 'log' || ev.event === 'note') {
                const chunk = JSON.parse(ev.data) as string;
                const next = Number(ev.id);
                if (Number.isFinite(next)) offsetRef.current = next;
                tail.append(chunk, ev.event === 'note');
              } else if (ev.event === 'metrics') {
                const points = JSON.parse(ev.data) as MetricPoint[];
                const last = points.at(-1);
                if (last) metricSeqRef.current = last.seq;
                setState((s) => ({ ...s, metrics: [...s.metrics, ...points].slice(-MAX_METRIC_POINTS) }));
              } else if (ev.event === 'end') {
                ended = true;
                const run = JSON.parse(ev.data) as Run;
                setState((s) => ({ ...s, phase: 'ended', endedRun: run }));
              }
            },
          });
          const decoder = new TextDecoder();
          const reader = res.body.getReader();
          for (;;) {
            const { value, done } = await reader.read();
            if (done) break;
            parser.feed(decoder.decode(value, { stream: true }));
          }
        } catch (e) {
          if (abort.signal.aborted) return;
          if (e instanceof ApiError && [401, 403, 404].includes(e.status)) {
            if (e.status === 401) signOut(e.message);
            setState((s) => ({ ...s, phase: 'ended', error: e.message }));
            return;
          }
          setState((s) => ({ ...s, phase: 'retrying', error: (e as Error).message }));
        }
        if (!ended && !abort.signal.aborted) {
          await new Promise((r) => setTimeout(r, delay));
          delay = Math.min(delay * 2, 5000);
          setState((s) => (s.phase === 'live' ? { ...s, phase: 'retrying' } : s));
        }
      }
    };
    void follow();
    return () => abort.abort();
  }, [runId, api, signOut]);

  return state;
}
