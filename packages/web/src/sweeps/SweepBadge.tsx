import type { SweepState } from '../api.js';

const LABEL: Record<SweepState, string> = {
  running: 'Running',
  paused: 'Paused',
  finished: 'Finished',
  stopped: 'Stopped',
  failed: 'Failed',
};
/** Sweep states reuse the item states' badge colours (styles.css): paused reads as pending, the rest as named. */
const LOOK: Record<SweepState, string> = {
  running: 'running',
  paused: 'pending',
  finished: 'finished',
  stopped: 'stopped',
  failed: 'failed',
};

export function SweepBadge({ state }: { state: SweepState }) {
  return (
    <span className={`badge state-${LOOK[state]}`} data-sweep-state={state}>
      <span className="dot" aria-hidden="true" />
      {LABEL[state]}
    </span>
  );
}

/** A parameter's value as a cell shows it: numbers and strings as they are, anything else as JSON. */
export function paramText(v: unknown): string {
  if (typeof v === 'string') return v;
  if (typeof v === 'number') return String(+v.toPrecision(6));
  return JSON.stringify(v) ?? '';
}
