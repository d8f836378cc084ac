/**
 * The apiserver's request decoding, before any registry sees an object: Go's JSON decoder (case-sensitive field
 * names, type errors as 400 `json: cannot unmarshal ...`), unknown fields dropped with a `Warning` (the default
 * fieldValidation=Warn) or refused (Strict), Secret `data` base64-decoded, and the object checked against the
 * official OpenAPI schemas (`kubernetes-models`) before the hand-written validation of validation.ts.
 */
import * as k8s from '@kubernetes/client-node';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Event } from 'kubernetes-models/v1/Event';
import { Namespace } from 'kubernetes-models/v1/Namespace';
import { Node } from 'kubernetes-models/v1/Node';
import { Pod } from 'kubernetes-models/v1/Pod';
import { Secret } from 'kubernetes-models/v1/Secret';
import { Job } from 'kubernetes-models/batch/v1/Job';
import { CustomResourceDefinition } from 'kubernetes-models/apiextensions.k8s.io/v1/CustomResourceDefinition';
import { badRequest, failure, isRecord, type FieldError, type KObject } from './types.js';

/** strconv.ParseBool, which the apiserver's query decoding uses (`watch=True`, `follow=1`, `T` ...). */
export function goBool(name: string, v: string | undefined): boolean {
  if (v === undefined || v === '') return false;
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(v)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(v)) return false;
  throw badRequest(`strconv.ParseBool: parsing ${JSON.stringify(v)}: invalid syntax (query parameter ${name})`);
}

export type FieldValidation = 'Ignore' | 'Warn' | 'Strict';

export function fieldValidationOf(q: Record<string, string>): FieldValidation {
  const v = q.fieldValidation ?? '';
  if (v === '') return 'Warn';
  if (v === 'Ignore' || v === 'Warn' || v === 'Strict') return v;
  throw failure(
    400,
    'BadRequest',
    `fieldValidation parameter unsupported: "${v}": supported values: "Ignore", "Strict", "Warn"`,
  );
}

interface Attr {
  baseName: string;
  type: string;
}

/** client-node's generated models carry each field's JSON name and type: the Go structs, as far as decoding goes. */
function attrsOf(type: string): Attr[] | undefined {
  const c = (k8s as unknown as Record<string, { getAttributeTypeMap?: () => Attr[] }>)[type];
  return typeof c?.getAttributeTypeMap === 'function' ? c.getAttributeTypeMap() : undefined;
}

const arrayOf = (t: string) => /^Array<(.+)>$/.exec(t)?.[1];
const mapOf = (t: string) => /^\{ \[key: string\]: (.+); \}$/.exec(t)?.[1];

/**
 * Drops (and reports) fields the model does not have, as the decoder does for fieldValidation=Warn/Ignore.
 * Paths are worded as kube-apiserver words them: `spec.template.spec.containers[0].bogusField`.
 */
function pruneUnknown(value: unknown, type: string, path: string, out: string[]): void {
  if (value === null || value === undefined) return;
  const el = arrayOf(type);
  if (el) {
    if (Array.isArray(value)) value.forEach((v, i) => pruneUnknown(v, el, `${path}[${i}]`, out));
    return;
  }
  const mv = mapOf(type);
  if (mv) {
    if (isRecord(value)) for (const [k, v] of Object.entries(value)) pruneUnknown(v, mv, `${path}[${k}]`, out);
    return;
  }
  // The schema of a CRD is free-form JSON here; CRs are pruned by their own schema (crd.ts).
  if (type === 'V1JSONSchemaProps') return;
  const attrs = attrsOf(type);
  if (!attrs || !isRecord(value)) return;
  const known = new Map(attrs.map((a) => [a.baseName, a.type]));
  for (const k of Object.keys(value)) {
    const t = known.get(k);
    const p = path ? `${path}.${k}` : k;
    if (t === undefined) {
      out.push(p);
      delete value[k];
    } else pruneUnknown(value[k], t, p, out);
  }
}

