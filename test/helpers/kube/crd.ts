/**
 * CustomResourceDefinitions (apiextensions.k8s.io/v1): a custom resource is served only once a CRD declares its
 * group, plural and version, as apiextensions-apiserver does; anything else is the mux's plain `404 page not found`.
 * Objects of a CRD are pruned by its structural schema (unknown fields dropped with a Warning, or refused under
 * fieldValidation=Strict). Not modelled: CEL validation rules, defaults from the schema, conversion webhooks, type
 * checks against the schema, and the `customresourcecleanup` finalizer (deleting a CRD removes its objects at once).
 */
import type { Cluster } from './cluster.js';
import type { ResourceInfo } from './store.js';
import { badRequest, invalid, isRecord, rfc3339, type FieldError, type KObject } from './types.js';
import { warning, type FieldValidation } from './decode.js';

interface CrdVersion {
  name: string;
  served: boolean;
  storage: boolean;
  schema?: { openAPIV3Schema?: Schema };
  subresources?: { status?: unknown };
}
interface CrdSpec {
  group: string;
  names: { plural: string; kind: string; singular?: string; listKind?: string };
  scope: 'Namespaced' | 'Cluster';
  versions: CrdVersion[];
}
type Schema = Record<string, unknown>;

/** Validates a CRD being created (the subset of ValidateCustomResourceDefinition a test can get wrong). */
export function prepareCrd(o: KObject): void {
  const name = o.metadata.name ?? '';
  const spec = o.spec as CrdSpec | undefined;
  const errs: FieldError[] = [];
  if (!isRecord(spec)) errs.push({ field: 'spec', type: 'Required' });
  else {
    const expected = `${spec.names?.plural}.${spec.group}`;
    if (name !== expected) {
      errs.push({
        field: 'metadata.name',
        type: 'Invalid',
        value: name,
        detail: 'must be spec.names.plural+"."+spec.group',
      });
    }
    if (!spec.names?.kind) errs.push({ field: 'spec.names.kind', type: 'Required' });
    if (spec.scope !== 'Namespaced' && spec.scope !== 'Cluster') {
      errs.push({
        field: 'spec.scope',
        type: 'NotSupported',
        value: spec.scope,
        detail: 'supported values: "Cluster", "Namespaced"',
      });
    }
    const versions = Array.isArray(spec.versions) ? spec.versions : [];
    if (!versions.length)
      errs.push({
        field: 'spec.versions',
        type: 'Invalid',
        value: [],
        detail: 'must have exactly one version marked as storage version',
      });
    else if (versions.filter((v) => v.storage).length !== 1) {
      errs.push({
        field: 'spec.versions',
        type: 'Invalid',
        value: versions,
        detail: 'must have exactly one version marked as storage version',
      });
    }
    versions.forEach((v, i) => {
      if (!v.schema?.openAPIV3Schema) {
        errs.push({
          field: `spec.versions[${i}].schema.openAPIV3Schema`,
          type: 'Required',
          detail: 'schemas are required',
        });
      }
    });
  }
  if (errs.length) throw invalid('CustomResourceDefinition', 'apiextensions.k8s.io', name, errs);
  const s = spec as CrdSpec;
  s.names.singular ??= s.names.kind.toLowerCase();
  s.names.listKind ??= `${s.names.kind}List`;
  // The establishing controller's verdict, at once.
  const now = rfc3339();
  o.status = {
    acceptedNames: s.names,
    storedVersions: s.versions.filter((v) => v.storage).map((v) => v.name),
    conditions: [
      {
        type: 'NamesAccepted',
        status: 'True',
        reason: 'NoConflicts',
        message: 'no conflicts found',
        lastTransitionTime: now,
      },
      {
        type: 'Established',
        status: 'True',
        reason: 'InitialNamesAccepted',
        message: 'the initial names have been accepted',
        lastTransitionTime: now,
      },
    ],
  };
}

