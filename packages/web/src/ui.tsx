import { useEffect, useId, useRef, useState, type ReactNode } from 'react';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
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

export interface ChartSeries {
  label: string;
  color: string;
  /** Drawn as steps (counts over time) or bars (one value per x). */
  kind: 'step' | 'bars';
}

/** A uPlot chart that follows its container's width. `data[0]` is x in seconds. */
export function Chart({
  title,
  series,
  data,
  yLabel,
  empty,
  height = 180,
}: {
  title: string;
  series: ChartSeries[];
  data: uPlot.AlignedData;
  yLabel: string;
  /** Shown over the chart when there is nothing to plot. */
  empty?: string | undefined;
  height?: number;
}) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const key = series.map((s) => s.label + s.kind).join('|');

  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const opts: uPlot.Options = {
      width: Math.max(200, el.clientWidth),
      height,
      legend: { show: true, live: false },
      cursor: { drag: { x: false, y: false } },
      scales: {
        x: {
          time: true,
          // At least a minute wide, a little padding so bars at the ends show whole; an empty chart shows the last 15 min.
          range: (_u, min, max) => {
            if (min === null || max === null || !Number.isFinite(min) || !Number.isFinite(max)) {
              const now = Date.now() / 1000;
              return [now - 900, now];
            }
            const lo = Math.min(min, max - 60);
            const pad = (max - lo) * 0.03;
            return [lo - pad, max + pad];
          },
        },
        y: { range: (_u, _min, max) => [0, Math.max(1, (max ?? 0) * 1.15)] },
      },
      axes: [
        { stroke: '#64748b', grid: { stroke: '#eef2f7' }, ticks: { stroke: '#e2e8f0' } },
        {
          stroke: '#64748b',
          grid: { stroke: '#eef2f7' },
          ticks: { stroke: '#e2e8f0' },
          label: yLabel,
          labelSize: 18,
          size: 48,
        },
      ],
      series: [
        {},
        ...series.map((s) => ({
          label: s.label,
          stroke: s.color,
          width: s.kind === 'bars' ? 0 : 2,
          fill: `${s.color}${s.kind === 'bars' ? 'cc' : '22'}`,
          paths:
            s.kind === 'bars' ? uPlot.paths.bars?.({ size: [0.6, 24], align: 0 }) : uPlot.paths.stepped?.({ align: 1 }),
          points: { show: false },
        })),
      ],
    };
    const u = new uPlot(opts, data, el);
    plot.current = u;
    const ro = new ResizeObserver(() => u.setSize({ width: Math.max(200, el.clientWidth), height }));
    ro.observe(el);
    return () => {
      ro.disconnect();
      u.destroy();
      plot.current = null;
    };
    // Rebuilt only when the series change; data updates go through setData below.
  }, [key, height, yLabel]);

  useEffect(() => {
    plot.current?.setData(data);
  }, [data]);

  return (
    <figure className="chart">
      <figcaption>{title}</figcaption>
      <div className="chart-wrap">
        <div ref={box} className="chart-box" role="img" aria-label={empty ? `${title}: ${empty}` : title} />
        {empty && (
          <p className="chart-empty" aria-hidden="true">
            {empty}
          </p>
        )}
      </div>
    </figure>
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
