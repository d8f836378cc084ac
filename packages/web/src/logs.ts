import { useEffect, useRef, useState } from 'react';
import { createParser } from 'eventsource-parser';
import { ApiError, enc, type MetricPoint, type Run } from './api.js';
import { useSession } from './hooks.js';

/** A stretch of the log: the job's output, or the agent's `[liftoff]` notes (shown apart, so they cannot be forged). */
export interface LogPiece {
  note: boolean;
  text: string;
}

export interface LogState {
  text: string;
  pieces: LogPiece[];
  /** Byte offset the next chunk starts at (the `id:` of the last `log` event). */
  offset: number;
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

const MAX_CHARS = 2_000_000;

/** Appends to the pieces (joining one kind), keeping the last MAX_CHARS characters. */
function appendPiece(pieces: LogPiece[], piece: LogPiece): LogPiece[] {
  const out = [...pieces];
  const last = out.at(-1);
  if (last?.note === piece.note) out[out.length - 1] = { ...last, text: last.text + piece.text };
  else out.push(piece);
  let total = out.reduce((n, p) => n + p.text.length, 0);
  while (total > MAX_CHARS && out[0]) {
    const drop = Math.min(out[0].text.length, total - MAX_CHARS);
    total -= drop;
    if (drop === out[0].text.length) out.shift();
    else out[0] = { ...out[0], text: out[0].text.slice(drop) };
  }
  return out;
}

/**
 * Follows `GET /api/runs/{id}/logs/stream` with fetch (EventSource cannot send the bearer header) and an SSE parser.
 * A dropped connection is resumed from the last offset (and metric seq); a reload starts from 0 and so shows the whole
 * log again. The same stream carries the run's metric points (`metrics_after`).
 */
export function useLogStream(runId: string): LogState {
  const { api, signOut } = useSession();
  const [state, setState] = useState<LogState>({ text: '', pieces: [], offset: 0, phase: 'connecting', metrics: [] });
  const offsetRef = useRef(0);
  const metricSeqRef = useRef(-1);

  useEffect(() => {
    const abort = new AbortController();
    offsetRef.current = 0;
    metricSeqRef.current = -1;
    setState({ text: '', pieces: [], offset: 0, phase: 'connecting', metrics: [] });
    let ended = false;

    const follow = async () => {
      let delay = 500;
      while (!abort.signal.aborted && !ended) {
        try {
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
                setState((s) => {
                  const pieces = appendPiece(s.pieces, { note: ev.event === 'note', text: chunk });
                  return { ...s, pieces, text: pieces.map((p) => p.text).join(''), offset: offsetRef.current };
                });
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
