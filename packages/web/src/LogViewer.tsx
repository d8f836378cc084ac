import { useCallback, useEffect, useLayoutEffect, useRef, useState, type FormEvent } from 'react';
import { useVirtualizer } from '@tanstack/react-virtual';
import { useSession } from './hooks.js';
import { downloadRawLog, readLogPage, searchLogPage } from './logApi.js';
import { markMatches, splitPage, styleLine, type LogLine } from './logLines.js';
import type { LogState } from './logs.js';

/** Every row is one line, one height: no measuring, so a million lines cost what a hundred do. */
const ROW_PX = 18;
/** Bytes asked for per page while scrolling. */
const PAGE_BYTES = 256 << 10;
/** Paged lines kept in memory (beyond the live tail); the farthest from view go first. */
const MAX_PAGED_LINES = 50_000;
/** Matches collected per search; past this the count says "or more". */
const MAX_MATCHES = 10_000;

/** Lines from one page read: `lines[0]` is line `start`. */
interface Block {
  start: number;
  lines: LogLine[];
}

const lineFromHash = (): number | null => {
  const m = /^#L(\d{1,12})$/.exec(window.location.hash);
  return m ? Number(m[1]) : null;
};

/**
 * The run page's log (issue 18): virtualised rows (only those in view are in the DOM), paged from the server by line
 * as they scroll into view, the live tail fed by the log stream a frame at a time, ANSI styles, `\r` progress lines
 * at their latest state, server-side search, `#L<n>` line links, and a raw download.
 */
