import type { IncomingMessage, ServerResponse } from 'node:http';
import { BUILTINS, BUILTIN_GROUPS, CONFIGMAP, CRD, JOB, POD, SECRET, type Cluster } from './cluster.js';
import { minimalCrd, prepareCrd, pruneCustom } from './crd.js';
import { decodeBuiltin, fieldValidationOf, goBool, schemaInvalid, type FieldValidation } from './decode.js';
import { pageOf } from './paging.js';
import { setCondition } from './controllers.js';
import { logContainerId, type Kubelet, type LogQuery } from './kubelet.js';
import { applyPatch } from './patch.js';
import { parseFieldSelector, parseLabelSelector } from './selectors.js';
import { apiVersionOf, resourceName, type DeleteOptions, type Propagation, type ResourceInfo } from './store.js';
import {
  alreadyExists,
  badRequest,
  clone,
  conflict,
  failure,
  invalid,
  isRecord,
  KubeError,
  newUid,
  notFound,
  text,
  type FieldError,
  type Job,
  type KObject,
  type Pod,
} from './types.js';
import { generateName } from './cluster.js';
import {
  metadataErrors,
  prepareConfigMap,
  prepareJob,
  preparePod,
  prepareSecret,
  subdomainErrors,
} from './validation.js';
import { applyUpdateRules, deleteOptions } from './updateRules.js';
import { WatchConn } from './watch.js';

export interface RequestRecord {
  method: string;
  path: string;
  query: Record<string, string>;
}
export interface CreatedRecord {
  apiVersion: string;
  kind: string;
  namespace: string;
  body: unknown;
}

const JOB_DELETE_WARNING =
  '299 - "child pods are preserved by default when jobs are deleted; set propagationPolicy=Background to remove them or set propagationPolicy=Orphan to suppress this warning"';

type Headers = Record<string, string | string[]>;

function sendJson(res: ServerResponse, code: number, body: unknown, headers: Headers = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(code, {
    'Content-Type': 'application/json',
    'Cache-Control': 'no-cache, private',
    'Content-Length': String(Buffer.byteLength(text)),
    ...headers,
  });
  res.end(text);
}

async function readBody(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  const text = Buffer.concat(chunks).toString('utf8');
  if (!text.trim()) return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw badRequest(`error decoding request body: ${(e as Error).message}`);
  }
}

/** The mux's answer for a path nothing serves (an API group no CRD declares): plain text, no Status. */
class PageNotFound extends Error {}

