/**
 * `limit` / `continue` on lists, as the etcd3 store pages them: items in key order, a continue token that is
 * base64 JSON `{"v":"meta.k8s.io/v1","rv":<list revision>,"start":"<next key>"}`, `remainingItemCount` when no
 * selector filters the list, and 410 Expired once the token's revision was compacted. Unlike etcd, later pages are
 * read from the current state, not from a snapshot at the first page's revision (an object created between pages
 * after the last key shows up).
 */
import type { Store } from './store.js';
import { badRequest, failure, type KObject } from './types.js';

const keyOf = (o: KObject) => `${o.metadata.namespace ? `${o.metadata.namespace}/` : ''}${o.metadata.name ?? ''}`;

export interface Page {
  items: KObject[];
  metadata: { resourceVersion: string; continue?: string; remainingItemCount?: number };
}

/** `sorted`: the matching objects in key order (Store.list order). */
export function pageOf(store: Store, sorted: KObject[], q: Record<string, string>, unfiltered: boolean): Page {
  const limitText = q.limit ?? '';
  if (limitText !== '' && !/^-?\d+$/.test(limitText)) {
    throw badRequest(`strconv.ParseInt: parsing ${JSON.stringify(limitText)}: invalid syntax`);
  }
  const limit = limitText === '' ? 0 : Number(limitText);
  let rv = store.currentRV();
  let items = sorted;
  if (q.continue) {
    const token = decodeToken(q.continue);
    if (!store.canContinueFrom(token.rv)) {
      throw failure(
        410,
        'Expired',
        'The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.',
      );
    }
    rv = token.rv;
    items = items.filter((o) => keyOf(o) >= token.start);
  }
  const metadata: Page['metadata'] = { resourceVersion: String(rv) };
  if (limit > 0 && items.length > limit) {
    const last = items[limit - 1] as KObject;
    const token = { v: 'meta.k8s.io/v1', rv, start: `${keyOf(last)}\u0000` };
    metadata.continue = Buffer.from(JSON.stringify(token)).toString('base64');
    if (unfiltered) metadata.remainingItemCount = items.length - limit;
    items = items.slice(0, limit);
  }
  return { items, metadata };
}

function decodeToken(text: string): { rv: number; start: string } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(text, 'base64').toString('utf8'));
  } catch {
    throw badRequest(`continue key is not valid: illegal base64 data at input byte 0`);
  }
  const t = parsed as { v?: unknown; rv?: unknown; start?: unknown };
  if (t.v !== 'meta.k8s.io/v1')
    throw badRequest('continue key is not valid: server does not recognize this encoded key');
  if (typeof t.rv !== 'number' || typeof t.start !== 'string') {
    throw badRequest('continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)');
  }
  return { rv: t.rv, start: t.start };
}
