import { Suspense, lazy, useId, useState, type ComponentProps, type ReactNode } from 'react';
import { hasBuiltRunner, type Agent, type ItemState } from './api.js';
import { formatTime } from './util.js';

const STATE_LABEL: Record<ItemState, string> = {
  pending: 'Pending',
  claimed: 'Claimed',
  starting: 'Starting',
  running: 'Running',
  cancelling: 'Cancelling',
  finished: 'Finished',
  failed: 'Failed',
  stopped: 'Stopped',
  preempted: 'Preempted',
  lost: 'Lost',
};

export function StateBadge({ state }: { state: ItemState }) {
  return (
    <span className={`badge state-${state}`} data-state={state}>
      <span className="dot" aria-hidden="true" />
      {STATE_LABEL[state]}
    </span>
  );
}

const AGENT_LABEL: Record<Agent['status'], string> = { POLLING: 'Polling', RUNNING: 'Running', KILLED: 'Killed' };

export function AgentBadge({ agent }: { agent: Agent }) {
  return (
    <span
      className={`badge agent-${agent.status.toLowerCase()}`}
      data-status={agent.status}
      title={agent.status_reason ?? undefined}
    >
      <span className="dot" aria-hidden="true" />
      {AGENT_LABEL[agent.status]}
    </span>
  );
}

export function Time({ ms }: { ms: number | null | undefined }) {
  if (ms === null || ms === undefined) return <span className="muted">—</span>;
  return <time dateTime={new Date(ms).toISOString()}>{formatTime(ms)}</time>;
}

export function ErrorBanner({ children }: { children: ReactNode }) {
  return (
    <div className="banner banner-error" role="alert">
      {children}
    </div>
  );
}

export function Empty({ title, children }: { title: string; children?: ReactNode }) {
  return (
    <div className="empty">
      <p className="empty-title">{title}</p>
      {children}
    </div>
  );
}

/** A shell command with a copy button. */
export function Command({ text }: { text: string }) {
  const [copied, setCopied] = useState(false);
  const copy = () => {
    navigator.clipboard?.writeText(text).then(
      () => {
        setCopied(true);
        setTimeout(() => setCopied(false), 1500);
      },
      () => undefined,
    );
  };
  return (
    <div className="command">
      <code>{text}</code>
      <button type="button" className="btn btn-small" onClick={copy}>
        {copied ? 'Copied' : 'Copy'}
      </button>
    </div>
  );
}

/** A labelled form field with its inline error (announced, and tied to the input by aria-describedby). */
export function Field({
  label,
  hint,
  error,
  children,
}: {
  label: string;
  hint?: ReactNode;
  error?: string | undefined;
  children: (props: { id: string; 'aria-invalid': boolean; 'aria-describedby': string | undefined }) => ReactNode;
}) {
  const id = useId();
  const errId = `${id}-err`;
  const hintId = `${id}-hint`;
  const describedBy = [hint ? hintId : '', error ? errId : ''].filter(Boolean).join(' ') || undefined;
  return (
    <div className={`field${error ? ' field-invalid' : ''}`}>
      <label htmlFor={id}>{label}</label>
      {children({ id, 'aria-invalid': Boolean(error), 'aria-describedby': describedBy })}
      {hint && (
        <p className="hint" id={hintId}>
          {hint}
        </p>
      )}
      {error && (
        <p className="field-error" id={errId} role="alert">
          {error}
        </p>
      )}
    </div>
  );
}

export type { ChartSeries } from './Chart.js';

/**
 * The queue page's charts, loaded on demand: uPlot (and its stylesheet) is a chunk of its own that a first visit to
 * any other page does not download (issue 18). Until it arrives a box of the chart's height keeps the layout still.
 */
const LazyChart = lazy(() => import('./Chart.js').then((m) => ({ default: m.Chart })));
export function Chart(props: ComponentProps<typeof LazyChart>) {
  return (
    <Suspense
      fallback={
        <figure className="chart">
          <figcaption>{props.title}</figcaption>
          <div className="chart-wrap" style={{ height: props.height ?? 180 }} />
        </figure>
      }
    >
      <LazyChart {...props} />
    </Suspense>
  );
}

/**
 * Marks a resource type this release's agent has no runner for (BUILT_RUNNERS in @liftoff/core): its queues take
 * items that no agent of this release runs. Renders nothing for a type with a runner, which today is every type.
 */
export function RunnerMissing({ resource }: { resource: string }) {
  if (hasBuiltRunner(resource)) return null;
  return (
    <span
      className="badge runner-missing warn-text"
      data-testid="runner-missing"
      title="No agent of this release runs it"
    >
      no runner yet
    </span>
  );
}

/**
 * A grid of charts that folds away on a phone (below 640 px, styles.css), behind a Show/Hide toggle, so the charts
 * do not fill the first screen there; wider windows always show them and never see the toggle.
 */
export function ChartsFold({ label, children }: { label: string; children: ReactNode }) {
  const [open, setOpen] = useState(false);
  const id = useId();
  return (
    <div className="charts-fold">
      <button
        type="button"
        className="btn btn-small charts-toggle"
        aria-expanded={open}
        aria-controls={id}
        onClick={() => setOpen((o) => !o)}
      >
        {open ? `Hide ${label}` : `Show ${label}`}
      </button>
      <div id={id} className={`charts${open ? '' : ' charts-folded'}`}>
        {children}
      </div>
    </div>
  );
}
