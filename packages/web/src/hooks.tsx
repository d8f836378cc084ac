import {
  createContext,
  useCallback,
  useContext,
  useEffect,
  useRef,
  useState,
  useSyncExternalStore,
  type AnchorHTMLAttributes,
  type MouseEvent,
} from 'react';
import { ApiError, type Api, type Whoami } from './api.js';

export const POLL_MS = 2000;

export interface Session {
  api: Api;
  whoami: Whoami;
  entity: string;
  setEntity: (entity: string) => void;
  /** Called when the API answers 401: the key stopped working. */
  signOut: (reason?: string) => void;
}

export const SessionContext = createContext<Session | null>(null);

export function useSession(): Session {
  const s = useContext(SessionContext);
  if (!s) throw new Error('useSession outside SessionContext');
  return s;
}

export interface Polled<T> {
  data: T | undefined;
  error: ApiError | undefined;
  reload: () => void;
}

/** Longest wait between two tries while the server cannot be reached or fails. */
export const MAX_BACKOFF_MS = 30_000;

// ---- the connection: whether the last request of any poll reached the server, for the "stale data" banner ----

export interface Connection {
  /** Since when polls fail to reach the server (or get 5xx answers); null while they succeed. */
  downSince: number | null;
  /** When a poll last got an answer. */
  lastOk: number | null;
  /** When the next try is due while down. */
  retryAt: number | null;
}
let connection: Connection = { downSince: null, lastOk: null, retryAt: null };
const connectionListeners = new Set<() => void>();
function setConnection(next: Connection): void {
  connection = next;
  for (const fn of connectionListeners) fn();
}
export function useConnection(): Connection {
  return useSyncExternalStore(
    (fn) => {
      connectionListeners.add(fn);
      return () => connectionListeners.delete(fn);
    },
    () => connection,
  );
}
const isOutage = (e: ApiError) => e.status === 0 || e.status >= 500;
/** Answers that will not change by asking again: the thing is not there, or not for this key. */
export const isFinal = (e: ApiError) => e.status === 403 || e.status === 404;

/**
 * Loads `fn` now and every `interval` ms (while the tab is visible), keeping the last good data on transient errors.
 * Polling stops where nothing can change any more (issue 18): on a 403 or 404 answer, and once `done(data)` says so
 * (a finished run), and not at all while `enabled` is false (the page's subject is gone); `reload` starts it again. While the server is unreachable or failing, the tries back off
 * (doubling up to MAX_BACKOFF_MS) and the connection store says since when, for the stale-data banner. A 401 signs
 * the user out.
 */
export function usePoll<T>(
  fn: (api: Api) => Promise<T>,
  deps: readonly unknown[],
  interval = POLL_MS,
  opts: { done?: (data: T) => boolean; enabled?: boolean } = {},
): Polled<T> {
  const { done, enabled = true } = opts;
  const session = useSession();
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState<ApiError | undefined>(undefined);
  const [tick, setTick] = useState(0);
  const fnRef = useRef(fn);
  fnRef.current = fn;
  const doneRef = useRef(done);
  doneRef.current = done;

  useEffect(() => {
    setData(undefined);
    setError(undefined);
  }, deps);

  useEffect(() => {
    if (!enabled) return;
    let stopped = false;
    let failures = 0;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const again = (ms: number) => {
      if (!stopped && interval > 0) timer = setTimeout(() => void load(), ms);
    };
    const load = async () => {
      // A hidden tab skips its turns; it catches up on the first one after it is shown again.
      if (document.hidden && interval > 0) return again(interval);
      try {
        const value = await fnRef.current(session.api);
        if (stopped) return;
        failures = 0;
        if (connection.downSince !== null || connection.lastOk === null || Date.now() - connection.lastOk > 1000)
          setConnection({ downSince: null, lastOk: Date.now(), retryAt: null });
        setData(value);
        setError(undefined);
        if (doneRef.current?.(value)) return;
        again(interval);
      } catch (e) {
        if (stopped) return;
        const err = e instanceof ApiError ? e : new ApiError(0, 'CLIENT', (e as Error).message);
        if (err.status === 401) session.signOut(err.message);
        setError(err);
        if (isFinal(err)) return;
        if (isOutage(err)) {
          failures += 1;
          const wait = Math.min(interval * 2 ** failures, MAX_BACKOFF_MS);
          setConnection({
            downSince: connection.downSince ?? Date.now(),
            lastOk: connection.lastOk,
            retryAt: Date.now() + wait,
          });
          return again(wait);
        }
        again(interval);
      }
    };
    void load();
    return () => {
      stopped = true;
      if (timer) clearTimeout(timer);
    };
  }, [...deps, tick, session.api, interval, enabled]);

  const reload = useCallback(() => setTick((t) => t + 1), []);
  return { data, error, reload };
}

/** Re-renders every `ms` so relative times ("5 s ago") stay current. */
export function useNow(ms = 1000): number {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), ms);
    return () => clearInterval(t);
  }, [ms]);
  return now;
}

// ---- routing: the History API; the server answers index.html for every non-API path ----

const listeners = new Set<() => void>();
const subscribe = (fn: () => void) => {
  listeners.add(fn);
  window.addEventListener('popstate', fn);
  return () => {
    listeners.delete(fn);
    window.removeEventListener('popstate', fn);
  };
};
const snapshot = () => window.location.pathname + window.location.search;

export function useLocation(): string {
  return useSyncExternalStore(subscribe, snapshot);
}

export function navigate(to: string, opts: { replace?: boolean } = {}): void {
  if (to === snapshot()) return;
  if (opts.replace) window.history.replaceState(null, '', to);
  else window.history.pushState(null, '', to);
  window.scrollTo(0, 0);
  for (const fn of listeners) fn();
}

/** An anchor that navigates inside the app (a real link: middle click, copy link and keyboard work). */
export function Link({ href, onClick, ...rest }: AnchorHTMLAttributes<HTMLAnchorElement> & { href: string }) {
  const click = (e: MouseEvent<HTMLAnchorElement>) => {
    onClick?.(e);
    if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    e.preventDefault();
    navigate(href);
  };
  return <a href={href} onClick={click} {...rest} />;
}
