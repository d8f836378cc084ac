import { useState } from 'react';
import type { RunOutput } from './api.js';
import { useSession } from './hooks.js';
import { usePoll } from './poll.js';
import { res } from './resources.js';

const MiB = 1024 * 1024;
export function formatSize(n: number): string {
  if (n >= 1024 * MiB) return `${(n / 1024 / MiB).toFixed(2)} GiB`;
  if (n >= MiB) return `${(n / MiB).toFixed(1)} MiB`;
  if (n >= 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${n} B`;
}

/**
 * The run's outputs (files its job left in $LIFTOFF_OUTPUT_DIR) with sizes and a download button each. The agent
 * lists them all at once after the run ends, so the list is read again while the run is not over.
 */
export function RunOutputs({
  runId,
  ended,
  link,
}: {
  runId: string;
  ended: boolean;
  /** Where a job that ran elsewhere (SageMaker, Vertex) wrote its outputs; shown as text, never as a link target. */
  link?: string | null;
}) {
  const { api } = useSession();
  // Polled until the run ended, then read once more (the upload comes just before the final status).
  const list = usePoll(res.runOutputs(runId, ended ? 'ended' : 'live'), ended ? 0 : 5000);
  const [busy, setBusy] = useState<string | undefined>();
  const [error, setError] = useState<string | undefined>();

  const save = async (o: RunOutput) => {
    setBusy(o.path);
    setError(undefined);
    try {
      const blob = await api.downloadOutput(runId, o.path);
      const url = URL.createObjectURL(blob);
      const a = document.createElement('a');
      a.href = url;
      a.download = o.path.split('/').at(-1) ?? 'output';
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60_000);
    } catch (e) {
      setError(`${o.path}: ${(e as Error).message}`);
    } finally {
      setBusy(undefined);
    }
  };

  const outputs = list.data?.outputs ?? [];
  return (
    <section className="card pad" aria-labelledby="outputs-title" data-testid="run-outputs">
      <h2 id="outputs-title">Outputs</h2>
      {list.error && <p className="field-error">{list.error.message}</p>}
      {error && <p className="field-error">{error}</p>}
      {link && (
        <p className="small" data-testid="outputs-link">
          The job writes its outputs to <code className="mono">{link}</code> (in the cloud; Liftoff does not copy them).
        </p>
      )}
      {!list.data ? (
        <p className="muted">Loading…</p>
      ) : outputs.length === 0 ? (
        <p className="muted small">
          {ended ? 'None.' : 'None yet.'} A job saves files by writing them to <code>$LIFTOFF_OUTPUT_DIR</code>.
        </p>
      ) : (
        <>
          <ul className="outputs">
            {outputs.map((o) => (
              <li key={o.path} data-path={o.path}>
                <span className="mono output-path" title={`sha256 ${o.sha256}`}>
                  {o.path}
                </span>{' '}
                <span className="muted small" data-field="size">
                  {formatSize(o.size)}
                </span>{' '}
                <button
                  type="button"
                  className="btn btn-small"
                  onClick={() => void save(o)}
                  disabled={busy === o.path}
                  aria-label={`Download ${o.path}`}
                >
                  {busy === o.path ? 'Downloading…' : 'Download'}
                </button>
              </li>
            ))}
          </ul>
          <p className="muted small">
            {outputs.length} file(s), {formatSize(list.data.total_bytes)}; or{' '}
            <code>liftoff runs outputs {runId} --download DIR</code>
          </p>
        </>
      )}
    </section>
  );
}