/** The Go type name a client-node type stands for, as `json: cannot unmarshal` words it. */
function goType(t: string, format: string): string {
  const el = arrayOf(t);
  if (el) return `[]${goType(el, '')}`;
  const mv = mapOf(t);
  if (mv) return `map[string]${goType(mv, '')}`;
  if (t === 'number') return format === 'int32' ? 'int32' : format === 'double' ? 'float64' : 'int64';
  if (t === 'boolean') return 'bool';
  if (t === 'string') return format === 'byte' ? '[]uint8' : 'string';
  if (t === 'Date') return 'v1.Time';
  if (t === 'IntOrString') return 'intstr.IntOrString';
  if (t === 'any') return 'interface {}';
  return `v1.${t.replace(/^[A-Za-z]*?V\d+(?:alpha\d+|beta\d+)?(?=[A-Z])/, '')}`;
}

/** Go's wording of the JSON value that did not fit (`number 1.5` for a fraction where an integer goes). */
function jsonKind(v: unknown): string {
  if (typeof v === 'number') return Number.isInteger(v) ? 'number' : `number ${v}`;
  if (typeof v === 'boolean') return 'bool';
  if (typeof v === 'string') return 'string';
  return Array.isArray(v) ? 'array' : 'object';
}

/** `json: cannot unmarshal string into Go struct field JobSpec.spec.backoffLimit of type int32`. */
function unmarshalError(rootType: string, body: unknown, pointer: string): string {
  const segs = pointer.split('/').slice(1);
  let type = rootType;
  let format = '';
  let struct = rootType;
  const fields: string[] = [];
  let v: unknown = body;
  for (const s of segs) {
    v = isRecord(v) ? v[s] : Array.isArray(v) ? v[Number(s)] : undefined;
    const el = arrayOf(type) ?? mapOf(type);
    if (el) {
      type = el;
      format = '';
      continue;
    }
    const a = attrsOf(type)?.find((x) => x.baseName === s) as (Attr & { format?: string }) | undefined;
    if (!a) break;
    struct = type;
    fields.push(s);
    type = a.type;
    format = a.format ?? '';
  }
  const structName = goType(struct, '').replace(/^v1\./, '');
  return `json: cannot unmarshal ${jsonKind(v)} into Go struct field ${structName}.${fields.join('.')} of type ${goType(type, format)}`;
}

interface SchemaError {
  instancePath: string;
  keyword: string;
  message?: string;
  params?: Record<string, unknown>;
}

type Model = new (o: unknown) => { validate(): void };
const MODELS: Record<string, { model: Model; type: string }> = {
  'v1/Pod': { model: Pod as unknown as Model, type: 'V1Pod' },
  'v1/Secret': { model: Secret as unknown as Model, type: 'V1Secret' },
  'v1/ConfigMap': { model: ConfigMap as unknown as Model, type: 'V1ConfigMap' },
  'v1/Event': { model: Event as unknown as Model, type: 'CoreV1Event' },
  'v1/Namespace': { model: Namespace as unknown as Model, type: 'V1Namespace' },
  'v1/Node': { model: Node as unknown as Model, type: 'V1Node' },
  'batch/v1/Job': { model: Job as unknown as Model, type: 'V1Job' },
  'apiextensions.k8s.io/v1/CustomResourceDefinition': {
    model: CustomResourceDefinition as unknown as Model,
    type: 'V1CustomResourceDefinition',
  },
};

function schemaErrors(model: Model, obj: unknown): SchemaError[] {
  try {
    new model(obj).validate();
    return [];
  } catch (e) {
    const errs = (e as { errors?: SchemaError[] }).errors;
    if (!Array.isArray(errs)) throw e;
    return errs;
  }
}

/**
 * Decodes a created or replaced built-in object in place. Throws the apiserver's 400 for a value of the wrong JSON
 * type, invalid base64 in a Secret's data, or (under fieldValidation=Strict) an unknown field.
 */
