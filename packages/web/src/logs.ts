import { useEffect, useRef, useState } from 'react';
import { createParser } from 'eventsource-parser';
import { ApiError, enc, type Run } from './api.js';
import { useSession } from './hooks.js';

export interface LogState {
  text: string;
  /** Byte offset the next chunk starts at (the `id:` of the last `log` event). */
  offset: number;
  /** connecting → live → ended; `retrying` after a dropped connection. */
  phase: 'connecting' | 'live' | 'retrying' | 'ended';
  error?: string;
  /** The run as the stream's `end` event carried it. */
  endedRun?: Run;
}

const MAX_CHARS = 2_000_000;

/**
 * Follows `GET /api/runs/{id}/logs/stream` with fetch (EventSource cannot send the bearer header) and an SSE parser.
 * A dropped connection is resumed from the last offset; a reload starts from 0 and so shows the whole log again.
 */
export function useLogStream(runId: string): LogState {
  const { api, signOut } = useSession();
  const [state, setState] = useState<LogState>({ text: '', offset: 0, phase: 'connecting' });
  const offsetRef = useRef(0);

  useEffect(() => {
    const abort = new AbortController();
    offsetRef.current = 0;
    setState({ text: '', offset: 0, phase: 'connecting' });
    let ended = false;

    const follow = async () => {
      let delay = 500;
      while (!abort.signal.aborted && !ended) {
        try {
          const res = await fetch(`/api/runs/${enc(runId)}/logs/stream?offset=${offsetRef.current}`, {
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
              if (ev.event === 'log') {
                const chunk = JSON.parse(ev.data) as string;
                const next = Number(ev.id);
                if (Number.isFinite(next)) offsetRef.current = next;
                setState((s) => {
                  const text = s.text + chunk;
                  return {
                    ...s,
                    text: text.length > MAX_CHARS ? text.slice(text.length - MAX_CHARS) : text,
                    offset: offsetRef.current,
                  };
                });
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
