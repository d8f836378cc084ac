import type { PendingReason } from '@liftoff/core';

export interface ServingAgent {
  alive: boolean;
  maxJobs: number;
  currentJobs: number;
  lastSeen: number;
}

export interface DispatchSituation {
  agents: ServingAgent[];
  queueLimit: { limit: number; inUse: number } | null;
  entityLimit: { entity: string; limit: number; inUse: number } | null;
}

/** A requeued item waiting out its backoff after a preemption. */
export interface Backoff {
  /** Preemptions so far (so this is retry number `preemptions`). */
  preemptions: number;
  /** The queue's preemption_retries. */
  retries: number;
  notBefore: number;
  /** When it was requeued: the end of its preempted run. */
  requeuedAt: number | null;
}

/**
 * An item in backoff cannot start whatever the agents and limits say, so this reason comes before all others;
 * `since` is when it was requeued, and the message says when it becomes eligible.
 */
export function backoffReason(b: Backoff): PendingReason {
  return {
    code: 'backoff',
    message: `Requeued after preemption ${b.preemptions} of ${b.retries}; eligible at ${new Date(b.notBefore).toISOString()}.`,
    since: b.requeuedAt,
  };
}

/**
 * The answer to "why is my job pending", from the agents that serve its queue, the limits over it and its place in
 * line. Checked in the order that blocks first: nobody to run it, a limit that forbids starting anything, agents
 * without a free slot, then items ahead of it.
 */
export function explainPending(queue: string, position: number, s: DispatchSituation): PendingReason {
  const live = s.agents.filter((a) => a.alive);
  if (!live.length) {
    const since = s.agents.length ? Math.max(...s.agents.map((a) => a.lastSeen)) : null;
    return {
      code: 'no_agent',
      message:
        since === null
          ? `No agent has ever polled queue "${queue}". Start one with "liftoff launch-agent -q ${queue}".`
          : `No agent is polling queue "${queue}" since ${new Date(since).toISOString()}. Start one with "liftoff launch-agent -q ${queue}".`,
      since,
    };
  }
  if (s.queueLimit && s.queueLimit.inUse >= s.queueLimit.limit) {
    return {
      code: 'queue_limit',
      message: `Queue "${queue}" is at its concurrency limit (${s.queueLimit.inUse} of ${s.queueLimit.limit} running); it starts when one of them ends. Raise it with "liftoff queue update ${queue} --max-concurrency N".`,
      since: null,
    };
  }
  if (s.entityLimit && s.entityLimit.inUse >= s.entityLimit.limit) {
    return {
      code: 'entity_limit',
      message: `Entity "${s.entityLimit.entity}" is at its concurrency limit (${s.entityLimit.inUse} of ${s.entityLimit.limit} running); it starts when one of them ends. Raise it with "liftoff entity update ${s.entityLimit.entity} --max-concurrency N".`,
      since: null,
    };
  }
  if (live.every((a) => a.maxJobs !== -1 && a.currentJobs >= a.maxJobs)) {
    return {
      code: 'agents_busy',
      message: `All ${live.length} agent${live.length > 1 ? 's' : ''} serving queue "${queue}" are at max_jobs; it starts when one frees a slot.`,
      since: null,
    };
  }
  if (position > 1) {
    return {
      code: 'queued',
      message: `${position - 1} item${position > 2 ? 's' : ''} ahead of it in queue "${queue}".`,
      since: null,
    };
  }
  return { code: 'next', message: `Next in line in queue "${queue}"; an agent will take it momentarily.`, since: null };
}