const serverNotFound = () => failure(404, 'NotFound', 'the server could not find the requested resource', {});
const methodNotAllowed = () =>
  failure(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource', {});

/** Built-in list items carry no kind/apiVersion on the wire (typed lists omit them); custom ones do. */
function listItem(info: ResourceInfo, o: KObject): KObject {
  if (!info.builtin) return o;
  const { kind: _k, apiVersion: _a, ...rest } = o;
  return rest as KObject;
}

export class ApiServer {
  readonly watches = new Set<WatchConn>();
  /** Open pods/log responses, so a test can cut them as a flaky network would. */
  readonly logStreams = new Set<ServerResponse>();
  refuseWatches = false;
  /** Watches answered with the 410 Expired ERROR event. */
  expiredWatches = 0;

  constructor(
    private readonly cluster: Cluster,
    private readonly kubelet: Kubelet,
    private readonly token: string,
    private readonly created: CreatedRecord[],
    private readonly requests: RequestRecord[],
    private readonly hostPort: () => string,
  ) {}

  private get store() {
    return this.cluster.store;
  }

  handle = (req: IncomingMessage, res: ServerResponse): void => {
    const url = new URL(req.url ?? '/', 'http://fake');
    const query = Object.fromEntries(url.searchParams);
    this.requests.push({ method: req.method ?? 'GET', path: url.pathname, query });
    this.route(req, res, url.pathname, query).catch((e: unknown) => {
      if (res.headersSent) {
        res.destroy();
        return;
      }
      if (e instanceof PageNotFound) {
        res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8', 'X-Content-Type-Options': 'nosniff' });
        res.end('404 page not found\n');
      } else if (e instanceof KubeError) sendJson(res, e.code, e.body);
      else sendJson(res, 500, failure(500, 'InternalError', `Internal error occurred: ${String(e)}`).body);
    });
  };

  private async route(req: IncomingMessage, res: ServerResponse, path: string, q: Record<string, string>) {
    if (req.headers.authorization !== `Bearer ${this.token}`) {
      // A real 401 carries no details.
      const body = failure(401, 'Unauthorized', 'Unauthorized').body;
      delete body.details;
      return sendJson(res, 401, body);
    }
    const method = req.method ?? 'GET';
    if (path === '/healthz' || path === '/livez' || path === '/readyz') {
      res.writeHead(200, { 'Content-Type': 'text/plain' });
      return res.end('ok');
    }
    if (path === '/version') return sendJson(res, 200, VERSION);
    const segs = path.split('/').filter(Boolean).map(decodeURIComponent);
    let group: string;
    let version: string;
    let rest: string[];
    if (segs[0] === 'api') {
      if (segs.length === 1) {
        return sendJson(res, 200, {
          kind: 'APIVersions',
          versions: ['v1'],
          serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress: this.hostPort() }],
        });
      }
      if (segs[1] !== 'v1') throw serverNotFound();
      group = '';
      version = 'v1';
      rest = segs.slice(2);
    } else if (segs[0] === 'apis') {
      if (segs.length === 1) return sendJson(res, 200, this.groupList());
      group = segs[1] as string;
      if (segs.length === 2) {
        const g = this.groupList().groups.find((x) => x.name === group);
        if (!g) throw serverNotFound();
        return sendJson(res, 200, { kind: 'APIGroup', apiVersion: 'v1', ...g });
      }
      version = segs[2] as string;
      rest = segs.slice(3);
    } else throw serverNotFound();

    if (rest.length === 0) return sendJson(res, 200, this.resourceList(group, version));
    let forceWatch = false;
    if (rest[0] === 'watch') {
      forceWatch = true;
      rest = rest.slice(1);
    }
    let ns: string | undefined;
    let plural: string;
    let name: string | undefined;
    let sub: string | undefined;
    if (rest[0] === 'namespaces' && rest.length >= 3) {
      [, ns, plural, name, sub] = rest as [string, string, string, string?, string?];
    } else {
      [plural, name, sub] = rest as [string, string?, string?];
    }
    if (rest.length > (ns !== undefined ? 5 : 3)) throw serverNotFound();
    const info = this.resolve(group, version, plural);
    if (info.namespaced && ns === undefined && name !== undefined) throw serverNotFound();
    if (!info.namespaced && ns !== undefined) throw serverNotFound();
    const nsKey = ns ?? '';

    if (name === undefined) {
      if (method === 'GET') {
        if (forceWatch || goBool('watch', q.watch)) return this.watch(info, ns, q, res);
        return sendJson(res, 200, this.list(info, ns, q));
      }
      if (method === 'POST') return this.create(info, nsKey, await readBody(req), q, res);
      if (method === 'DELETE' && info.namespaced)
        return this.deleteCollection(info, nsKey, q, await readBody(req), res);
      throw methodNotAllowed();
    }
    if (sub === undefined) {
      if (method === 'GET') return sendJson(res, 200, this.mustGet(info, nsKey, name));
      if (method === 'DELETE') return this.delete(info, nsKey, name, q, await readBody(req), res);
      if (method === 'PUT') return this.write(info, nsKey, name, 'main', await readBody(req), undefined, q, res);
      if (method === 'PATCH') {
        return this.write(info, nsKey, name, 'main', await readBody(req), req.headers['content-type'] ?? '', q, res);
      }
      throw methodNotAllowed();
    }
    if (sub === 'status' && info.statusSubresource) {
      if (method === 'GET') return sendJson(res, 200, this.mustGet(info, nsKey, name));
      if (method === 'PUT') return this.write(info, nsKey, name, 'status', await readBody(req), undefined, q, res);
      if (method === 'PATCH') {
        const ct = req.headers['content-type'] ?? '';
        return this.write(info, nsKey, name, 'status', await readBody(req), ct, q, res);
      }
      throw methodNotAllowed();
    }
    if (info === POD && sub === 'log' && method === 'GET') return this.log(nsKey, name, q, res);
    if (info === POD && sub === 'eviction' && method === 'POST') {
      return this.eviction(nsKey, name, await readBody(req), res);
    }
    throw serverNotFound();
  }

  private resolve(group: string, version: string, plural: string): ResourceInfo {
    if (BUILTIN_GROUPS.has(group)) {
      const info = BUILTINS.find((b) => b.group === group && b.plural === plural && b.version === version);
      if (!info) throw serverNotFound();
      return info;
    }
    const known = this.store.infos.get(`${plural}.${group}`);
    // Only a CRD makes a custom resource exist; its served versions are the only ones.
    if (!known || !(known.versions ?? [known.version]).includes(version)) throw new PageNotFound();
    return known.version === version ? known : { ...known, version };
  }

  /** Installs a CRD, as a test would with kubectl apply (here: any spec and status preserved). */
  declare(info: { group: string; version: string; plural: string; kind: string }): void {
    const crd = minimalCrd(info);
    crd.metadata.uid = newUid();
    prepareCrd(crd);
    this.store.create(CRD, crd);
  }

  private groupList() {
    const groups = new Map<string, Set<string>>([
      ['batch', new Set(['v1'])],
      ['policy', new Set(['v1'])],
      ['apiextensions.k8s.io', new Set(['v1'])],
    ]);
    for (const i of this.store.infos.values()) {
      if (i.builtin) continue;
      if (!groups.has(i.group)) groups.set(i.group, new Set());
      for (const v of i.versions ?? [i.version]) groups.get(i.group)?.add(v);
    }
    return {
      kind: 'APIGroupList',
      apiVersion: 'v1',
      groups: [...groups].map(([name, versions]) => {
        const vs = [...versions].map((v) => ({ groupVersion: `${name}/${v}`, version: v }));
        return { name, versions: vs, preferredVersion: vs[0] };
      }),
    };
  }

  private resourceList(group: string, version: string) {
    const verbs = ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'];
    const infos = [...this.store.infos.values()].filter(
      (i) => i.group === group && (i.versions ?? [i.version]).includes(version),
    );
    if (group === 'policy' && version === 'v1')
      return { kind: 'APIResourceList', apiVersion: 'v1', groupVersion: 'policy/v1', resources: [] };
    if (!infos.length) throw serverNotFound();
    const resources = infos.flatMap((i) => [
      {
        name: i.plural,
        singularName: i.kind.toLowerCase(),
        namespaced: i.namespaced,
        kind: i.kind,
        verbs,
      },
      ...(i.statusSubresource
        ? [
            {
              name: `${i.plural}/status`,
              singularName: '',
              namespaced: i.namespaced,
              kind: i.kind,
              verbs: ['get', 'patch', 'update'],
            },
          ]
        : []),
      ...(i === POD
        ? [
            { name: 'pods/log', singularName: '', namespaced: true, kind: 'Pod', verbs: ['get'] },
            {
              name: 'pods/eviction',
              singularName: '',
              namespaced: true,
              group: 'policy',
              version: 'v1',
              kind: 'Eviction',
              verbs: ['create'],
            },
          ]
        : []),
    ]);
    return {
      kind: 'APIResourceList',
      apiVersion: 'v1',
      groupVersion: group ? `${group}/${version}` : version,
      resources,
    };
  }

  private mustGet(info: ResourceInfo, ns: string, name: string): KObject {
    const o = this.store.get(info, ns, name);
    if (!o) throw notFound(resourceName(info), name);
    return o;
  }

  private list(info: ResourceInfo, ns: string | undefined, q: Record<string, string>) {
    const labelSel = parseLabelSelector(q.labelSelector);
    const fieldSel = parseFieldSelector(q.fieldSelector, info.kind, info.builtin);
    const matching = this.store.list(info, ns).filter((o) => labelSel(o.metadata.labels) && fieldSel(o));
    const page = pageOf(this.store, matching, q, !q.labelSelector && !q.fieldSelector);
    return {
      kind: `${info.kind}List`,
      apiVersion: apiVersionOf(info),
      metadata: page.metadata,
      items: page.items.map((o) => listItem(info, o)),
    };
  }

  private watch(info: ResourceInfo, ns: string | undefined, q: Record<string, string>, res: ServerResponse): void {
    if (this.refuseWatches) {
      // Like an apiserver that is down: the connection dies before any response.
      res.socket?.destroy();
      return;
    }
    const conn = WatchConn.open(this.store, info, ns, q, res, (c) => this.watches.delete(c));
    if (conn.expired) this.expiredWatches++;
    if (!res.writableEnded) this.watches.add(conn);
  }

  private create(info: ResourceInfo, ns: string, body: unknown, q: Record<string, string>, res: ServerResponse) {
    if (info.namespaced && !this.cluster.namespaceExists(ns)) throw notFound('namespaces', ns);
    if (!isRecord(body)) throw badRequest('the body of the request was in an unknown format');
    const expected = apiVersionOf(info);
    let kind = info.kind;
    if (info.builtin) {
      if (body.apiVersion !== undefined && body.apiVersion !== expected) {
        throw badRequest(
          `the API version in the data (${text(body.apiVersion)}) does not match the expected API version (${expected})`,
        );
      }
      if (body.kind !== undefined && body.kind !== info.kind) {
        throw badRequest(`${text(body.kind)} in version "${info.version}" cannot be handled as a ${info.kind}`);
      }
    } else {
      if (typeof body.kind !== 'string' || !body.kind)
        throw badRequest(`Object 'Kind' is missing in '${JSON.stringify(body)}'`);
      if (body.apiVersion !== expected) {
        throw badRequest(
          `the API version in the data (${text(body.apiVersion)}) does not match the expected API version (${expected})`,
        );
      }
      if (body.kind !== info.kind) {
        throw badRequest(`${text(body.kind)} in version "${info.version}" cannot be handled as a ${info.kind}`);
      }
      kind = body.kind;
    }
    const obj = clone(body) as KObject;
    const warnings = this.decode(info, obj, fieldValidationOf(q));
    const headers: Headers = warnings.length ? { Warning: warnings } : {};
    obj.apiVersion = expected;
    obj.kind = kind;
    obj.metadata = isRecord(obj.metadata) ? obj.metadata : {};
    const m = obj.metadata;
    if (info.namespaced) {
      if (m.namespace && m.namespace !== ns) {
        throw badRequest('the namespace of the provided object does not match the namespace sent on the request');
      }
      m.namespace = ns;
    } else delete m.namespace;
    for (const k of [
      'uid',
      'resourceVersion',
      'creationTimestamp',
      'deletionTimestamp',
      'deletionGracePeriodSeconds',
      'generation',
      'managedFields',
      'selfLink',
    ]) {
      delete m[k];
    }
    const record = () =>
      this.created.push({ apiVersion: text(body.apiVersion ?? expected), kind, namespace: ns, body: clone(body) });
    const dryRun = q.dryRun === 'All';

    let stored: KObject;
    if (info === POD) {
      if (dryRun) throw badRequest('dryRun is not supported for pods by this fake');
      // The schemas check the pod as defaulted; the hand-written rules (in createPod) speak first.
      const probe = clone(obj) as Pod;
      let prepared = true;
      try {
        preparePod(probe);
      } catch {
        prepared = false;
      }
      const errs = prepared ? schemaInvalid('v1', 'Pod', probe) : [];
      if (errs.length) throw invalid(kind, info.group, m.name ?? m.generateName ?? '', errs);
      stored = this.cluster.createPod(ns, obj as Pod);
    } else {
      if (!m.name && m.generateName) m.name = generateName(m.generateName);
      if (!m.name) {
        throw invalid(kind, info.group, '', [
          { field: 'metadata.name', type: 'Required', detail: 'name or generateName is required' },
        ]);
      }
      const errs: FieldError[] = subdomainErrors('metadata.name', m.name);
      if (errs.length) throw invalid(kind, info.group, m.name, errs);
      m.uid = newUid();
      if (info === JOB) prepareJob(obj as Job);
      else if (info === SECRET) prepareSecret(obj);
      else if (info === CONFIGMAP) prepareConfigMap(obj);
      else if (info === CRD) prepareCrd(obj);
      else {
        const metaErrs = metadataErrors(obj);
        if (metaErrs.length) throw invalid(kind, info.group, m.name, metaErrs);
        if (!info.builtin && info.statusSubresource) delete obj.status;
      }
      const errs2 = info.builtin ? schemaInvalid(apiVersionOf(info), kind, obj) : [];
      if (errs2.length) throw invalid(kind, info.group, m.name, errs2);
      if (dryRun) {
        if (this.store.get(info, ns, m.name)) throw alreadyExists(resourceName(info), m.name);
        return sendJson(res, 201, obj, headers);
      }
      stored = this.store.create(info, obj);
    }
    record();
    sendJson(res, 201, stored, headers);
  }

  /** Decoding at the API boundary (decode.ts, crd.ts): Warning header values, or a thrown 400. */
  private decode(info: ResourceInfo, obj: KObject, fv: FieldValidation) {
    if (!info.builtin) return pruneCustom(info, info.version, obj, fv);
    return decodeBuiltin(apiVersionOf(info), info.kind, obj, fv);
  }

  /** PUT and PATCH on the main resource or /status, with the registry's update rules. */
  private write(
    info: ResourceInfo,
    ns: string,
    name: string,
    target: 'main' | 'status',
    body: unknown,
    patchType: string | undefined,
    q: Record<string, string>,
    res: ServerResponse,
  ) {
    const fv = fieldValidationOf(q);
    const cur = this.mustGet(info, ns, name);
    const proposed = patchType !== undefined ? applyPatch(patchType, cur, body, info.builtin) : body;
    if (!isRecord(proposed)) throw badRequest('the body of the request was in an unknown format');
    const warnings = this.decode(info, proposed as KObject, fv);
    const pm = isRecord(proposed.metadata) ? proposed.metadata : {};
    if (patchType === undefined) {
      if (pm.name !== undefined && pm.name !== name) {
        throw badRequest(`the name of the object (${text(pm.name)}) does not match the name on the URL (${name})`);
      }
      if (!pm.resourceVersion && !info.builtin) {
        throw invalid(info.kind, info.group, name, [
          { field: 'metadata.resourceVersion', type: 'Invalid', value: 0, detail: 'must be specified for an update' },
        ]);
      }
    }
    if (pm.resourceVersion !== undefined && pm.resourceVersion !== cur.metadata.resourceVersion) {
      throw conflict(
        resourceName(info),
        name,
        'the object has been modified; please apply your changes to the latest version and try again',
      );
    }
    const next = applyUpdateRules(info, cur, proposed as KObject, target);
    const stored = this.store.update(info, ns, name, (o) => {
      for (const k of Object.keys(o)) delete o[k];
      Object.assign(o, next);
    });
    sendJson(res, 200, stored ?? next, warnings.length ? { Warning: warnings } : {});
  }

  private delete(
    info: ResourceInfo,
    ns: string,
    name: string,
    q: Record<string, string>,
    body: unknown,
    res: ServerResponse,
  ) {
    const opts = deleteOptions(q, body);
    const headers: Headers = {};
    // batch/v1 keeps the pre-GC default: a Job deleted without a policy orphans its pods.
    const defaultPolicy: Propagation = info === JOB ? 'Orphan' : 'Background';
    if (info === JOB && !opts.propagationPolicy) headers.Warning = JOB_DELETE_WARNING;
    if (opts.dryRun) return sendJson(res, 200, this.mustGet(info, ns, name), headers);
    const { obj, gone } = this.store.delete(info, ns, name, opts, defaultPolicy);
    if (!gone || info === POD) return sendJson(res, 200, obj, headers);
    sendJson(
      res,
      200,
      {
        kind: 'Status',
        apiVersion: 'v1',
        metadata: {},
        status: 'Success',
        details: { name, group: info.group, kind: info.plural, uid: obj.metadata.uid },
      },
      headers,
    );
  }

  private deleteCollection(
    info: ResourceInfo,
    ns: string,
    q: Record<string, string>,
    body: unknown,
    res: ServerResponse,
  ) {
    const opts = deleteOptions(q, body);
    const labelSel = parseLabelSelector(q.labelSelector);
    const fieldSel = parseFieldSelector(q.fieldSelector, info.kind, info.builtin);
    const items: KObject[] = [];
    for (const o of this.store.list(info, ns)) {
      if (!labelSel(o.metadata.labels) || !fieldSel(o)) continue;
      try {
        items.push(
          this.store.delete(info, ns, o.metadata.name ?? '', opts, info === JOB ? 'Orphan' : 'Background').obj,
        );
      } catch (e) {
        if (!(e instanceof KubeError && e.code === 404)) throw e;
      }
    }
    sendJson(res, 200, {
      kind: `${info.kind}List`,
      apiVersion: apiVersionOf(info),
      metadata: { resourceVersion: String(this.store.currentRV()) },
      items: items.map((o) => listItem(info, o)),
    });
  }

  private async log(ns: string, name: string, q: Record<string, string>, res: ServerResponse): Promise<void> {
    const pod = this.mustGet(POD, ns, name) as Pod;
    const names = pod.spec.containers.map((c) => c.name);
    const initNames = (pod.spec.initContainers ?? []).map((c) => c.name);
    let container = q.container;
    if (!container) {
      if (names.length === 1) container = names[0] as string;
      else {
        throw badRequest(
          `a container name must be specified for pod ${name}, choose one of: [${names.join(' ')}]` +
            (initNames.length ? ` or one of the init containers: [${initNames.join(' ')}]` : ''),
        );
      }
    } else if (!names.includes(container) && !initNames.includes(container)) {
      throw badRequest(`container ${container} is not valid for pod ${name}`);
    }
    const int = (v: string | undefined) => (v !== undefined && v !== '' ? Number(v) : undefined);
    const query: LogQuery = {
      follow: goBool('follow', q.follow),
      previous: goBool('previous', q.previous),
      timestamps: goBool('timestamps', q.timestamps),
      tailLines: int(q.tailLines),
      sinceSeconds: int(q.sinceSeconds),
      sinceTime: q.sinceTime || undefined,
      limitBytes: int(q.limitBytes),
    };
    if (!pod.spec.nodeName) {
      // No host yet: the apiserver returns an empty stream.
      res.writeHead(200, { 'Content-Type': 'text/plain' });
      return void res.end();
    }
    const id = logContainerId(pod, container, query.previous);
    if (!id) throw badRequest(`container "${container}" in pod "${name}" is waiting to start - no logs yet`);
    this.logStreams.add(res);
    res.on('close', () => this.logStreams.delete(res));
    try {
      await this.kubelet.streamLogs(id, query, res);
    } catch (e) {
      if (res.headersSent) return void res.destroy();
      throw failure(500, 'InternalError', `Internal error occurred: ${(e as Error).message}`);
    }
  }

  private eviction(ns: string, name: string, body: unknown, res: ServerResponse) {
    if (!isRecord(body)) throw badRequest('the body of the request was in an unknown format');
    const bm = isRecord(body.metadata) ? body.metadata : {};
    if (bm.name !== undefined && bm.name !== name)
      throw badRequest('name in URL does not match name in Eviction object');
    this.mustGet(POD, ns, name);
    const del = isRecord(body.deleteOptions) ? body.deleteOptions : {};
    evict(this.cluster, ns, name, deleteOptions({}, del));
    this.created.push({
      apiVersion: text(body.apiVersion ?? 'policy/v1'),
      kind: 'Eviction',
      namespace: ns,
      body: clone(body),
    });
    sendJson(res, 201, { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success', code: 201 });
  }
}

/** The Eviction API without PodDisruptionBudgets: DisruptionTarget condition, then a graceful delete. */
export function evict(cluster: Cluster, ns: string, name: string, opts: DeleteOptions): void {
  const pod = cluster.store.get(POD, ns, name) as Pod | undefined;
  if (!pod) throw notFound('pods', name);
  const terminal = pod.status?.phase === 'Succeeded' || pod.status?.phase === 'Failed';
  if (!terminal && !pod.metadata.deletionTimestamp) {
    cluster.store.update(POD, ns, name, (o) => {
      const st = ((o as Pod).status ??= {});
      setCondition((st.conditions ??= []), {
        type: 'DisruptionTarget',
        status: 'True',
        lastProbeTime: null,
        reason: 'EvictionByEvictionAPI',
        message: 'Eviction API: evicting',
      });
    });
  }
  cluster.store.delete(POD, ns, name, opts);
}

const VERSION = {
  major: '1',
  minor: '31',
  gitVersion: 'v1.31.0-fake',
  gitCommit: '0000000000000000000000000000000000000000',
  gitTreeState: 'clean',
  buildDate: '2024-08-13T07:28:49Z',
  goVersion: 'go1.22.5',
  compiler: 'gc',
  platform: 'linux/amd64',
};