export function LogViewer({ runId, logs }: { runId: string; logs: LogState }) {
  const { api } = useSession();
  const tail = logs.tail;
  const scrollRef = useRef<HTMLDivElement>(null);
  const blocks = useRef<Block[]>([]);
  const loading = useRef<number | null>(null);
  const retryAt = useRef(0);
  const lastScrollTop = useRef(0);
  const [, setTick] = useState(0);
  const rerender = useCallback(() => setTick((t) => t + 1), []);
  const [selected, setSelected] = useState<number | null>(lineFromHash);
  const [follow, setFollow] = useState(() => lineFromHash() === null);
  const [pageError, setPageError] = useState<string | null>(null);
  const [downloading, setDownloading] = useState(false);
  const pendingJump = useRef<number | null>(lineFromHash());

  useEffect(() => tail.subscribe(rerender), [tail, rerender]);
  useEffect(() => {
    blocks.current = [];
    loading.current = null;
  }, [runId]);

  const total = tail.ready ? tail.totalLines : 0;
  const virtualizer = useVirtualizer({
    count: total,
    getScrollElement: () => scrollRef.current,
    estimateSize: () => ROW_PX,
    overscan: 30,
  });

  /** Line `n` (1-based) if it is in memory. */
  const lineAt = (n: number): LogLine | undefined => {
    if (n >= tail.startLine) return tail.line(n);
    const list = blocks.current;
    let lo = 0;
    let hi = list.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const b = list[mid] as Block;
      if (n < b.start) hi = mid - 1;
      else if (n >= b.start + b.lines.length) lo = mid + 1;
      else return b.lines[n - b.start];
    }
    return undefined;
  };

  const items = virtualizer.getVirtualItems();
  const firstShown = (items[0]?.index ?? 0) + 1;
  const lastShown = (items.at(-1)?.index ?? -1) + 1;

  // Pages in the first line in view (with overscan) that is not in memory; one request at a time, then again.
  useEffect(() => {
    if (loading.current !== null || !tail.ready || Date.now() < retryAt.current) return;
    let missing: number | null = null;
    for (let n = firstShown; n <= lastShown; n++)
      if (!lineAt(n)) {
        missing = n;
        break;
      }
    if (missing === null) return;
    loading.current = missing;
    const want = missing;
    readLogPage(api, runId, { line: want }, PAGE_BYTES)
      .then((page) => {
        const lines = splitPage(page.data, page.offset, page.notes).slice(0, Math.max(0, tail.startLine - page.line));
        if (lines.length) insertBlock(blocks.current, { start: page.line, lines }, (firstShown + lastShown) / 2);
        setPageError(null);
      })
      .catch((e: Error) => {
        // Not again at once: a server that is down would otherwise be asked on every render.
        retryAt.current = Date.now() + 2000;
        setTimeout(rerender, 2000);
        setPageError(e.message);
      })
      .finally(() => {
        if (loading.current === want) loading.current = null;
        rerender();
      });
  });

  // Follow: keep the last line in view as the tail grows.
  useLayoutEffect(() => {
    if (follow && total > 0) virtualizer.scrollToIndex(total - 1, { align: 'end' });
  });

  const jumpTo = useCallback(
    (line: number) => {
      setFollow(false);
      setSelected(line);
      virtualizer.scrollToIndex(Math.max(0, line - 1), { align: 'center' });
    },
    [virtualizer],
  );

  // A #L<n> in the URL (at open, or typed later) selects that line and scrolls to it once the log's length is known.
  useEffect(() => {
    const line = pendingJump.current;
    if (line === null || !tail.ready || total === 0) return;
    pendingJump.current = null;
    jumpTo(Math.min(line, total));
  });
  useEffect(() => {
    const onHash = () => {
      const line = lineFromHash();
      if (line !== null) {
        pendingJump.current = line;
        rerender();
      }
    };
    window.addEventListener('hashchange', onHash);
    return () => window.removeEventListener('hashchange', onHash);
  }, [rerender]);

  const selectLine = (line: number) => {
    setSelected(line);
    setFollow(false);
    window.history.replaceState(
      window.history.state,
      '',
      `${window.location.pathname}${window.location.search}#L${line}`,
    );
  };

  const search = useLogSearch(runId, jumpTo);

  const download = async () => {
    setDownloading(true);
    try {
      const url = URL.createObjectURL(await downloadRawLog(api, runId));
      const a = document.createElement('a');
      a.href = url;
      a.download = `run-${runId}.log`;
      a.click();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
    } catch (e) {
      setPageError((e as Error).message);
    } finally {
      setDownloading(false);
    }
  };

  const inMemory = tail.lines.length + blocks.current.reduce((n, b) => n + b.lines.length, 0);
  const partial = total > 0 && tail.startLine > 1 && inMemory < total;
  const label = { connecting: 'connecting…', live: 'live', retrying: 'reconnecting…', ended: 'complete' }[logs.phase];

  return (
    <section className="card log-viewer" aria-labelledby="logs-title">
      <div className="card-head">
        <h2 id="logs-title">Logs</h2>
        <span className={`live live-${logs.phase}`} data-phase={logs.phase} role="status">
          <span className="dot" aria-hidden="true" />
          {label}
        </span>
        <span className="muted small" data-testid="log-lines">
          {total.toLocaleString()} lines
        </span>
        <button
          type="button"
          className="btn btn-small"
          onClick={() => void download()}
          disabled={downloading}
          data-testid="log-download"
        >
          {downloading ? 'Downloading…' : 'Download raw log'}
        </button>
      </div>
      <div className="log-tools">
        <form
          className="log-search"
          role="search"
          onSubmit={(e: FormEvent) => {
            e.preventDefault();
            search.submit();
          }}
        >
          <input
            type="search"
            aria-label="Search the log"
            placeholder="Search the log (server-side)"
            value={search.query}
            onChange={(e) => search.setQuery(e.target.value)}
            maxLength={1024}
          />
          <label className="check small">
            <input
              type="checkbox"
              checked={search.caseSensitive}
              onChange={(e) => search.setCaseSensitive(e.target.checked)}
            />
            Match case
          </label>
          <button type="submit" className="btn btn-small">
            Find
          </button>
          <button
            type="button"
            className="btn btn-small"
            aria-label="Previous match"
            disabled={!search.matches.length}
            onClick={() => search.step(-1)}
          >
            ↑
          </button>
          <button
            type="button"
            className="btn btn-small"
            aria-label="Next match"
            disabled={!search.matches.length}
            onClick={() => search.step(1)}
          >
            ↓
          </button>
          <span className="muted small" role="status" data-testid="log-search-status">
            {search.status}
          </span>
        </form>
        <form
          className="log-goto"
          onSubmit={(e) => {
            e.preventDefault();
            const n = Number(new FormData(e.currentTarget).get('line'));
            if (!Number.isInteger(n) || n < 1 || total === 0) return;
            selectLine(Math.min(n, total));
            jumpTo(Math.min(n, total));
          }}
        >
          <input name="line" type="number" min={1} aria-label="Go to line" placeholder="Line" />
          <button type="submit" className="btn btn-small">
            Go
          </button>
        </form>
        {!follow && (
          <button
            type="button"
            className="btn btn-small btn-primary"
            onClick={() => setFollow(true)}
            data-testid="log-follow"
          >
            Follow the end
          </button>
        )}
      </div>
      {partial && (
        <p className="log-partial small" data-testid="log-partial">
          {total.toLocaleString()} lines: those out of view load from the server as you scroll to them. For the whole
          file at once, use <strong>Download raw log</strong>.
        </p>
      )}
      {(pageError ?? (logs.error && logs.phase !== 'live')) && (
        <p className="field-error pad-x">{pageError ?? logs.error}</p>
      )}
      <div
        ref={scrollRef}
        className="log-scroll"
        style={{ height: `min(70vh, ${Math.max(total, 6) * ROW_PX + 12}px)` }}
        data-testid="logs"
        tabIndex={0}
        aria-label="Run output"
        onScroll={(e) => {
          const el = e.currentTarget;
          // Following only ever scrolls down; a scroll up away from the end is the user's, and stops it. (A growing
          // log can leave the view short of the end for a frame without anyone scrolling: that must not.)
          const up = el.scrollTop < lastScrollTop.current - 1;
          lastScrollTop.current = el.scrollTop;
          const atBottom = el.scrollHeight - el.scrollTop - el.clientHeight < ROW_PX * 2;
          if (follow && up && !atBottom) setFollow(false);
        }}
      >
        {total === 0 ? (
          <div className="log-empty muted">{logs.phase === 'ended' ? '(no output)' : 'Waiting for output…'}</div>
        ) : (
          <div className="log-rows" style={{ height: virtualizer.getTotalSize() }}>
            {items.map((v) => {
              const n = v.index + 1;
              const line = lineAt(n);
              const cls = [
                'log-row',
                line?.note ? 'log-note' : '',
                n === selected ? 'log-selected' : '',
                search.lines.has(n) ? 'log-hit' : '',
              ].join(' ');
              return (
                <div key={v.key} className={cls} data-line={n} style={{ transform: `translateY(${v.start}px)` }}>
                  <a
                    className="log-ln"
                    href={`#L${n}`}
                    tabIndex={-1}
                    onClick={(e) => {
                      e.preventDefault();
                      selectLine(n);
                    }}
                  >
                    {n}
                  </a>
                  {line ? (
                    <span className="log-text" title={line.note ? 'from the Liftoff agent, not the job' : undefined}>
                      {(search.highlight && search.lines.has(n)
                        ? markMatches(styleLine(line.text), search.highlight.query, search.highlight.caseSensitive)
                        : styleLine(line.text)
                      ).map((s, i) => {
                        const style =
                          s.color || s.background ? { color: s.color, background: s.background } : undefined;
                        return 'mark' in s && s.mark ? (
                          <mark key={i} className="log-mark">
                            {s.text}
                          </mark>
                        ) : (
                          <span key={i} className={s.className || undefined} style={style}>
                            {s.text}
                          </span>
                        );
                      })}
                    </span>
                  ) : (
                    <span className="log-text muted">…</span>
                  )}
                </div>
              );
            })}
          </div>
        )}
      </div>
    </section>
  );
}

