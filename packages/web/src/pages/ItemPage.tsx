import { useEffect, useState } from 'react';
import { isTerminal, priorityName } from '../api.js';
import { useSession } from '../hooks.js';
import { usePoll } from '../poll.js';
import { res } from '../resources.js';
import { Link, navigate } from '../router.js';
import { Command, ErrorBanner, StateBadge, Time } from '../ui.js';
import { SpecView } from './RunPage.js';
import { LoadError, actionError } from '../loadError.js';

/**
 * An item that has no run yet, or whose run was preempted and which waits for its next one: where it stands in its
 * queue and why. Moves on to the run page once its (next) run exists.
 */
export function ItemPage({ id }: { id: string }) {
  const { api } = useSession();
  // An ended item changes no more (a preempted run's item is pending again, so it is not ended).
  const item = usePoll(res.item(id), 1000, { done: (d) => isTerminal(d.state) });
  const [error, setError] = useState<string | undefined>(undefined);
  const it = item.data;

  // A requeued item still points at its preempted run while pending; it moves on once a new run starts.
  const started = it?.run_id && it.state !== 'pending' ? it.run_id : undefined;
  useEffect(() => {
    if (started) navigate(`/runs/${started}`, { replace: true });
  }, [started]);

  if (!it) {
    return (
      <div className="page">{item.error ? <LoadError error={item.error} /> : <p className="muted">Loading…</p>}</div>
    );
  }
  const cancel = async () => {
    try {
      await api.cancelItem(it.id);
      item.reload();
    } catch (e) {
      setError(actionError(e));
    }
  };
  return (
    <div className="page">
      <p className="crumbs">
        <Link href="/">Queues</Link> / <Link href={`/queues/${encodeURIComponent(it.queue)}`}>{it.queue}</Link> / items
        /
      </p>
      <div className="page-head">
        <div>
          <h1>
            {it.spec.name ?? 'Item'} <span className="mono id">{it.id}</span>
          </h1>
          <p className="stats">
            <StateBadge state={it.state} />
            <span>
              Priority <strong>{priorityName(it.priority)}</strong>
            </span>
            <span>
              Created <Time ms={it.created_at} />
            </span>
            {(it.preemptions ?? 0) > 0 && (
              <span data-testid="preemptions">
                Preempted <strong>{it.preemptions}</strong> {it.preemptions === 1 ? 'time' : 'times'}
                {it.run_id && (
                  <>
                    {' '}
                    (last run <Link href={`/runs/${it.run_id}`}>{it.run_id}</Link>)
                  </>
                )}
              </span>
            )}
          </p>
        </div>
        {!isTerminal(it.state) && it.state !== 'cancelling' && (
          <button type="button" className="btn btn-danger" onClick={() => void cancel()}>
            Cancel
          </button>
        )}
      </div>
      {error && <ErrorBanner>{error}</ErrorBanner>}
      {it.state === 'pending' && (
        <section className="card pad pending-card" aria-label="Why pending">
          <p className="pending-position">
            Position <strong data-testid="position">{it.position ?? '—'}</strong> in the queue
          </p>
          {it.pending_reason && (
            <p data-reason={it.pending_reason.code} className={`reason-${it.pending_reason.code}`}>
              {it.pending_reason.message}
            </p>
          )}
          {it.not_before != null && (
            <p data-testid="eligible-at">
              Eligible at <Time ms={it.not_before} />
            </p>
          )}
          {it.pending_reason?.code === 'no_agent' && (
            <>
              <p className="muted">Start an agent for this queue:</p>
              <Command text={`liftoff launch-agent -q ${it.queue}`} />
            </>
          )}
        </section>
      )}
      {it.state !== 'pending' && !it.run_id && (
        <p className="muted">
          {isTerminal(it.state) ? 'This item ended without a run.' : 'An agent has claimed this item; its run starts…'}
        </p>
      )}
      <section className="card pad" aria-labelledby="spec-title">
        <h2 id="spec-title">Spec</h2>
        <SpecView spec={it.spec} />
      </section>
    </div>
  );
}
