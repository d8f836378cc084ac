import type { RunFilters } from './api.js';

/**
 * The global runs page's state in the URL (`/runs?state=failed&queue=train&agent=a1&q=mlp&since=2026-12-01T10:00`),
 * so back/forward, a reload and a shared link show the same list. Times are the browser's local date-time as a
 * datetime-local input writes it; the API gets them as ms. `cursor` is the page (a reload shows that page again).
 */
export interface RunsFilterView {
  state: string[];
  queue: string;
  agent: string;
  q: string;
  since: string;
  until: string;
  cursor: string;
}

const KEYS = ['state', 'queue', 'agent', 'q', 'since', 'until', 'cursor'] as const;

export function readRunsFilters(location: string): RunsFilterView {
  const p = new URLSearchParams(location.split('?')[1] ?? '');
  return {
    state: (p.get('state') ?? '').split(',').filter(Boolean),
    queue: p.get('queue') ?? '',
    agent: p.get('agent') ?? '',
    q: p.get('q') ?? '',
    since: p.get('since') ?? '',
    until: p.get('until') ?? '',
    cursor: p.get('cursor') ?? '',
  };
}

export function runsFiltersHref(view: Partial<RunsFilterView>, path = '/runs'): string {
  const p = new URLSearchParams();
  for (const k of KEYS) {
    const v = view[k];
    const text = Array.isArray(v) ? v.join(',') : (v ?? '');
    if (text) p.set(k, text);
  }
  const q = p.toString();
  return q ? `${path}?${q}` : path;
}

/** A datetime-local value (local time) as ms; undefined when empty or not a time. */
const localMs = (v: string): number | undefined => {
  if (!v) return undefined;
  const ms = new Date(v).getTime();
  return Number.isFinite(ms) ? ms : undefined;
};

export function apiFilters(view: RunsFilterView): RunFilters {
  return {
    state: view.state.join(',') || undefined,
    queue: view.queue || undefined,
    agent: view.agent || undefined,
    q: view.q || undefined,
    since: localMs(view.since),
    until: localMs(view.until),
  };
}
