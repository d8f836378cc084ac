import type { ServerResponse } from 'node:http';
import { parseFieldSelector, parseLabelSelector } from './selectors.js';
import { apiVersionOf, resourceName, type ResourceInfo, type Store, type StoreEvent } from './store.js';
import { goBool } from './decode.js';
import { badRequest, failure, type KObject } from './types.js';

export type WatchType = 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';

/** How often an idle watch with allowWatchBookmarks gets a BOOKMARK (the real apiserver: about once a minute). */
const BOOKMARK_MS = 1000;

/** One open watch connection, following the cacher's rules for selectors, history and bookmarks. */
export class WatchConn {
  private unsubscribe: (() => void) | undefined;
  private readonly timers: NodeJS.Timeout[] = [];
  private lastSent = Date.now();
  expired = false;

  constructor(
    private readonly store: Store,
    private readonly info: ResourceInfo,
    private readonly res: ServerResponse,
    private readonly ns: string | undefined,
    private readonly matches: (o: KObject) => boolean,
    private readonly onClose: () => void,
  ) {}

  static open(
    store: Store,
    info: ResourceInfo,
    ns: string | undefined,
    query: Record<string, string>,
    res: ServerResponse,
    onClose: (c: WatchConn) => void,
  ): WatchConn {
    // Selector errors are plain 400s, before the stream starts.
    const labelSel = parseLabelSelector(query.labelSelector);
    const fieldSel = parseFieldSelector(query.fieldSelector, info.kind, info.builtin);
    const rvParam = query.resourceVersion ?? '';
    if (rvParam !== '' && !/^\d+$/.test(rvParam)) throw badRequest(`invalid resource version: ${rvParam}`);
    goBool('allowWatchBookmarks', query.allowWatchBookmarks);
    const conn: WatchConn = new WatchConn(
      store,
      info,
      res,
      ns,
      (o) => labelSel(o.metadata.labels) && fieldSel(o),
      () => onClose(conn),
    );
    conn.start(rvParam, query);
    return conn;
  }

  get socket() {
    return this.res.socket;
  }

  private write(type: WatchType, object: unknown): void {
    if (this.res.writableEnded || this.res.destroyed) return;
    this.lastSent = Date.now();
    this.res.write(JSON.stringify({ type, object }) + '\n');
  }

  private deliver(e: StoreEvent): void {
    if (this.ns !== undefined && (e.obj.metadata.namespace ?? '') !== this.ns) return;
    const now = this.matches(e.obj);
    if (e.type !== 'MODIFIED') {
      if (now) this.write(e.type, e.obj);
      return;
    }
    const before = e.prev ? this.matches(e.prev) : now;
    if (now && before) this.write('MODIFIED', e.obj);
    else if (now) this.write('ADDED', e.obj);
    else if (before && e.prev) {
      // Like the cacher: the previous content (the last state the client saw match), at the event's revision.
      const last = { ...e.prev, metadata: { ...e.prev.metadata, resourceVersion: e.obj.metadata.resourceVersion } };
      this.write('DELETED', last);
    }
  }

  private start(rvParam: string, query: Record<string, string>): void {
    const key = resourceName(this.info);
    this.res.writeHead(200, {
      'Content-Type': 'application/json',
      'Cache-Control': 'no-cache, private',
      'Transfer-Encoding': 'chunked',
    });
    this.res.flushHeaders();
    this.res.on('close', () => this.close());

    if (rvParam === '' || rvParam === '0') {
      for (const o of this.store.list(this.info, this.ns)) if (this.matches(o)) this.write('ADDED', o);
    } else {
      const backlog = this.store.since(Number(rvParam), key);
      if (backlog === 'expired') {
        // The cacher reports an expired resume as an ERROR event on an otherwise normal 200 stream.
        const err = failure(
          410,
          'Expired',
          `too old resource version: ${rvParam} (${this.store.oldestResumable()})`,
        ).body;
        delete err.details;
        this.expired = true;
        this.write('ERROR', err);
        this.res.end();
        return;
      }
      for (const e of backlog) this.deliver(e);
    }
    this.unsubscribe = this.store.subscribe((e) => {
      if (e.resource === key) this.deliver(e);
    });

    if (goBool('allowWatchBookmarks', query.allowWatchBookmarks)) {
      const t = setInterval(() => {
        if (Date.now() - this.lastSent < BOOKMARK_MS) return;
        this.write('BOOKMARK', {
          kind: this.info.kind,
          apiVersion: apiVersionOf(this.info),
          metadata: { resourceVersion: String(this.store.currentRV()) },
        });
      }, BOOKMARK_MS / 4);
      this.timers.push(t);
    }
    const timeout = Number(query.timeoutSeconds);
    if (query.timeoutSeconds && timeout > 0) {
      this.timers.push(setTimeout(() => this.res.end(), timeout * 1000));
    }
  }

  /** Ends the stream normally (the client sees a clean end of the response). */
  end(): void {
    if (!this.res.writableEnded) this.res.end();
    this.close();
  }

  private close(): void {
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    for (const t of this.timers) clearTimeout(t);
    this.timers.length = 0;
    this.onClose();
  }
}
