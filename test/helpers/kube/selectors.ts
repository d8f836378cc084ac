import { badRequest, isRecord, type KObject } from './types.js';

type LabelRequirement =
  | { key: string; op: 'exists' | 'notexists' }
  | { key: string; op: 'eq' | 'neq' | 'gt' | 'lt'; value: string }
  | { key: string; op: 'in' | 'notin'; values: string[] };

export type LabelSelector = (labels: Record<string, string> | undefined) => boolean;

/** Commas separate requirements except inside `in (a,b)` sets. */
function splitTop(s: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of s) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === ',' && depth === 0) {
      out.push(cur);
      cur = '';
    } else cur += ch;
  }
  out.push(cur);
  return out;
}

const KEY = String.raw`([^\s!=<>(),]+)`;

function parseRequirement(raw: string): LabelRequirement {
  let m = new RegExp(String.raw`^\s*!\s*${KEY}\s*$`).exec(raw);
  if (m) return { key: m[1] as string, op: 'notexists' };
  m = new RegExp(String.raw`^\s*${KEY}\s+(in|notin)\s*\(([^()]*)\)\s*$`).exec(raw);
  if (m) {
    const values = (m[3] as string).split(',').map((v) => v.trim());
    return { key: m[1] as string, op: m[2] as 'in' | 'notin', values: values.length === 1 && !values[0] ? [] : values };
  }
  m = new RegExp(String.raw`^\s*${KEY}\s*(==|=|!=|>|<)\s*([^\s!=<>(),]*)\s*$`).exec(raw);
  if (m) {
    const ops = { '=': 'eq', '==': 'eq', '!=': 'neq', '>': 'gt', '<': 'lt' } as const;
    return { key: m[1] as string, op: ops[m[2] as keyof typeof ops], value: m[3] as string };
  }
  m = new RegExp(String.raw`^\s*${KEY}\s*$`).exec(raw);
  if (m) return { key: m[1] as string, op: 'exists' };
  throw badRequest(`unable to parse requirement: found '${raw.trim()}', expected: key, !key or key op value`);
}

/** Parses a `labelSelector` query value (equality-based and set-based); a parse error is a 400 like the apiserver's. */
export function parseLabelSelector(s: string | undefined): LabelSelector {
  if (!s || !s.trim()) return () => true;
  const reqs = splitTop(s).map(parseRequirement);
  return (labels) =>
    reqs.every((r) => {
      const has = labels !== undefined && Object.prototype.hasOwnProperty.call(labels, r.key);
      const v = has ? labels[r.key] : undefined;
      switch (r.op) {
        case 'exists':
          return has;
        case 'notexists':
          return !has;
        case 'eq':
          return has && v === r.value;
        case 'neq':
          return !has || v !== r.value;
        case 'gt':
          return has && Number(v) > Number(r.value);
        case 'lt':
          return has && Number(v) < Number(r.value);
        case 'in':
          return has && r.values.includes(v as string);
        case 'notin':
          return !has || !r.values.includes(v as string);
      }
    });
}

/** Matches a structured `spec.selector` (matchLabels + matchExpressions), as Jobs carry. */
export function matchesLabelSelectorObject(sel: unknown, labels: Record<string, string> | undefined): boolean {
  if (!isRecord(sel)) return false;
  const ml = isRecord(sel.matchLabels) ? sel.matchLabels : {};
  for (const [k, v] of Object.entries(ml)) if (labels?.[k] !== v) return false;
  const exprs = Array.isArray(sel.matchExpressions) ? (sel.matchExpressions as unknown[]) : [];
  for (const e of exprs) {
    if (!isRecord(e) || typeof e.key !== 'string') return false;
    const has = labels !== undefined && e.key in labels;
    const values = Array.isArray(e.values) ? (e.values as string[]) : [];
    const v = labels?.[e.key];
    const ok =
      e.operator === 'In'
        ? has && values.includes(v as string)
        : e.operator === 'NotIn'
          ? !has || !values.includes(v as string)
          : e.operator === 'Exists'
            ? has
            : e.operator === 'DoesNotExist'
              ? !has
              : false;
    if (!ok) return false;
  }
  return true;
}

type FieldGetter = (o: KObject) => string | undefined;

const str = (v: unknown): string | undefined =>
  v === undefined || v === null ? undefined : typeof v === 'string' ? v : JSON.stringify(v);
const path =
  (...keys: string[]): FieldGetter =>
  (o) => {
    let cur: unknown = o;
    for (const k of keys) cur = isRecord(cur) ? cur[k] : undefined;
    return str(cur);
  };

