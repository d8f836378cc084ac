import type { ReactNode } from 'react';
import { ApiError } from './api.js';
import { Link } from './router.js';
import { ErrorBanner } from './ui.js';

/**
 * "You do not have access" and "Not found" told apart (issue 18). The server answers 404 for anything outside the
 * caller's entities, exactly as for an unknown id, and 403 only inside them: the thing exists and the caller is in
 * its entity but may not do this (docs/security.md). The UI words each for itself instead of showing both as one
 * red line, and leaves CLI commands out of the server's explanation.
 */

/** The server's message without the CLI commands it suggests ("liftoff members add …"), which a browser cannot run. */
export function withoutCliHints(message: string): string {
  return message
    .replace(/\s*\(\s*"liftoff [^"]*"\s*\)/g, '')
    .replace(/\s*\(the one "liftoff server" wrote on its first start\)/g, '')
    .trim();
}

/** One line for an action that failed: a 403 says plainly that the key lacks access, then why. */
export function actionError(err: unknown): string {
  if (err instanceof ApiError && err.status === 403)
    return `You do not have access to do this: ${withoutCliHints(err.message)}`;
  if (err instanceof ApiError && err.status === 404) return `Not found: ${err.message}`;
  return (err as Error).message;
}

/** What a page shows when what it is about could not be loaded. */
export function LoadError({ error, children }: { error: ApiError; children?: ReactNode }) {
  if (error.status === 403) {
    return (
      <section className="card notice-page" data-testid="no-access" aria-labelledby="no-access-title">
        <h1 id="no-access-title">You do not have access</h1>
        <p>{withoutCliHints(error.message)}</p>
        <p className="muted">Sign in with a key that has the access, or ask an admin of this entity.</p>
        {children}
      </section>
    );
  }
  if (error.status === 404) {
    return (
      <section className="card notice-page" data-testid="not-found" aria-labelledby="not-found-title">
        <h1 id="not-found-title">Not found</h1>
        <p>{error.message}</p>
        <p className="muted">
          It may have been deleted, or belong to another entity (switch entities at the top).{' '}
          <Link href="/">Go to the queues</Link>.
        </p>
        {children}
      </section>
    );
  }
  return <ErrorBanner>{error.message}</ErrorBanner>;
}
