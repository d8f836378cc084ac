import { useState } from 'react';
import { ConfirmDialog } from './ConfirmDialog.js';
import { useSession } from './hooks.js';
import { ErrorBanner } from './ui.js';
import { shortId } from './util.js';
import { actionError } from './loadError.js';

/** What a cancel asked of the server ended in, per run. */
interface Outcome {
  id: string;
  ok: boolean;
  text: string;
}

/** Cancel one run or item after a confirmation naming it; focus returns to this button when the dialog closes. */
export function CancelButton({
  kind,
  id,
  name,
  onDone,
}: {
  kind: 'run' | 'item';
  id: string;
  name?: string | null;
  onDone: () => void;
}) {
  const { api } = useSession();
  const [open, setOpen] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | undefined>(undefined);
  const label = name ? `“${name}” (${shortId(id)})` : shortId(id);
  const confirm = async () => {
    setBusy(true);
    setError(undefined);
    try {
      await (kind === 'run' ? api.cancelRun(id) : api.cancelItem(id));
      setOpen(false);
      onDone();
    } catch (e) {
      setError(actionError(e));
    } finally {
      setBusy(false);
    }
  };
  return (
    <>
      <button
        type="button"
        className="btn btn-small btn-danger-ghost"
        aria-label={`Cancel ${kind} ${id}`}
        onClick={() => setOpen(true)}
      >
        Cancel
      </button>
      {open && (
        <ConfirmDialog
          title={`Cancel ${kind} ${label}?`}
          confirmLabel={`Cancel ${kind}`}
          keepLabel={`Keep ${kind === 'run' ? 'running' : 'it'}`}
          busy={busy}
          onConfirm={() => void confirm()}
          onClose={() => setOpen(false)}
        >
          <p>
            {kind === 'run'
              ? 'Its agent stops the job and the run ends as stopped.'
              : 'A pending item leaves the queue; a started one is stopped by its agent.'}{' '}
            This cannot be undone (launch it again to re-run).
          </p>
          {error && <ErrorBanner>{error}</ErrorBanner>}
        </ConfirmDialog>
      )}
    </>
  );
}

/** Cancel the selected runs after one confirmation with their count; reports each run's result. */
export function BulkCancel({ ids, onDone }: { ids: string[]; onDone: () => void }) {
  const { api } = useSession();
  const [open, setOpen] = useState(false);
  const [busy, setBusy] = useState(false);
  const [outcomes, setOutcomes] = useState<Outcome[]>([]);
  const n = ids.length;
  const confirm = async () => {
    setBusy(true);
    // One request per run, a few at a time: each run's answer is its own (one refusal does not stop the others).
    const results: Outcome[] = [];
    const queue = [...ids];
    const worker = async () => {
      for (let id = queue.shift(); id !== undefined; id = queue.shift()) {
        try {
          const r = await api.cancelRun(id);
          results.push({
            id,
            ok: true,
            text: r.status === 'stopped' ? 'stopped' : `${r.status} (its agent is told to stop it)`,
          });
        } catch (e) {
          results.push({ id, ok: false, text: actionError(e) });
        }
      }
    };
    await Promise.all([worker(), worker(), worker(), worker()]);
    setOutcomes(ids.map((id) => results.find((r) => r.id === id) as Outcome));
    setBusy(false);
    setOpen(false);
    onDone();
  };
  const failed = outcomes.filter((o) => !o.ok).length;
  return (
    <>
      <button type="button" className="btn btn-small btn-danger" disabled={n === 0} onClick={() => setOpen(true)}>
        Cancel selected{n ? ` (${n})` : ''}
      </button>
      {open && (
        <ConfirmDialog
          title={`Cancel ${n} run${n === 1 ? '' : 's'}?`}
          confirmLabel={`Cancel ${n} run${n === 1 ? '' : 's'}`}
          keepLabel="Keep them"
          busy={busy}
          onConfirm={() => void confirm()}
          onClose={() => setOpen(false)}
        >
          <p>Their agents stop the jobs; each run ends as stopped. Runs that ended meanwhile are left as they are.</p>
        </ConfirmDialog>
      )}
      {outcomes.length > 0 && (
        <div
          className={`banner ${failed ? 'banner-error' : 'banner-info'} bulk-result`}
          role="status"
          aria-label="Cancel results"
        >
          <p>
            {outcomes.length - failed} of {outcomes.length} cancelled{failed ? `, ${failed} refused` : ''}.{' '}
            <button type="button" className="linklike" onClick={() => setOutcomes([])}>
              Dismiss
            </button>
          </p>
          <ul>
            {outcomes.map((o) => (
              <li key={o.id} data-outcome={o.ok ? 'ok' : 'refused'} data-run={o.id}>
                <span className="mono">{shortId(o.id)}</span>: {o.text}
              </li>
            ))}
          </ul>
        </div>
      )}
    </>
  );
}