/** The served resource a stored CRD declares. */
export function infoOfCrd(o: KObject): ResourceInfo {
  const spec = o.spec as CrdSpec;
  const served = spec.versions.filter((v) => v.served);
  const storage = spec.versions.find((v) => v.storage) ?? spec.versions[0];
  return {
    group: spec.group,
    version: storage?.name ?? 'v1',
    versions: served.map((v) => v.name),
    plural: spec.names.plural,
    kind: spec.names.kind,
    namespaced: spec.scope === 'Namespaced',
    builtin: false,
    statusSubresource: spec.versions.some((v) => v.subresources?.status !== undefined),
    hasGeneration: true,
    schemas: Object.fromEntries(spec.versions.map((v) => [v.name, v.schema?.openAPIV3Schema ?? {}])),
  };
}

/** Keeps the served custom resources in step with the stored CRDs. */
export function watchCrds(cluster: Cluster): () => void {
  return cluster.store.subscribe((e) => {
    if (e.resource !== 'customresourcedefinitions.apiextensions.k8s.io') return;
    const info = infoOfCrd(e.obj);
    if (e.type === 'ADDED') cluster.store.register(info);
    else if (e.type === 'DELETED') cluster.store.unregister(info);
  });
}

/** A minimal CRD for `{group, version, plural, kind}`: any spec and status preserved, status subresource on. */
export function minimalCrd(r: {
  group: string;
  version: string;
  plural: string;
  kind: string;
  namespaced?: boolean;
}): KObject {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${r.plural}.${r.group}` },
    spec: {
      group: r.group,
      names: { plural: r.plural, kind: r.kind },
      scope: r.namespaced === false ? 'Cluster' : 'Namespaced',
      versions: [
        {
          name: r.version,
          served: true,
          storage: true,
          subresources: { status: {} },
          schema: { openAPIV3Schema: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true } },
        },
      ],
    },
  };
}

/**
 * Structural pruning of a custom object (apiextensions' pruning.Prune): fields its schema does not declare are
 * dropped unless a schema node says x-kubernetes-preserve-unknown-fields. Returns the Warning header values.
 */
export function pruneCustom(info: ResourceInfo, version: string, obj: KObject, fv: FieldValidation): string[] {
  const schema = info.schemas?.[version];
  if (!isRecord(schema)) return [];
  const unknown: string[] = [];
  for (const k of Object.keys(obj)) {
    if (k === 'apiVersion' || k === 'kind' || k === 'metadata') continue;
    const props = isRecord(schema.properties) ? schema.properties : undefined;
    if (props?.[k] !== undefined) prune(obj[k], props[k] as Schema, k, unknown);
    else if (schema['x-kubernetes-preserve-unknown-fields'] !== true) {
      unknown.push(k);
      delete obj[k];
    }
  }
  if (fv === 'Strict' && unknown.length) {
    throw badRequest(`strict decoding error: ${unknown.map((u) => `unknown field "${u}"`).join(', ')}`);
  }
  return fv === 'Warn' ? unknown.map((u) => warning(`unknown field "${u}"`)) : [];
}

function prune(value: unknown, schema: Schema, path: string, out: string[]): void {
  if (!isRecord(schema) || value === null || value === undefined) return;
  if (Array.isArray(value)) {
    if (isRecord(schema.items)) value.forEach((v, i) => prune(v, schema.items as Schema, `${path}[${i}]`, out));
    return;
  }
  if (!isRecord(value)) return;
  if (schema['x-kubernetes-embedded-resource'] === true) return;
  const props = isRecord(schema.properties) ? schema.properties : undefined;
  const additional = isRecord(schema.additionalProperties) ? (schema.additionalProperties as Schema) : undefined;
  const preserve = schema['x-kubernetes-preserve-unknown-fields'] === true;
  for (const k of Object.keys(value)) {
    const p = `${path}.${k}`;
    if (props?.[k] !== undefined) prune(value[k], props[k] as Schema, p, out);
    else if (additional) prune(value[k], additional, `${path}[${k}]`, out);
    else if (!preserve && (props || schema.type === 'object')) {
      out.push(p);
      delete value[k];
    }
  }
}
