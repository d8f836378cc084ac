import { EventEmitter } from 'node:events';

/**
 * Wake-up signals between request handlers: an item was pushed to a queue, an agent has something to do
 * (a cancellation), a run's log grew or its status changed. This in-process bus serves one server process; a
 * multi-replica deployment swaps in one that also crosses processes (e.g. PostgreSQL LISTEN/NOTIFY).
 */
export interface Bus {
  publish(topic: Topic): void;
  /**
   * Starts listening at once, so a publish between "check the database" and "wait" is never missed: subscribe,
   * check, then `wait`.
   */
  subscribe(topics: Topic[], signal?: AbortSignal): Subscription;
  close?(): Promise<void>;
}

export interface Subscription {
  /** Resolves true when a topic was published since the last wait, false on timeout or abort. */
  wait(ms: number): Promise<boolean>;
  close(): void;
}

export type Topic = `queue:${string}` | `agent:${string}` | `run:${string}`;

export class LocalBus implements Bus {
  private readonly emitter = new EventEmitter();

  constructor() {
    // One listener per waiting long-poll; thousands of idle agents are expected.
    this.emitter.setMaxListeners(0);
  }

  publish(topic: Topic): void {
    this.emitter.emit(topic);
  }

  /** Wakes every subscriber (after notifications may have been missed), so each re-checks the database. */
  wakeAll(): void {
    for (const t of this.emitter.eventNames()) this.emitter.emit(t);
  }

  subscribe(topics: Topic[], signal?: AbortSignal): Subscription {
    let fired = false;
    let wake: ((woken: boolean) => void) | undefined;
    const onEvent = () => {
      fired = true;
      wake?.(true);
    };
    const onAbort = () => wake?.(false);
    for (const t of topics) this.emitter.on(t, onEvent);
    signal?.addEventListener('abort', onAbort);
    return {
      wait: (ms) =>
        new Promise<boolean>((resolve) => {
          if (fired || signal?.aborted) {
            const was = fired;
            fired = false;
            return resolve(was);
          }
          const timer = setTimeout(() => finish(false), ms);
          const finish = (woken: boolean) => {
            clearTimeout(timer);
            wake = undefined;
            fired = false;
            resolve(woken);
          };
          wake = finish;
        }),
      close: () => {
        for (const t of topics) this.emitter.off(t, onEvent);
        signal?.removeEventListener('abort', onAbort);
        wake?.(false);
      },
    };
  }
}
