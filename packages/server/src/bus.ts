/**
 * Wake-up signals between request handlers: an item was pushed to a queue, an agent has something to do
 * (a cancellation), a run's log grew or its status changed. This in-process bus serves one server process; a
 * multi-replica deployment swaps in one that also crosses processes (e.g. PostgreSQL LISTEN/NOTIFY).
 */
export interface Bus {
  /** Wakes subscribers of the topic: one poller for a `queue:` topic (see LocalBus), every one for the others. */
  publish(topic: Topic): void;
  /**
   * Starts listening at once, so a publish between "check the database" and "wait" is never missed: subscribe,
   * check, then `wait`.
   */
  subscribe(topics: Topic[], signal?: AbortSignal): Subscription;
  close?(): Promise<void>;
  /**
   * Watches `cache:` topics (read caches dropping entries another process changed, caches.ts) and the state of the
   * delivery: `lost` while notifications may be missed (caches must stop serving), `restored` when they flow again.
   * A bus calls `fn` once at once with its current state.
   */
  watchCaches?(fn: (e: CacheEvent) => void): void;
}

/** A read cache's invalidation: `cache:<kind>` (caches.ts). */
export type CacheTopic = `cache:${string}`;
export type CacheEvent = { type: 'invalidate'; topic: CacheTopic } | { type: 'lost' } | { type: 'restored' };

export interface Subscription {
  /** Resolves true when a topic was published since the last wait, false on timeout or abort. */
  wait(ms: number): Promise<boolean>;
  close(): void;
}

/**
 * The sweep controller's wakes (sweeps/controller.ts): `sweeps:ended` when any run ends (a trial's end frees a slot
 * for the next trial), `sweeps:changed` when a sweep is created, paused, resumed or stopped.
 */
export type SweepsTopic = 'sweeps:ended' | 'sweeps:changed';
export type Topic = `queue:${string}` | `agent:${string}` | `run:${string}` | SweepsTopic | CacheTopic;

interface Subscriber {
  /** Published since its last wait began; the next wait returns at once. */
  fired: boolean;
  /** Set while it waits. */
  wake: ((woken: boolean) => void) | undefined;
  /** Queue wakes it took and has not yet followed with a whole look at the database and a new wait. */
  owed: Set<Topic>;
}

const isQueueTopic = (t: Topic): boolean => t.startsWith('queue:');

/**
 * The in-process bus. A `queue:` publish wakes **one** subscriber (the one waiting longest; else one busy looking,
 * which will look again): a pushed item needs one claimer, and waking every idle agent made each of them run a claim
 * that the first one had already won. A subscriber that leaves after such a wake without having looked at the
 * database and waited again (it claimed and returned, or hung up) passes the wake on to the next one, so an item is
 * never left behind by a wake that went to a poll that took something else. Other topics wake every subscriber.
 */
export class LocalBus implements Bus {
  private readonly subscribers = new Map<Topic, Set<Subscriber>>();
  private readonly cacheWatchers: Array<(e: CacheEvent) => void> = [];

  publish(topic: Topic): void {
    if (topic.startsWith('cache:')) return this.cacheEvent({ type: 'invalidate', topic: topic as CacheTopic });
    const set = this.subscribers.get(topic);
    if (!set?.size) return;
    if (!isQueueTopic(topic)) {
      for (const s of set) this.fire(s);
      return;
    }
    let chosen: Subscriber | undefined;
    for (const s of set) if (s.wake) chosen ??= s;
    if (!chosen) for (const s of set) if (!s.fired) chosen ??= s;
    if (!chosen) return; // every subscriber is already due to look again
    // To the back of the line: the next push goes to another waiter.
    set.delete(chosen);
    set.add(chosen);
    chosen.owed.add(topic);
    this.fire(chosen);
  }

  /** One process's bus never misses a publish: its caches are live from the start (PgBus passes its own state). */
  watchCaches(fn: (e: CacheEvent) => void, initial: CacheEvent = { type: 'restored' }): void {
    this.cacheWatchers.push(fn);
    fn(initial);
  }

  /** Tells the cache watchers (PgBus reports its LISTEN connection's losses and recoveries through here). */
  cacheEvent(e: CacheEvent): void {
    for (const fn of this.cacheWatchers) fn(e);
  }

  /** Wakes every subscriber (after notifications may have been missed), so each re-checks the database. */
  wakeAll(): void {
    for (const set of this.subscribers.values()) for (const s of set) this.fire(s);
  }

  private fire(s: Subscriber): void {
    s.fired = true;
    s.wake?.(true);
  }

  subscribe(topics: Topic[], signal?: AbortSignal): Subscription {
    const me: Subscriber = { fired: false, wake: undefined, owed: new Set() };
    for (const t of topics) {
      const set = this.subscribers.get(t) ?? new Set();
      set.add(me);
      this.subscribers.set(t, set);
    }
    const onAbort = () => me.wake?.(false);
    signal?.addEventListener('abort', onAbort);
    return {
      wait: (ms) =>
        new Promise<boolean>((resolve) => {
          if (me.fired || signal?.aborted) {
            const was = me.fired;
            me.fired = false;
            return resolve(was);
          }
          // Nothing fired while the caller looked at the database: the wakes it owed are paid.
          me.owed.clear();
          const timer = setTimeout(() => finish(false), ms);
          const finish = (woken: boolean) => {
            clearTimeout(timer);
            me.wake = undefined;
            me.fired = false;
            resolve(woken);
          };
          me.wake = finish;
        }),
      close: () => {
        for (const t of topics) {
          const set = this.subscribers.get(t);
          set?.delete(me);
          if (set && !set.size) this.subscribers.delete(t);
        }
        signal?.removeEventListener('abort', onAbort);
        me.wake?.(false);
        const owed = [...me.owed];
        me.owed.clear();
        for (const t of owed) this.publish(t);
      },
    };
  }
}
