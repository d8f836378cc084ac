import { badRequest, clone, failure, isRecord, jsonEqual, type KubeError } from './types.js';

/** RFC 7386. Strategic merge patch is treated the same: lists are replaced, not merged by key. */
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

export function applyPatch(contentType: string, target: unknown, patch: unknown): unknown {
  const ct = contentType.split(';')[0]?.trim() ?? '';
  if (ct === 'application/json-patch+json') return jsonPatch(target, patch);
  if (ct === 'application/merge-patch+json' || ct === 'application/strategic-merge-patch+json') {
    if (!isRecord(patch))
      throw badRequest('json: cannot unmarshal array into Go value of type map[string]interface {}');
    return mergePatch(target, patch);
  }
  throw failure(
    415,
    'UnsupportedMediaType',
    `the body of the request was in an unknown format - accepted media types include: ${PATCH_TYPES.join(', ')}, application/apply-patch+yaml`,
  );
}
