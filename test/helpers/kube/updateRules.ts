/**
 * The registry's rules for a write to an existing object (what an update may change, per kind) and the reading of
 * DeleteOptions from a DELETE's query and body.
 */
import { JOB, POD, SECRET } from './cluster.js';
import type { DeleteOptions, Propagation, ResourceInfo } from './store.js';
import {
  clone,
  invalid,
  isRecord,
  jsonEqual,
  text,
  type FieldError,
  type Job,
  type KObject,
  type Pod,
} from './types.js';
import { metadataErrors, prepareSecret } from './validation.js';

/** A write's result from the current object and the proposed one: main resource or /status. */
export function applyUpdateRules(
  info: ResourceInfo,
  cur: KObject,
  proposed: KObject,
  target: 'main' | 'status',
): KObject {
  if (target === 'status') {
    // ResetObjectMetaForStatus: a status write changes nothing but status.
    const next = clone(cur);
    next.status = clone(proposed.status);
    return next;
  }
  const next = clone(proposed);
  next.apiVersion = cur.apiVersion;
  next.kind = cur.kind;
  const m = (next.metadata = isRecord(next.metadata) ? next.metadata : {});
  for (const k of [
    'name',
    'namespace',
    'uid',
    'creationTimestamp',
    'generation',
    'deletionTimestamp',
    'deletionGracePeriodSeconds',
  ] as const) {
    if (cur.metadata[k] === undefined) delete m[k];
    else (m as Record<string, unknown>)[k] = cur.metadata[k];
  }
  const name = cur.metadata.name ?? '';
  const metaErrs = metadataErrors(next);
  if (metaErrs.length) throw invalid(info.kind, info.group, name, metaErrs);
  if (info.statusSubresource) next.status = clone(cur.status);
  if (info === POD) {
    const neutral = (o: KObject) => {
      const s = clone((o as Pod).spec);
      for (const c of [...(s.containers ?? []), ...(s.initContainers ?? [])]) delete c.image;
      delete s.activeDeadlineSeconds;
      delete s.tolerations;
      return s;
    };
    if (!jsonEqual(neutral(next), neutral(cur))) {
      throw invalid('Pod', '', name, [
        {
          field: 'spec',
          type: 'Forbidden',
          detail:
            'pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)',
        },
      ]);
    }
  }
  if (info === JOB) {
    const a = (cur as Job).spec;
    const b = (next as Job).spec;
    const errs: FieldError[] = [];
    const neverStarted = a.suspend === true && !(cur as Job).status?.startTime;
    if (!jsonEqual(a.template, b?.template) && !neverStarted) {
      errs.push({ field: 'spec.template', type: 'Invalid', value: b?.template, detail: 'field is immutable' });
    }
    if (!jsonEqual(a.selector, b?.selector)) {
      errs.push({ field: 'spec.selector', type: 'Invalid', value: b?.selector, detail: 'field is immutable' });
    }
    if (a.completions !== b?.completions) {
      errs.push({ field: 'spec.completions', type: 'Invalid', value: b?.completions, detail: 'field is immutable' });
    }
    if (errs.length) throw invalid('Job', 'batch', name, errs);
  }
  if (info === SECRET && isRecord(next.stringData)) prepareSecret(next);
  return next;
}

export function deleteOptions(q: Record<string, string>, body: unknown): DeleteOptions & { dryRun?: boolean } {
  const src: Record<string, unknown> = { ...q };
  if (isRecord(body)) Object.assign(src, body);
  const opts: DeleteOptions & { dryRun?: boolean } = {};
  const policy =
    src.propagationPolicy ??
    (src.orphanDependents === true || src.orphanDependents === 'true'
      ? 'Orphan'
      : src.orphanDependents === false || src.orphanDependents === 'false'
        ? 'Background'
        : undefined);
  if (policy !== undefined) {
    if (!['Foreground', 'Background', 'Orphan'].includes(text(policy))) {
      throw invalid('DeleteOptions', '', '', [
        {
          field: 'propagationPolicy',
          type: 'NotSupported',
          value: policy,
          detail: 'supported values: "Foreground", "Background", "Orphan"',
        },
      ]);
    }
    opts.propagationPolicy = policy as Propagation;
  }
  if (src.gracePeriodSeconds !== undefined && src.gracePeriodSeconds !== '') {
    opts.gracePeriodSeconds = Number(src.gracePeriodSeconds);
  }
  if (isRecord(src.preconditions)) opts.preconditions = src.preconditions as DeleteOptions['preconditions'];
  if (src.dryRun === 'All' || (Array.isArray(src.dryRun) && src.dryRun.includes('All'))) opts.dryRun = true;
  return opts;
}
