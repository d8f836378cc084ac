import { useState } from 'react';
import type { Sweep } from '../api.js';
import { ConfirmDialog } from '../ConfirmDialog.js';
import { useSession } from '../hooks.js';
import { ErrorBanner } from '../ui.js';

/** Pause / Resume / Stop of a sweep; stopping (which cancels the trials in flight) asks first. */
export function SweepActions({ sweep, onChanged }: { sweep: Sweep; onChanged: () => void }) {
  const { api, entity } = useSession();
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | undefined>(undefined);
  const [confirming, setConfirming] = useState(false);
  const live = sweep.state === 'running' || sweep.state === 'paused';
  if (!live) return null;

  const act = async (action: 'pause' | 'resume' | 'stop') => {
    setBusy(true);
    setError(undefined);
    try {
      await api.sweepAction(entity, sweep.id, action);
      setConfirming(false);
      onChanged();
    } catch (e) {
      setError((e as Error).message);
    } finally {
      setBusy(false);
    }
  };
  const flying = (sweep.trials ?? []).filter(
    (t) => !['finished', 'failed', 'stopped', 'preempted', 'lost'].includes(t.state),
  );
  return (
    <div className="sweep-actions">
      {sweep.state === 'running' ? (
        <button type="button" className="btn" disabled={busy} onClick={() => void act('pause')}>
          Pause
        </button>
      ) : (
        <button type="button" className="btn" disabled={busy} onClick={() => void act('resume')}>
          Resume
        </button>
      )}
      <button type="button" className="btn btn-danger" disabled={busy} onClick={() => setConfirming(true)}>
        Stop
      </button>
      {error && <ErrorBanner>{error}</ErrorBanner>}
      {confirming && (
        <ConfirmDialog
          title={`Stop sweep ${sweep.name}?`}
          confirmLabel="Stop sweep"
          keepLabel="Keep running"
          busy={busy}
          onConfirm={() => void act('stop')}
          onClose={() => setConfirming(false)}
        >
          <p>
            No more trials are pushed, and{' '}
            {flying.length === 1 ? 'the trial in flight is' : `the ${flying.length} trials in flight are`} cancelled. A
            stopped sweep cannot be resumed.
          </p>
        </ConfirmDialog>
      )}
    </div>
  );
}