export function decodeBuiltin(apiVersion: string, kind: string, obj: KObject, fv: FieldValidation): string[] {
  const entry = MODELS[`${apiVersion}/${kind}`];
  if (!entry) return [];
  const cannot = (why: string) =>
    badRequest(`${kind} in version "${apiVersion.split('/').pop()}" cannot be handled as a ${kind}: ${why}`);
  const unknown: string[] = [];
  pruneUnknown(obj, entry.type, '', unknown);
  if (fv === 'Strict' && unknown.length) {
    throw cannot(`strict decoding error: ${unknown.map((u) => `unknown field "${u}"`).join(', ')}`);
  }
  const errs = schemaErrors(entry.model, obj);
  // A wrong JSON type is the decoder's error (400), found before any validation (422) runs; so is a quantity that
  // does not parse (resource.Quantity's UnmarshalJSON).
  const quantity = errs.find((e) => e.params?.format === 'quantity');
  if (quantity) throw cannot(QUANTITY_ERROR);
  // []byte fields (Secret data) are base64 strings: a string that does not decode is the base64 error below.
  const typeErr = errs.find(
    (e) => isTypeError(e) && !(e.params?.format === 'byte' && typeof valueAt(obj, e.instancePath) === 'string'),
  );
  if (typeErr) throw cannot(unmarshalError(entry.type, obj, typeErr.instancePath));
  if (kind === 'Secret' && isRecord(obj.data)) {
    for (const v of Object.values(obj.data)) {
      const bad = typeof v === 'string' ? base64Error(v) : undefined;
      if (bad !== undefined) throw cannot(`illegal base64 data at input byte ${bad}`);
    }
  }
  return fv === 'Warn' ? unknown.map((u) => warning(`unknown field "${u}"`)) : [];
}

const QUANTITY_ERROR = "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";
const isTypeError = (e: SchemaError) => e.keyword === 'type' || e.keyword === 'oneOf' || e.keyword === 'format';

/**
 * What the official schemas still find in an object after decoding, defaulting and the hand-written validation
 * (validation.ts words the common cases as the apiserver does): 422 causes. Run on the defaulted object, as the
 * schemas' `required` does not know about defaults.
 */
export function schemaInvalid(apiVersion: string, kind: string, obj: KObject): FieldError[] {
  const entry = MODELS[`${apiVersion}/${kind}`];
  if (!entry) return [];
  return schemaErrors(entry.model, obj)
    .filter((e) => !isTypeError(e))
    .map((e) => ({
      field: e.instancePath
        .slice(1)
        .replace(/\/(\d+)(?=\/|$)/g, '[$1]')
        .replace(/\//g, '.'),
      type: e.keyword === 'required' ? 'Required' : e.keyword === 'enum' ? 'NotSupported' : 'Invalid',
      detail: e.message ?? e.keyword,
      ...(e.keyword === 'required' ? {} : { value: valueAt(obj, e.instancePath) }),
    }));
}

function valueAt(obj: unknown, pointer: string): unknown {
  let v = obj;
  for (const s of pointer.split('/').slice(1)) v = isRecord(v) ? v[s] : Array.isArray(v) ? v[Number(s)] : undefined;
  return v;
}

/** An RFC 7234 Warning header value as the apiserver sends it (code 299, agent "-"). */
export const warning = (text: string): string => `299 - ${JSON.stringify(text)}`;

/**
 * Where Go's base64.StdEncoding.DecodeString fails (the byte offset it reports), or undefined when the text
 * decodes. Newlines are skipped as Go skips them; padding is required.
 */
export function base64Error(s: string): number | undefined {
  const alphabet = /[A-Za-z0-9+/]/;
  let quantum = 0;
  let quantumStart = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s[i] as string;
    if (c === '\n' || c === '\r') continue;
    if (quantum === 0) quantumStart = i;
    if (alphabet.test(c)) {
      quantum = (quantum + 1) % 4;
      continue;
    }
    if (c !== '=' || quantum < 2) return i;
    // Padding: "xx==" or "xxx=", then nothing but newlines.
    let j = i + 1;
    if (quantum === 2) {
      while (s[j] === '\n' || s[j] === '\r') j++;
      if (s[j] !== '=') return j >= s.length ? quantumStart : j;
      j++;
    }
    for (; j < s.length; j++) if (s[j] !== '\n' && s[j] !== '\r') return j;
    return undefined;
  }
  return quantum === 0 ? undefined : quantumStart;
}
