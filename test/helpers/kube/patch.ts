import { badRequest, clone, failure, isRecord, jsonEqual, type KubeError } from './types.js';

/** RFC 7386. */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isRecord(patch)) return clone(patch);
  const out: Record<string, unknown> = isRecord(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

function patchFailed(patch: unknown, why: string): KubeError {
  // interpretPatchError: a patch that does not apply is a 422 on the field "patch".
  const value = JSON.stringify(patch);
  return failure(422, 'Invalid', `the server rejected our request due to an error in our request`, {
    causes: [
      { reason: 'FieldValueInvalid', message: `Invalid value: ${JSON.stringify(value)}: ${why}`, field: 'patch' },
    ],
  });
}

function parsePointer(p: string): string[] {
  if (p === '') return [];
  if (!p.startsWith('/')) throw new Error(`JSON pointer must start with '/': ${p}`);
  return p
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
}

type Container = Record<string, unknown> | unknown[];

function resolveParent(doc: unknown, tokens: string[], path: string): { parent: Container; key: string } {
  let cur = doc;
  for (const t of tokens.slice(0, -1)) {
    if (Array.isArray(cur)) cur = cur[Number(t)];
    else if (isRecord(cur)) cur = cur[t];
    else cur = undefined;
    if (cur === undefined) throw new Error(`missing path: ${path}`);
  }
  if (!Array.isArray(cur) && !isRecord(cur)) throw new Error(`missing path: ${path}`);
  return { parent: cur, key: tokens[tokens.length - 1] as string };
}

function getAt(doc: unknown, path: string): unknown {
  let cur = doc;
  for (const t of parsePointer(path)) {
    if (Array.isArray(cur)) cur = cur[Number(t)];
    else if (isRecord(cur)) cur = cur[t];
    else cur = undefined;
    if (cur === undefined) throw new Error(`missing value: ${path}`);
  }
  return cur;
}

function arrayIndex(arr: unknown[], key: string, forAdd: boolean, path: string): number {
  if (forAdd && key === '-') return arr.length;
  if (!/^\d+$/.test(key)) throw new Error(`invalid array index: ${path}`);
  const i = Number(key);
  if (i > arr.length || (!forAdd && i === arr.length)) throw new Error(`index out of range: ${path}`);
  return i;
}

function add(doc: unknown, path: string, value: unknown): unknown {
  const tokens = parsePointer(path);
  if (!tokens.length) return clone(value);
  const { parent, key } = resolveParent(doc, tokens, path);
  if (Array.isArray(parent)) parent.splice(arrayIndex(parent, key, true, path), 0, clone(value));
  else parent[key] = clone(value);
  return doc;
}

function remove(doc: unknown, path: string): unknown {
  const tokens = parsePointer(path);
  const { parent, key } = resolveParent(doc, tokens, path);
  if (Array.isArray(parent)) parent.splice(arrayIndex(parent, key, false, path), 1);
  else {
    if (!(key in parent)) throw new Error(`missing value: ${path}`);
    delete parent[key];
  }
  return doc;
}

/** RFC 6902 (add, remove, replace, move, copy, test). */
export function jsonPatch(target: unknown, patch: unknown): unknown {
  if (!Array.isArray(patch)) {
    // jsonpatch.DecodePatch failing is a plain 400 in the apiserver.
    throw badRequest(
      `json: cannot unmarshal ${isRecord(patch) ? 'object' : typeof patch} into Go value of type jsonpatch.Patch`,
    );
  }
  let doc = clone(target);
  try {
    for (const op of patch) {
      if (!isRecord(op) || typeof op.op !== 'string' || typeof op.path !== 'string') {
        throw new Error(`invalid operation ${JSON.stringify(op)}`);
      }
      const { path } = op;
      switch (op.op) {
        case 'add':
          doc = add(doc, path, op.value);
          break;
        case 'remove':
          doc = remove(doc, path);
          break;
        case 'replace':
          getAt(doc, path);
          doc = add(remove(doc, path), path, op.value);
          break;
        case 'move': {
          const v = getAt(doc, String(op.from));
          doc = add(remove(doc, String(op.from)), path, v);
          break;
        }
        case 'copy':
          doc = add(doc, path, getAt(doc, String(op.from)));
          break;
        case 'test':
          if (!jsonEqual(getAt(doc, path), op.value)) throw new Error(`testing value ${path} failed: test failed`);
          break;
        default:
          throw new Error(`Unexpected kind: ${op.op}`);
      }
    }
  } catch (e) {
    if (e instanceof Error && !('body' in e)) throw patchFailed(patch, e.message);
    throw e;
  }
  return doc;
}

export const PATCH_TYPES = [
  'application/json-patch+json',
  'application/merge-patch+json',
  'application/strategic-merge-patch+json',
] as const;

/**
 * The patchMergeKey of the built-in lists a client patches (core/v1, batch/v1, meta/v1 struct tags). Keyed by field
 * name: in the kinds this server serves, each of these names means the same list everywhere.
 */
const MERGE_KEYS: Record<string, string> = {
  containers: 'name',
  initContainers: 'name',
  ephemeralContainers: 'name',
  env: 'name',
  volumes: 'name',
  volumeMounts: 'mountPath',
  imagePullSecrets: 'name',
  ports: 'containerPort',
  ownerReferences: 'uid',
  conditions: 'type',
  hostAliases: 'ip',
  topologySpreadConstraints: 'topologyKey',
};
/** Lists of scalars with patchStrategy merge: merged as sets. */
const SET_LISTS = new Set(['finalizers']);

/**
 * Strategic merge patch for built-in kinds: maps merge as in RFC 7386, lists with a merge key merge item by item
 * (`$patch: delete` removes one, `$patch: replace` replaces the list), `finalizers` merge as a set, `$retainKeys`
 * and `$setElementOrder` directives are accepted and ignored, every other list is replaced.
 */
export function strategicMergePatch(target: unknown, patch: unknown): unknown {
  if (!isRecord(patch)) return clone(patch);
  if (patch.$patch === 'replace') {
    const { $patch: _p, ...rest } = patch;
    return clone(rest);
  }
  if (patch.$patch === 'delete') return undefined;
  const out: Record<string, unknown> = isRecord(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (
      k === '$patch' ||
      k === '$retainKeys' ||
      k.startsWith('$setElementOrder/') ||
      k.startsWith('$deleteFromPrimitiveList/')
    ) {
      if (k.startsWith('$deleteFromPrimitiveList/') && Array.isArray(v)) {
        const f = k.slice('$deleteFromPrimitiveList/'.length);
        if (Array.isArray(out[f])) out[f] = (out[f] as unknown[]).filter((x) => !v.some((d) => jsonEqual(d, x)));
      }
      continue;
    }
    if (v === null) {
      delete out[k];
      continue;
    }
    const key = MERGE_KEYS[k];
    if (Array.isArray(v) && key && Array.isArray(out[k])) out[k] = mergeList(out[k] as unknown[], v, key);
    else if (Array.isArray(v) && SET_LISTS.has(k) && Array.isArray(out[k])) {
      const cur = out[k] as unknown[];
      out[k] = [...cur, ...v.filter((x) => !cur.some((c) => jsonEqual(c, x)))];
    } else if (Array.isArray(v)) out[k] = clone(v.filter((x) => !(isRecord(x) && x.$patch === 'delete')));
    else {
      const merged = strategicMergePatch(out[k], v);
      if (merged === undefined) delete out[k];
      else out[k] = merged;
    }
  }
  return out;
}

function mergeList(cur: unknown[], patch: unknown[], key: string): unknown[] {
  if (patch.some((p) => isRecord(p) && p.$patch === 'replace' && Object.keys(p).length === 1)) {
    return clone(patch.filter((p) => !(isRecord(p) && p.$patch === 'replace')));
  }
  const out = [...cur];
  for (const p of patch) {
    if (!isRecord(p) || p[key] === undefined) {
      throw badRequest(`map: ${JSON.stringify(p)} does not contain declared merge key: ${key}`);
    }
    const i = out.findIndex((c) => isRecord(c) && jsonEqual(c[key], p[key]));
    if (p.$patch === 'delete') {
      if (i >= 0) out.splice(i, 1);
    } else if (i >= 0) out[i] = strategicMergePatch(out[i], p);
    else out.push(strategicMergePatch(undefined, p));
  }
  return out;
}

/** `strategic`: whether the kind has Go structs to merge by (built-in kinds); custom resources refuse it with 415. */
export function applyPatch(contentType: string, target: unknown, patch: unknown, strategic = true): unknown {
  const ct = contentType.split(';')[0]?.trim() ?? '';
  if (ct === 'application/json-patch+json') return jsonPatch(target, patch);
  const isStrategic = ct === 'application/strategic-merge-patch+json';
  if (ct === 'application/merge-patch+json' || (isStrategic && strategic)) {
    if (!isRecord(patch))
      throw badRequest('json: cannot unmarshal array into Go value of type map[string]interface {}');
    return isStrategic ? strategicMergePatch(target, patch) : mergePatch(target, patch);
  }
  const accepted = strategic ? PATCH_TYPES : PATCH_TYPES.filter((t) => t !== 'application/strategic-merge-patch+json');
  throw failure(
    415,
    'UnsupportedMediaType',
    `the body of the request was in an unknown format - accepted media types include: ${accepted.join(', ')}, application/apply-patch+yaml`,
  );
}
