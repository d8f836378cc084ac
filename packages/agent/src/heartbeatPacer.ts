/** What an agent's heartbeat says of it: whether it runs jobs, and how many. */
export interface AgentState {
  status: 'POLLING' | 'RUNNING';
  jobs: number;
}

/** How long a new job count may wait before the server is told (a status change is told at once). */
export const JOB_COUNT_BEAT_MS = 1_000;

const same = (a: AgentState, b: AgentState | undefined) =>
  b !== undefined && a.status === b.status && a.jobs === b.jobs;

/**
 * Decides when a change of the agent's state goes to the server as a heartbeat. A change of status (POLLING ↔
 * RUNNING) goes at once; a change of the job count alone goes at most once per `everyMs`, the last count of the
 * window at its end. Why: a busy agent's job count changes with every start and end, and a heartbeat for each
 * (issue 20, "no redundant heartbeats") cost the server an agents-row UPDATE and a look for lost runs per sync,
 * hundreds of times a second, for a number the Agents tab shows to a human. The liveness timer (agent.ts) sends
 * through `sendNow`.
 */
export class HeartbeatPacer {
  private last: AgentState | undefined;
  private lastAt = 0;
  private trailing: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    /** The agent's state now. */
    private readonly current: () => AgentState,
    /** Sends a heartbeat saying `state` (queued with the next sync; never throws). */
    private readonly send: (state: AgentState) => void,
    private readonly opts: { everyMs?: number; now?: () => number } = {},
  ) {}

  private get everyMs(): number {
    return this.opts.everyMs ?? JOB_COUNT_BEAT_MS;
  }

  private now(): number {
    return (this.opts.now ?? Date.now)();
  }

  /** The server already knows `state` (registration said it). */
  told(state: AgentState): void {
    this.last = state;
    this.lastAt = this.now();
  }

  /** The agent's state may have changed: told now, at the end of the window, or not at all when it did not. */
  changed(): void {
    if (this.closed) return;
    const state = this.current();
    if (same(state, this.last)) return;
    const since = this.now() - this.lastAt;
    if (this.last?.status !== state.status || since >= this.everyMs) return this.sendNow(state);
    this.trailing ??= setTimeout(() => {
      this.trailing = undefined;
      const then = this.current();
      if (!this.closed && !same(then, this.last)) this.sendNow(then);
    }, this.everyMs - since);
    // Never what keeps the agent's process alive: stop() closes the pacer, and a killed agent has nothing to tell.
    this.trailing.unref();
  }

  /** Sends now, whatever was sent last (the liveness timer; a status change). */
  sendNow(state: AgentState = this.current()): void {
    if (this.closed) return;
    clearTimeout(this.trailing);
    this.trailing = undefined;
    this.told(state);
    this.send(state);
  }

  /** The agent is stopping: nothing more is sent (its `stopped` call says the rest). */
  close(): void {
    this.closed = true;
    clearTimeout(this.trailing);
    this.trailing = undefined;
  }
}