const commonFields: Record<string, FieldGetter> = {
  'metadata.name': (o) => o.metadata.name,
  'metadata.namespace': (o) => o.metadata.namespace ?? '',
};

/** The field labels each built-in kind's storage registers (pkg/registry/.../strategy.go *ToSelectableFields). */
const kindFields: Record<string, Record<string, FieldGetter>> = {
  Pod: {
    'spec.nodeName': (o) => str(path('spec', 'nodeName')(o)) ?? '',
    'spec.restartPolicy': path('spec', 'restartPolicy'),
    'spec.schedulerName': path('spec', 'schedulerName'),
    'spec.serviceAccountName': path('spec', 'serviceAccountName'),
    'spec.hostNetwork': (o) => String(isRecord(o.spec) && o.spec.hostNetwork === true),
    'status.phase': path('status', 'phase'),
    'status.podIP': (o) => path('status', 'podIP')(o) ?? '',
    'status.nominatedNodeName': (o) => path('status', 'nominatedNodeName')(o) ?? '',
  },
  Event: {
    'involvedObject.kind': path('involvedObject', 'kind'),
    'involvedObject.namespace': path('involvedObject', 'namespace'),
    'involvedObject.name': path('involvedObject', 'name'),
    'involvedObject.uid': path('involvedObject', 'uid'),
    'involvedObject.apiVersion': path('involvedObject', 'apiVersion'),
    'involvedObject.resourceVersion': path('involvedObject', 'resourceVersion'),
    'involvedObject.fieldPath': path('involvedObject', 'fieldPath'),
    reason: path('reason'),
    reportingComponent: path('reportingComponent'),
    source: path('source', 'component'),
    type: path('type'),
  },
  Secret: { type: path('type') },
  Job: { 'status.successful': (o) => String((isRecord(o.status) && Number(o.status.succeeded)) || 0) },
  Node: { 'spec.unschedulable': (o) => String(isRecord(o.spec) && o.spec.unschedulable === true) },
  Namespace: { 'status.phase': path('status', 'phase') },
};

export type FieldSelector = (o: KObject) => boolean;

/** Splits on unescaped commas; field selector values escape `\,` `\=` `\\` (fields.EscapeValue). */
function splitEscaped(s: string, sep: string): string[] {
  const out: string[] = [];
  let cur = '';
  for (let i = 0; i < s.length; i++) {
    const ch = s[i] as string;
    if (ch === '\\' && i + 1 < s.length) {
      cur += ch + s[i + 1];
      i++;
    } else if (ch === sep) {
      out.push(cur);
      cur = '';
    } else cur += ch;
  }
  out.push(cur);
  return out;
}
const unescape = (s: string) => s.replace(/\\(.)/g, '$1');

export function parseFieldSelector(s: string | undefined, kind: string, builtin: boolean): FieldSelector {
  if (!s || !s.trim()) return () => true;
  const fields = { ...commonFields, ...(builtin ? kindFields[kind] : {}) };
  const reqs = splitEscaped(s, ',').map((raw) => {
    const m = /^([^=!]+?)\s*(==|=|!=)\s*(.*)$/.exec(raw.trim());
    if (!m) throw badRequest(`invalid selector: '${s}'; can't understand '${raw}'`);
    const field = m[1] as string;
    const get = fields[field];
    if (!get) {
      throw badRequest(
        builtin
          ? `field label not supported: ${field}`
          : `"${field}" is not a known field selector: only "metadata.name", "metadata.namespace"`,
      );
    }
    return { get, neq: m[2] === '!=', value: unescape(m[3] as string) };
  });
  return (o) => reqs.every((r) => (r.get(o) === r.value) !== r.neq);
}

const SUFFIX: Record<string, number> = {
  n: 1e-9,
  u: 1e-6,
  m: 1e-3,
  '': 1,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
  Ei: 2 ** 60,
};

/** A resource.Quantity as a plain number (cores for cpu, bytes for memory); NaN when malformed. */
export function parseQuantity(q: string | number | undefined): number {
  if (q === undefined) return 0;
  if (typeof q === 'number') return q;
  const m = /^([+-]?(?:\d+\.?\d*|\.\d+))(?:([eE][+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])?)$/.exec(q.trim());
  if (!m) return NaN;
  const base = Number(m[1]);
  if (m[2]) return base * 10 ** Number(m[2].slice(1));
  return base * (SUFFIX[m[3] ?? ''] ?? NaN);
}
