import { useCallback, useEffect, useId, useRef, useState, type RefObject } from 'react';
import { setThemeChoice, useThemeChoice, type ThemeChoice } from './theme.js';

/**
 * Focus and titles for keyboard and screen-reader users: what a full page load does for free and a single-page
 * app must do itself.
 */

/** The page a path shows, for focus: a queue's tabs are one page (arrowing between tabs keeps focus on the tab). */
export function pageKey(path: string): string {
  return path.split('/').filter(Boolean).slice(0, 2).join('/');
}

/**
 * Moves focus to the page's <h1> when the page changes (not on the first load, where the browser starts at the top,
 * nor when only the query string changes, e.g. a filter). Pages render their heading as soon as they know it, so
 * this waits a little for it to appear.
 */
export function useFocusHeadingOnNavigation(path: string): void {
  const key = pageKey(path);
  const first = useRef(true);
  useEffect(() => {
    if (first.current) {
      first.current = false;
      return;
    }
    let tries = 0;
    let frame = 0;
    const tryFocus = () => {
      const h1 = document.querySelector<HTMLElement>('main h1');
      if (h1) {
        if (!h1.hasAttribute('tabindex')) h1.setAttribute('tabindex', '-1');
        h1.focus({ preventScroll: true });
        return;
      }
      // No heading (yet): at most ~2 s of frames, then focus the main landmark so the next Tab starts there.
      if (++tries < 120) frame = requestAnimationFrame(tryFocus);
      else document.getElementById('main')?.focus({ preventScroll: true });
    };
    frame = requestAnimationFrame(tryFocus);
    return () => cancelAnimationFrame(frame);
  }, [key]);
}

/** The document title: "<page> · Liftoff". */
export function useDocumentTitle(title: string): void {
  useEffect(() => {
    document.title = title ? `${title} · Liftoff` : 'Liftoff';
  }, [title]);
}

/**
 * After a submit that failed validation, focuses the form's first invalid field (aria-invalid="true"), once its
 * error has rendered. Call the returned function where the submit fails.
 */
export function useFocusFirstInvalid(form: RefObject<HTMLElement | null>): () => void {
  const [failures, setFailures] = useState(0);
  useEffect(() => {
    if (failures === 0) return;
    form.current?.querySelector<HTMLElement>('[aria-invalid="true"]')?.focus();
  }, [failures, form]);
  return useCallback(() => setFailures((n) => n + 1), []);
}

/**
 * Gives focus back to the element that opened a dialog when the dialog goes away, whichever way it closes. Call
 * it first thing in the dialog component: at its first render the trigger still has focus.
 */
export function useReturnFocus(): void {
  const trigger = useRef<HTMLElement | null>(
    typeof document !== 'undefined' && document.activeElement instanceof HTMLElement ? document.activeElement : null,
  );
  useEffect(() => {
    const t = trigger.current;
    return () => {
      // The trigger may have been re-rendered away: then focus stays where the page puts it.
      if (t?.isConnected) t.focus();
    };
  }, []);
}

const THEME_LABEL: Record<ThemeChoice, string> = { auto: 'System', light: 'Light', dark: 'Dark' };

/** The theme toggle: System (prefers-color-scheme), Light or Dark, remembered in this browser. */
export function ThemePicker() {
  const choice = useThemeChoice();
  const id = useId();
  return (
    <div className="theme-picker">
      <label htmlFor={id}>Theme</label>
      <select id={id} value={choice} onChange={(e) => setThemeChoice(e.target.value as ThemeChoice)}>
        {(Object.keys(THEME_LABEL) as ThemeChoice[]).map((c) => (
          <option key={c} value={c}>
            {THEME_LABEL[c]}
          </option>
        ))}
      </select>
    </div>
  );
}
