import { alreadyExists, clone, conflict, jsonEqual, notFound, rfc3339, type KObject } from './types.js';

export interface ResourceInfo {
  group: string;
  version: string;
  plural: string;
  kind: string;
  namespaced: boolean;
  builtin: boolean;
  /** Writes to the main resource keep status; writes to /status keep everything else. */
  statusSubresource: boolean;
  hasGeneration: boolean;
  /** Custom resources: every served version (`version` is the storage one) and each version's schema. */
  versions?: string[];
  schemas?: Record<string, unknown>;
}

export const apiVersionOf = (info: ResourceInfo): string =>
  info.group ? `${info.group}/${info.version}` : info.version;
/** `jobs.batch`, `pods`: how the apiserver names a resource in its messages. */
export const resourceName = (info: ResourceInfo): string => (info.group ? `${info.plural}.${info.group}` : info.plural);

export type EventType = 'ADDED' | 'MODIFIED' | 'DELETED';
export interface StoreEvent {
  rv: number;
  resource: string;
  type: EventType;
  obj: KObject;
  /** The object before a MODIFIED: a selector watch needs both to turn a change into ADDED/DELETED. */
  prev?: KObject;
}

export type Propagation = 'Foreground' | 'Background' | 'Orphan';
export interface DeleteOptions {
  propagationPolicy?: Propagation;
  gracePeriodSeconds?: number;
  preconditions?: { uid?: string; resourceVersion?: string };
}

const MAX_HISTORY = 50_000;

/**
 * The etcd + registry layer: one global revision counter, a replayable event history, and the generic store's
 * deletion rules (finalizers, graceful pod deletion, deletion completed by the update that empties finalizers).
 */
export class Store {
  private rv = 100;
  private readonly objects = new Map<string, Map<string, KObject>>();
  readonly infos = new Map<string, ResourceInfo>();
  private history: StoreEvent[] = [];
  /** Events at or below this revision are no longer replayable. */
  private floor = 0;
  private readonly listeners = new Set<(e: StoreEvent) => void>();
  private readonly pending: StoreEvent[] = [];
  private dispatching = false;

  currentRV(): number {
    return this.rv;
  }

  register(info: ResourceInfo): ResourceInfo {
    const name = resourceName(info);
    const existing = this.infos.get(name);
    if (existing) return existing;
    this.infos.set(name, info);
    return info;
  }

  /** A CRD deleted: its objects go (DELETED to their watchers) and the resource is no longer served. */
  unregister(info: ResourceInfo): void {
    const name = resourceName(info);
    for (const o of this.list(info)) this.removeStored(info, o.metadata.namespace ?? '', o.metadata.name ?? '', o);
    this.infos.delete(name);
    this.objects.delete(name);
  }

  /** Whether a list continued from revision `rv` can still be served (its revision not compacted away). */
  canContinueFrom(rv: number): boolean {
    return rv >= this.floor;
  }

  private bucket(info: ResourceInfo): Map<string, KObject> {
    const name = resourceName(info);
    let b = this.objects.get(name);
    if (!b) this.objects.set(name, (b = new Map<string, KObject>()));
    return b;
  }

  get(info: ResourceInfo, ns: string, name: string): KObject | undefined {
    return this.bucket(info).get(`${ns}/${name}`);
  }

  /** Sorted by namespace/name, the etcd key order real lists come in. */
  list(info: ResourceInfo, ns?: string): KObject[] {
    const out: KObject[] = [];
    for (const [k, o] of [...this.bucket(info)].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
      if (ns === undefined || k.startsWith(`${ns}/`)) out.push(o);
    }
    return out;
  }

