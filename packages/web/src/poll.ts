import { QueryClient, hashKey, useQuery, type Query } from '@tanstack/react-query';
import { useCallback, useRef, useSyncExternalStore } from 'react';
import { ApiError } from './api.js';
import { POLL_MS, useSession, type Session } from './hooks.js';
import type { Resource } from './resources.js';

/**
 * Polling reads on TanStack Query (issue 18): its cache lets two views of one resource share one request and show
 * the same data, and it owns the timers. What it does not know is ours: when polling stops, the backoff during an
 * outage, and the connection store of the stale-data banner.
 */

/** Longest wait between two tries while the server cannot be reached or fails. */
export const MAX_BACKOFF_MS = 30_000;

export const queryClient = new QueryClient({
  defaultOptions: {
    queries: {
      // Our backoff governs failed reads (refetchInterval below); react-query's own retries would double it.
      retry: false,
      // A hidden tab skips its turns and catches up on the first one after it is shown (refetchIntervalInBackground
      // false); coming back is not a reason of its own to ask, nor is the browser's idea of being online: a
      // request that cannot get through is what says the server is unreachable.
      refetchIntervalInBackground: false,
      refetchOnWindowFocus: false,
      refetchOnReconnect: false,
      networkMode: 'always',
      // A view opening on a resource another view just read shows that answer instead of asking again at once.
      staleTime: POLL_MS,
    },
  },
});

export interface Polled<T> {
  data: T | undefined;
  error: ApiError | undefined;
  reload: () => void;
}

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
/** Besides those, a 401 ends polling: the key stopped working and the session signs out. */
const stopsPolling = (e: ApiError) => isFinal(e) || e.status === 401;

/** Failed tries in a row during an outage, by query hash: react-query's own count starts over at every fetch. */
const outageFailures = new Map<string, number>();
const backoff = (interval: number, failures: number) => Math.min(interval * 2 ** failures, MAX_BACKOFF_MS);

/** The front of every cache key: whose data it is (this sign-in's key, and the entity it looks at). */
export const sessionKey = (s: Session): readonly unknown[] => ['liftoff', s.keyId, s.entity];

/** Forgets every cached answer and outage count, e.g. at sign-out. */
export function clearCache(): void {
  queryClient.clear();
  outageFailures.clear();
}

async function load<T>(resource: Resource<T>, session: Session, hash: string, interval: number): Promise<T> {
  try {
    const value = await resource.load(session.api);
    outageFailures.delete(hash);
    if (connection.downSince !== null || connection.lastOk === null || Date.now() - connection.lastOk > 1000)
      setConnection({ downSince: null, lastOk: Date.now(), retryAt: null });
    return value;
  } catch (e) {
    const err = e instanceof ApiError ? e : new ApiError(0, 'CLIENT', (e as Error).message);
    if (err.status === 401) session.signOut(err.message);
    if (isOutage(err)) {
      const failures = (outageFailures.get(hash) ?? 0) + 1;
      outageFailures.set(hash, failures);
      setConnection({
        downSince: connection.downSince ?? Date.now(),
        lastOk: connection.lastOk,
        retryAt: Date.now() + (interval > 0 ? backoff(interval, failures) : 0),
      });
    } else outageFailures.delete(hash);
    throw err;
  }
}

/** When this observer asks next, or false where nothing can change any more. */
function nextPoll<T>(
  query: Query<T, ApiError, T, readonly unknown[]>,
  interval: number,
  done: ((data: T) => boolean) | undefined,
): number | false {
  if (interval <= 0) return false;
  const { data, error } = query.state;
  if (error && stopsPolling(error)) return false;
  if (data !== undefined && !error && done?.(data)) return false;
  const failures = outageFailures.get(query.queryHash);
  return failures ? backoff(interval, failures) : interval;
}

/**
 * Loads `resource` now and every `interval` ms (while the tab is visible; 0: once), keeping the last good data on
 * transient errors. Polling stops where nothing can change any more (issue 18): on a 401, 403 or 404 answer, and
 * once `done(data)` says so (a finished run), and not at all while `enabled` is false (the page's subject is gone);
 * `reload` asks again. While the server is unreachable or failing, the tries back off (doubling up to
 * MAX_BACKOFF_MS) and the connection store says since when, for the stale-data banner. A 401 signs the user out.
 */
export function usePoll<T>(
  resource: Resource<T>,
  interval = POLL_MS,
  opts: { done?: (data: T) => boolean; enabled?: boolean } = {},
): Polled<T> {
  const { done, enabled = true } = opts;
  const session = useSession();
  const doneRef = useRef(done);
  doneRef.current = done;
  const queryKey = [...sessionKey(session), ...resource.key];
  const query = useQuery<T, ApiError, T, readonly unknown[]>({
    queryKey,
    queryFn: ({ queryKey: key }) => load(resource, session, hashKey(key), interval),
    enabled,
    refetchInterval: (q) => nextPoll(q, interval, doneRef.current),
  });
  const { refetch } = query;
  const reload = useCallback(() => void refetch(), [refetch]);
  return { data: query.data, error: query.error ?? undefined, reload };
}
