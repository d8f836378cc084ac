import { useSyncExternalStore } from 'react';

/**
 * The colour theme: "auto" follows the system's prefers-color-scheme (and its changes, live); "light" and "dark"
 * are the user's choice, remembered in localStorage across tabs and visits. The effective theme is written to
 * <html data-theme>, which styles.css keys its variables on.
 */
export type ThemeChoice = 'auto' | 'light' | 'dark';
export type Theme = 'light' | 'dark';

const STORAGE = 'liftoff.theme';
const listeners = new Set<() => void>();
const media = typeof window !== 'undefined' ? window.matchMedia('(prefers-color-scheme: dark)') : undefined;

function stored(): ThemeChoice {
  try {
    const v = localStorage.getItem(STORAGE);
    return v === 'light' || v === 'dark' ? v : 'auto';
  } catch {
    // Storage can be refused (privacy settings): the system's preference still applies.
    return 'auto';
  }
}

export function themeChoice(): ThemeChoice {
  return stored();
}

export function effectiveTheme(): Theme {
  const c = stored();
  if (c !== 'auto') return c;
  return media?.matches ? 'dark' : 'light';
}

/** Writes the effective theme to <html>; called once before the first render and on every change. */
export function applyTheme(): void {
  const t = effectiveTheme();
  document.documentElement.dataset.theme = t;
  for (const fn of listeners) fn();
}

export function setThemeChoice(c: ThemeChoice): void {
  try {
    if (c === 'auto') localStorage.removeItem(STORAGE);
    else localStorage.setItem(STORAGE, c);
  } catch {
    // Not remembered, but still applied for this page.
  }
  applyTheme();
}

media?.addEventListener('change', applyTheme);
if (typeof window !== 'undefined') {
  // Another tab changed the choice.
  window.addEventListener('storage', (e) => {
    if (e.key === STORAGE) applyTheme();
  });
}

const subscribe = (fn: () => void) => {
  listeners.add(fn);
  return () => listeners.delete(fn);
};

/** The effective theme, re-rendering on change (the charts rebuild with its colours). */
export function useTheme(): Theme {
  return useSyncExternalStore(subscribe, effectiveTheme);
}

export function useThemeChoice(): ThemeChoice {
  return useSyncExternalStore(subscribe, themeChoice);
}

/** A CSS variable of the current theme, for what CSS cannot colour (chart canvases). */
export function cssVar(name: string, fallback: string): string {
  const v = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  return v || fallback;
}

/** uPlot axis colours of the current theme (canvas text and lines; CSS cannot reach them). */
export function axisColors(): { stroke: string; grid: { stroke: string }; ticks: { stroke: string } } {
  return {
    stroke: cssVar('--chart-axis', '#526075'),
    grid: { stroke: cssVar('--chart-grid', '#eef2f7') },
    ticks: { stroke: cssVar('--chart-tick', '#e2e8f0') },
  };
}
