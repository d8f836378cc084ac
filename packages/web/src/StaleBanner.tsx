import { useNow } from './hooks.js';
import { useConnection } from './poll.js';
import { formatTime } from './util.js';

/**
 * While polls cannot reach the server (or it answers 5xx), the data on screen is what the server said last: a banner
 * says so, since when, and when the next try is, instead of letting old numbers pass for current ones (issue 18).
 */
export function StaleBanner() {
  const c = useConnection();
  const now = useNow(1000);
  if (c.downSince === null) return null;
  const retryIn = c.retryAt === null ? null : Math.max(0, Math.ceil((c.retryAt - now) / 1000));
  return (
    <div className="banner banner-warn stale-banner" role="status" data-testid="stale-banner">
      <strong>Stale data:</strong> the server cannot be reached since {formatTime(c.downSince)}
      {c.lastOk !== null ? <>; what you see is as of {formatTime(c.lastOk)}</> : null}.{' '}
      {retryIn !== null && <>Trying again {retryIn === 0 ? 'now' : `in ${retryIn} s`}.</>}
    </div>
  );
}