  subscribe(fn: (e: StoreEvent) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  private emit(e: StoreEvent): void {
    this.history.push(e);
    if (this.history.length > MAX_HISTORY) {
      const dropped = this.history.splice(0, this.history.length - MAX_HISTORY);
      this.floor = dropped[dropped.length - 1]?.rv ?? this.floor;
    }
    // Listeners write too (the kubelet reacts synchronously); queueing keeps every listener's view in revision order.
    this.pending.push(e);
    if (this.dispatching) return;
    this.dispatching = true;
    try {
      for (let next = this.pending.shift(); next; next = this.pending.shift()) {
        for (const l of [...this.listeners]) l(next);
      }
    } finally {
      this.dispatching = false;
    }
  }

  /** Stores a fully prepared object (uid, name set by the caller); ADDED. */
  create(info: ResourceInfo, obj: KObject): KObject {
    const ns = info.namespaced ? (obj.metadata.namespace ?? '') : '';
    const name = obj.metadata.name ?? '';
    const b = this.bucket(info);
    if (b.has(`${ns}/${name}`)) throw alreadyExists(resourceName(info), name);
    const o = clone(obj);
    o.metadata.resourceVersion = String(++this.rv);
    o.metadata.creationTimestamp = rfc3339();
    if (info.hasGeneration) o.metadata.generation = 1;
    b.set(`${ns}/${name}`, o);
    this.emit({ rv: this.rv, resource: resourceName(info), type: 'ADDED', obj: clone(o) });
    return o;
  }

  /**
   * Applies `mutate` to a copy; a no-op write (nothing changed) bumps nothing, like the apiserver skipping an
   * identical update. An object being deleted whose last finalizer goes away is removed (DELETED) instead.
   */
  update(info: ResourceInfo, ns: string, name: string, mutate: (o: KObject) => void): KObject | undefined {
    const b = this.bucket(info);
    const cur = b.get(`${ns}/${name}`);
    if (!cur) return undefined;
    const next = clone(cur);
    mutate(next);
    next.metadata.resourceVersion = cur.metadata.resourceVersion;
    if (jsonEqual(next, cur)) return cur;
    if (info.hasGeneration && !jsonEqual(specOf(next), specOf(cur))) {
      next.metadata.generation = (cur.metadata.generation ?? 0) + 1;
    }
    if (
      next.metadata.deletionTimestamp &&
      !next.metadata.finalizers?.length &&
      (next.metadata.deletionGracePeriodSeconds ?? 0) === 0
    ) {
      return this.removeStored(info, ns, name, next);
    }
    if (next.metadata.finalizers && next.metadata.finalizers.length === 0) delete next.metadata.finalizers;
    next.metadata.resourceVersion = String(++this.rv);
    b.set(`${ns}/${name}`, next);
    this.emit({ rv: this.rv, resource: resourceName(info), type: 'MODIFIED', obj: clone(next), prev: clone(cur) });
    return next;
  }

  private removeStored(info: ResourceInfo, ns: string, name: string, last: KObject): KObject {
    this.bucket(info).delete(`${ns}/${name}`);
    // The cacher stamps the deletion's own revision on the last state it sends with DELETED.
    const o = clone(last);
    o.metadata.resourceVersion = String(++this.rv);
    this.emit({ rv: this.rv, resource: resourceName(info), type: 'DELETED', obj: clone(o) });
    return o;
  }

  /**
   * DELETE as the generic registry does it: preconditions, GC finalizers for Orphan/Foreground, graceful pod
   * deletion (the kubelet finishes it with a grace-0 delete), otherwise immediate removal.
   */
  delete(
    info: ResourceInfo,
    ns: string,
    name: string,
    opts: DeleteOptions,
    defaultPolicy: Propagation = 'Background',
  ): { obj: KObject; gone: boolean } {
    const cur = this.get(info, ns, name);
    if (!cur) throw notFound(resourceName(info), name);
    const pre = opts.preconditions;
    if (pre?.uid && pre.uid !== cur.metadata.uid) {
      throw conflict(
        resourceName(info),
        name,
        `Precondition failed: UID in precondition: ${pre.uid}, UID in object meta: ${cur.metadata.uid}`,
      );
    }
    if (pre?.resourceVersion && pre.resourceVersion !== cur.metadata.resourceVersion) {
      throw conflict(
        resourceName(info),
        name,
        `Precondition failed: ResourceVersion in precondition: ${pre.resourceVersion}, ResourceVersion in object meta: ${cur.metadata.resourceVersion}`,
      );
    }
    const isPod = info.plural === 'pods' && info.group === '';
    const policy = opts.propagationPolicy ?? defaultPolicy;
    const finalizers = [...(cur.metadata.finalizers ?? [])];
    const gcFinalizer = policy === 'Orphan' ? 'orphan' : policy === 'Foreground' ? 'foregroundDeletion' : undefined;
    if (gcFinalizer && !cur.metadata.deletionTimestamp && !finalizers.includes(gcFinalizer)) {
      finalizers.push(gcFinalizer);
    }

    let grace = 0;
    if (isPod) {
      const spec = cur.spec as { nodeName?: string; terminationGracePeriodSeconds?: number } | undefined;
      const phase = (cur.status as { phase?: string } | undefined)?.phase;
      grace = opts.gracePeriodSeconds ?? spec?.terminationGracePeriodSeconds ?? 30;
      // An unscheduled or finished pod has no kubelet to wait for (pod strategy CheckGracefulDelete).
      if (!spec?.nodeName || phase === 'Succeeded' || phase === 'Failed') grace = 0;
      // A second delete can only shorten the grace period (a force delete ends it).
      if (cur.metadata.deletionTimestamp && grace >= (cur.metadata.deletionGracePeriodSeconds ?? 0)) {
        return { obj: cur, gone: false };
      }
    } else if (cur.metadata.deletionTimestamp) {
      return { obj: cur, gone: false };
    }

    if (grace > 0 || finalizers.length > 0) {
      const updated = this.update(info, ns, name, (o) => {
        o.metadata.deletionTimestamp = rfc3339(Date.now() + grace * 1000);
        o.metadata.deletionGracePeriodSeconds = grace;
        if (finalizers.length) o.metadata.finalizers = finalizers;
      });
      if (!updated || !this.get(info, ns, name)) return { obj: updated ?? cur, gone: true };
      return { obj: updated, gone: false };
    }
    return { obj: this.removeStored(info, ns, name, cur), gone: true };
  }

  /** Events after `rv` (exclusive) of one resource, or 'expired' when that revision was compacted away. */
  since(rv: number, resource: string): StoreEvent[] | 'expired' {
    if (rv < this.floor) return 'expired';
    return this.history.filter((e) => e.rv > rv && e.resource === resource);
  }

  /** The oldest revision a watch can still resume from (what the 410 message reports). */
  oldestResumable(): number {
    return this.floor;
  }

  compact(): void {
    this.floor = this.rv;
    this.history = [];
  }
}

function specOf(o: KObject): unknown {
  const { metadata: _m, status: _s, ...rest } = o;
  return rest;
}