/** Adds a page's lines to the sorted blocks (replacing what they overlap), then drops the blocks farthest from view. */
function insertBlock(list: Block[], block: Block, center: number): void {
  const end = block.start + block.lines.length;
  const kept = list.filter((b) => b.start + b.lines.length <= block.start || b.start >= end);
  kept.push(block);
  kept.sort((a, b) => a.start - b.start);
  let count = kept.reduce((n, b) => n + b.lines.length, 0);
  while (count > MAX_PAGED_LINES && kept.length > 1) {
    const far = kept.reduce((best, b, i) => {
      const d = Math.abs(b.start + b.lines.length / 2 - center);
      const bd = Math.abs((kept[best] as Block).start + (kept[best] as Block).lines.length / 2 - center);
      return d > bd ? i : best;
    }, 0);
    count -= (kept[far] as Block).lines.length;
    kept.splice(far, 1);
  }
  list.splice(0, list.length, ...kept);
}

/** The search box's state: pages of the server's search collected until the log's end (or MAX_MATCHES). */
function useLogSearch(runId: string, jumpTo: (line: number) => void) {
  const { api } = useSession();
  const [query, setQuery] = useState('');
  const [caseSensitive, setCaseSensitive] = useState(false);
  const [matches, setMatches] = useState<Array<{ offset: number; line: number }>>([]);
  const [current, setCurrent] = useState(-1);
  const [state, setState] = useState<{ searching: boolean; more: boolean; error?: string; asked?: string }>({
    searching: false,
    more: false,
  });
  const [lines, setLines] = useState<Set<number>>(new Set());
  const abort = useRef<AbortController | null>(null);
  useEffect(() => () => abort.current?.abort(), []);

  const step = (by: number) => {
    if (!matches.length) return;
    const next = (current + by + matches.length) % matches.length;
    setCurrent(next);
    const m = matches[next];
    if (m) jumpTo(m.line);
  };

  const submit = () => {
    const key = `${caseSensitive}:${query}`;
    if (state.asked === key && matches.length) return step(1);
    abort.current?.abort();
    const ctl = new AbortController();
    abort.current = ctl;
    setMatches([]);
    setLines(new Set());
    setCurrent(-1);
    if (!query) return setState({ searching: false, more: false });
    setState({ searching: true, more: false, asked: key });
    void (async () => {
      const found: Array<{ offset: number; line: number }> = [];
      let cursor: number | null = 0;
      try {
        while (cursor !== null && found.length < MAX_MATCHES) {
          const page = await searchLogPage(api, runId, query, caseSensitive, cursor, ctl.signal);
          const first = found.length === 0 && page.matches[0];
          found.push(...page.matches.slice(0, MAX_MATCHES - found.length));
          cursor = page.next_cursor;
          setMatches([...found]);
          setLines(new Set(found.map((m) => m.line)));
          if (first) {
            setCurrent(0);
            jumpTo(first.line);
          }
        }
        setState({ searching: false, more: cursor !== null, asked: key });
      } catch (e) {
        if (!ctl.signal.aborted) setState({ searching: false, more: false, error: (e as Error).message, asked: key });
      }
    })();
  };

  const count = `${matches.length.toLocaleString()}${state.more ? '+' : ''}`;
  const status = state.error
    ? state.error
    : !state.asked
      ? ''
      : matches.length === 0
        ? state.searching
          ? 'searching…'
          : 'no matches'
        : `${current + 1} of ${count}${state.searching ? ' (searching…)' : ''}`;
  // What the rows mark: the query as it was searched (not as it is being edited).
  const highlight = state.asked
    ? { query: state.asked.slice(state.asked.indexOf(':') + 1), caseSensitive: state.asked.startsWith('true') }
    : null;
  return { query, setQuery, caseSensitive, setCaseSensitive, matches, step, submit, status, lines, highlight };
}
