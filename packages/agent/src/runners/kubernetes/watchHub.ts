import { ListWatch, Watch, type KubernetesListObject, type KubernetesObject } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { LABEL_RUN } from './manifest.js';

export type ObjectListener<T> = (obj: T, deleted: boolean) => void;

/**
 * One list-and-watch of a resource in a namespace, narrowed to this agent's objects by label, shared by all its
 * runs there. client-node's ListWatch resumes from the last resourceVersion when a watch ends, and re-lists on
 * `410 Gone` (reporting objects that vanished meanwhile as deleted); what it does not do is come back after a
 * failed request (a dropped connection, an unreachable API server), so that is done here, with back-off.
 */
export class SharedWatch<T extends KubernetesObject> {
  private readonly lw: ListWatch<T>;
  private readonly listeners = new Map<string, Set<ObjectListener<T>>>();
  private stopped = false;
  private retryMs = 250;
  private retryTimer: NodeJS.Timeout | undefined;

  constructor(
    watch: Watch,
    readonly path: string,
    list: () => Promise<KubernetesListObject<T>>,
    labelSelector: string,
    private readonly logger: Logger,
  ) {
    this.lw = new ListWatch(path, watch, list, false, labelSelector);
    this.lw.on('add', (o) => this.dispatch(o, false));
    this.lw.on('update', (o) => this.dispatch(o, false));
    this.lw.on('delete', (o) => this.dispatch(o, true));
    this.lw.on('connect', () => {
      this.retryMs = 250;
    });
    this.lw.on('error', (err?: unknown) => this.retry(err));
    this.begin();
  }

  /** start() rejects when credentials cannot be applied (a token file gone): that too is retried. */
  private begin(): void {
    this.lw.start().catch((err: unknown) => this.retry(err));
  }

  private retry(err: unknown): void {
    if (this.stopped) return;
    this.logger.warn({ err, path: this.path }, `watch of ${this.path} failed; re-establishing in ${this.retryMs} ms`);
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.begin(), this.retryMs);
    this.retryMs = Math.min(this.retryMs * 2, 10_000);
  }

  /** Receives every state of the run's objects, starting with those already known. Returns an unsubscribe. */
  subscribe(runId: string, fn: ObjectListener<T>): () => void {
    const set = this.listeners.get(runId) ?? new Set();
    set.add(fn);
    this.listeners.set(runId, set);
    for (const o of this.lw.list()) if (o.metadata?.labels?.[LABEL_RUN] === runId) fn(o, false);
    return () => {
      set.delete(fn);
      if (!set.size) this.listeners.delete(runId);
    };
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    await this.lw.stop();
  }

  private dispatch(obj: T, deleted: boolean): void {
    const runId = obj.metadata?.labels?.[LABEL_RUN];
    if (!runId) return;
    for (const fn of this.listeners.get(runId) ?? []) {
      try {
        fn(obj, deleted);
      } catch (err) {
        this.logger.error({ err, runId }, 'watch listener failed');
      }
    }
  }
}
