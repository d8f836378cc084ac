import type { ReactNode } from 'react';
import { Router, useLocation } from 'wouter';
import { navigate as browserNavigate, useLocationProperty } from 'wouter/use-browser-location';

/**
 * Routing on wouter (issue 18): the History API, with the server answering index.html for every non-API path.
 * Our additions: a navigation to the URL already shown adds no history entry, a navigation scrolls to the top as a
 * page load does, and pages read the path and query string as the address bar has them (undecoded).
 */

export { Link } from 'wouter';

const current = () => window.location.pathname + window.location.search;

/** Goes to `to` (a path with its query string), unless it is already shown. */
export function navigate(to: string, opts: { replace?: boolean } = {}): void {
  if (to === current()) return;
  browserNavigate(to, { replace: opts.replace ?? false });
  window.scrollTo(0, 0);
}

/**
 * wouter decodes the path (decodeURI) before matching, which would leave %2F, %23, %3F... encoded in a name but
 * decode %25, so a name decoded again could change. Escaping every "%" first makes its decoding give back the path
 * exactly as in the address bar; the route table decodes each parameter once (decodeURIComponent).
 */
const rawPath = () => window.location.pathname.replace(/%/g, '%25');

function useAppLocation(): [string, typeof navigate] {
  return [useLocationProperty(rawPath), navigate];
}

export function AppRouter({ children }: { children: ReactNode }) {
  return <Router hook={useAppLocation}>{children}</Router>;
}

/** The navigate function of the router. */
export function useNavigate(): (to: string, opts?: { replace?: boolean }) => void {
  return useLocation()[1];
}

/** The path and query string as the address bar has them (undecoded: the filters code parses the query itself). */
export function useUrl(): string {
  return useLocationProperty(current);
}
