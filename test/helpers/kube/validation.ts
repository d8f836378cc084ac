import type { V1Container, V1EnvVar, V1PodSpec, V1Volume } from '@kubernetes/client-node';
import { matchesLabelSelectorObject, parseQuantity } from './selectors.js';
import { invalid, isRecord, type FieldError, type Job, type KObject, type Pod } from './types.js';

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

export function subdomainErrors(field: string, value: string): FieldError[] {
  if (value.length > 253) return [{ field, type: 'TooLong', detail: 'must have at most 253 bytes', value }];
  if (DNS1123_SUBDOMAIN.test(value)) return [];
  return [
    {
      field,
      type: 'Invalid',
      value,
      detail:
        "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
    },
  ];
}

function labelNameErrors(field: string, value: string): FieldError[] {
  if (DNS1123_LABEL.test(value) && value.length <= 63) return [];
  return [
    {
      field,
      type: 'Invalid',
      value,
      detail:
        "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
    },
  ];
}

/** Label values: at most 63 chars of [A-Za-z0-9_.-], alphanumeric at both ends. */
function labelErrors(field: string, labels: unknown): FieldError[] {
  if (labels === undefined || labels === null) return [];
  if (!isRecord(labels)) return [{ field, type: 'Invalid', value: labels, detail: 'must be a map' }];
  const errs: FieldError[] = [];
  for (const [k, v] of Object.entries(labels)) {
    if (typeof v !== 'string' || v.length > 63 || !/^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/.test(v)) {
      errs.push({
        field,
        type: 'Invalid',
        value: v,
        detail:
          "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')",
      });
    }
    if (
      !/^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/.test(
        k,
      )
    ) {
      errs.push({ field, type: 'Invalid', value: k, detail: 'name part must consist of alphanumeric characters' });
    }
  }
  return errs;
}

export function metadataErrors(o: KObject): FieldError[] {
  return [
    ...labelErrors('metadata.labels', o.metadata.labels),
    ...(o.metadata.annotations !== undefined && !isRecord(o.metadata.annotations)
      ? [{ field: 'metadata.annotations', type: 'Invalid' as const, value: o.metadata.annotations }]
      : []),
  ];
}

/** Always for `:latest` or an untagged image, IfNotPresent otherwise (digests included). */
function imagePullPolicyFor(image: string | undefined): string {
  if (!image || image.includes('@')) return 'IfNotPresent';
  const last = image.split('/').pop() ?? image;
  const tag = last.includes(':') ? last.slice(last.indexOf(':') + 1) : undefined;
  return !tag || tag === 'latest' ? 'Always' : 'IfNotPresent';
}

function defaultContainer(c: V1Container): void {
  c.imagePullPolicy ??= imagePullPolicyFor(c.image);
  c.terminationMessagePath ??= '/dev/termination-log';
  c.terminationMessagePolicy ??= 'File';
  c.resources ??= {};
  // Requests default to limits (core/v1 SetDefaults_Pod).
  if (c.resources.limits) {
    c.resources.requests ??= {};
    for (const [k, v] of Object.entries(c.resources.limits)) c.resources.requests[k] ??= v;
  }
}

/** The defaulting the apiserver applies to every pod spec (SetDefaults_PodSpec and friends), subset. */
export function defaultPodSpec(spec: V1PodSpec): void {
  spec.restartPolicy ??= 'Always';
  spec.terminationGracePeriodSeconds ??= 30;
  spec.dnsPolicy ??= 'ClusterFirst';
  spec.schedulerName ??= 'default-scheduler';
  spec.securityContext ??= {};
  spec.serviceAccountName ??= spec.serviceAccount ?? 'default';
  spec.serviceAccount = spec.serviceAccountName;
  spec.enableServiceLinks ??= true;
  for (const c of spec.containers ?? []) defaultContainer(c);
  for (const c of spec.initContainers ?? []) defaultContainer(c);
  for (const v of spec.volumes ?? []) {
    if (v.secret) v.secret.defaultMode ??= 0o644;
    if (v.configMap) v.configMap.defaultMode ??= 0o644;
  }
}

/** What DefaultTolerationSeconds admission and priority admission add to every created pod. */
export function admitPod(spec: V1PodSpec): void {
  spec.priority ??= 0;
  spec.preemptionPolicy ??= 'PreemptLowerPriority';
  const tolerations = (spec.tolerations ??= []);
  for (const key of ['node.kubernetes.io/not-ready', 'node.kubernetes.io/unreachable']) {
    if (!tolerations.some((t) => t.key === key)) {
      tolerations.push({ key, operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300 });
    }
  }
}

export function qosClass(spec: V1PodSpec): string {
  const all = [...(spec.containers ?? []), ...(spec.initContainers ?? [])];
  let any = false;
  let guaranteed = true;
  for (const c of all) {
    const req = c.resources?.requests ?? {};
    const lim = c.resources?.limits ?? {};
    if (Object.keys(req).length || Object.keys(lim).length) any = true;
    for (const r of ['cpu', 'memory']) {
      if (lim[r] === undefined || parseQuantity(req[r] ?? lim[r]) !== parseQuantity(lim[r])) guaranteed = false;
    }
  }
  return !any ? 'BestEffort' : guaranteed ? 'Guaranteed' : 'Burstable';
}

function containerErrors(list: V1Container[] | undefined, field: string, names: Set<string>, volumes: Set<string>) {
  const errs: FieldError[] = [];
  (list ?? []).forEach((c, i) => {
    const f = `${field}[${i}]`;
    if (!isRecord(c)) {
      errs.push({ field: f, type: 'Invalid', value: c });
      return;
    }
    if (!c.name) errs.push({ field: `${f}.name`, type: 'Required' });
    else {
      errs.push(...labelNameErrors(`${f}.name`, c.name));
      if (names.has(c.name)) errs.push({ field: `${f}.name`, type: 'Duplicate', value: c.name });
      names.add(c.name);
    }
    if (!c.image) errs.push({ field: `${f}.image`, type: 'Required' });
    if (c.imagePullPolicy && !['Always', 'IfNotPresent', 'Never'].includes(c.imagePullPolicy)) {
      errs.push({
        field: `${f}.imagePullPolicy`,
        type: 'NotSupported',
        value: c.imagePullPolicy,
        detail: 'supported values: "Always", "IfNotPresent", "Never"',
      });
    }
    (c.env ?? []).forEach((e, j) => {
      if (!e.name) errs.push({ field: `${f}.env[${j}].name`, type: 'Required' });
      errs.push(...envSourceErrors(e, `${f}.env[${j}]`));
    });
    const mountPaths = new Set<string>();
    (c.volumeMounts ?? []).forEach((m, j) => {
      if (!m.name) errs.push({ field: `${f}.volumeMounts[${j}].name`, type: 'Required' });
      else if (!volumes.has(m.name))
        errs.push({ field: `${f}.volumeMounts[${j}].name`, type: 'NotFound', value: m.name });
      if (!m.mountPath) errs.push({ field: `${f}.volumeMounts[${j}].mountPath`, type: 'Required' });
      else if (mountPaths.has(m.mountPath))
        errs.push({
          field: `${f}.volumeMounts[${j}].mountPath`,
          type: 'Invalid',
          value: m.mountPath,
          detail: 'must be unique',
        });
      else mountPaths.add(m.mountPath);
    });
    for (const kind of ['limits', 'requests'] as const) {
      for (const [k, v] of Object.entries(c.resources?.[kind] ?? {})) {
        if (Number.isNaN(parseQuantity(v))) {
          errs.push({
            field: `${f}.resources.${kind}[${k}]`,
            type: 'Invalid',
            value: v,
            detail: "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
          });
        }
      }
    }
  });
  return errs;
}

/**
 * An env var's source, as ValidateEnv checks it: `value` and `valueFrom` exclusive, exactly one source under
 * `valueFrom`, and a key reference naming both its object and its key.
 */
function envSourceErrors(e: V1EnvVar, field: string): FieldError[] {
  const from = e.valueFrom;
  if (!from) return [];
  const errs: FieldError[] = [];
  if (e.value)
    errs.push({
      field: `${field}.valueFrom`,
      type: 'Invalid',
      value: '',
      detail: 'may not be specified when `value` is not empty',
    });
  const sources = (['fieldRef', 'resourceFieldRef', 'configMapKeyRef', 'secretKeyRef'] as const).filter((k) => from[k]);
  if (sources.length !== 1)
    errs.push({
      field: `${field}.valueFrom`,
      type: 'Invalid',
      value: '',
      detail: sources.length
        ? 'may not have more than one field specified at a time'
        : 'must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`',
    });
  for (const k of ['configMapKeyRef', 'secretKeyRef'] as const) {
    const ref = from[k];
    if (!ref) continue;
    if (!ref.key) errs.push({ field: `${field}.valueFrom.${k}.key`, type: 'Required' });
    if (!ref.name) errs.push({ field: `${field}.valueFrom.${k}.name`, type: 'Required' });
    else errs.push(...subdomainErrors(`${field}.valueFrom.${k}.name`, ref.name));
  }
  return errs;
}

/** Volume sources the runner uses, as ValidateVolumes checks them: exactly one source, names and quantities. */
function volumeErrors(v: V1Volume, field: string): FieldError[] {
  const errs: FieldError[] = [];
  const sources = Object.keys(v).filter(
    (k) => k !== 'name' && (v as unknown as Record<string, unknown>)[k] !== undefined,
  );
  if (sources.length === 0) errs.push({ field, type: 'Required', detail: 'must specify a volume type' });
  else if (sources.length > 1)
    errs.push({
      field: `${field}.${sources[1]}`,
      type: 'Forbidden',
      detail: 'may not specify more than 1 volume type',
    });
  const limit = v.emptyDir?.sizeLimit as unknown;
  if (limit !== undefined) {
    const n = typeof limit === 'string' || typeof limit === 'number' ? parseQuantity(String(limit)) : Number.NaN;
    if (Number.isNaN(n))
      errs.push({
        field: `${field}.emptyDir.sizeLimit`,
        type: 'Invalid',
        value: limit,
        detail: "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
      });
    else if (n < 0)
      errs.push({
        field: `${field}.emptyDir.sizeLimit`,
        type: 'Invalid',
        value: limit,
        detail: 'must be greater than or equal to 0',
      });
  }
  if (v.configMap && !v.configMap.name) errs.push({ field: `${field}.configMap.name`, type: 'Required' });
  if (v.secret && !v.secret.secretName) errs.push({ field: `${field}.secret.secretName`, type: 'Required' });
  for (const [k, mode] of [
    ['configMap', v.configMap?.defaultMode],
    ['secret', v.secret?.defaultMode],
  ] as const)
    if (mode !== undefined && (!Number.isInteger(mode) || mode < 0 || mode > 0o777))
      errs.push({
        field: `${field}.${k}.defaultMode`,
        type: 'Invalid',
        value: mode,
        detail: 'must be a number between 0 and 0777 (octal), both inclusive',
      });
  return errs;
}

export function podSpecErrors(spec: unknown, field: string, restartPolicies: string[]): FieldError[] {
  if (!isRecord(spec)) return [{ field, type: 'Required' }];
  const s = spec as unknown as V1PodSpec;
  const errs: FieldError[] = [];
  const volumes = new Set<string>();
  (s.volumes ?? []).forEach((v, i) => {
    if (!v.name) errs.push({ field: `${field}.volumes[${i}].name`, type: 'Required' });
    else if (volumes.has(v.name)) errs.push({ field: `${field}.volumes[${i}].name`, type: 'Duplicate', value: v.name });
    else volumes.add(v.name);
    errs.push(...volumeErrors(v, `${field}.volumes[${i}]`));
  });
  if (!Array.isArray(s.containers) || s.containers.length === 0) {
    errs.push({ field: `${field}.containers`, type: 'Required' });
  }
  const names = new Set<string>();
  errs.push(...containerErrors(s.initContainers, `${field}.initContainers`, names, volumes));
  errs.push(...containerErrors(s.containers, `${field}.containers`, names, volumes));
  const rp = s.restartPolicy;
  if (restartPolicies.length === 2 && (!rp || rp === 'Always')) {
    // Jobs: an omitted restartPolicy was already defaulted to Always, so both read as "required" (ValidateJobSpec).
    errs.push({ field: `${field}.restartPolicy`, type: 'Required', detail: 'valid values: "OnFailure", "Never"' });
  } else if (rp && !restartPolicies.includes(rp)) {
    errs.push({
      field: `${field}.restartPolicy`,
      type: 'NotSupported',
      value: rp,
      detail: `supported values: ${restartPolicies.map((p) => `"${p}"`).join(', ')}`,
    });
  }
  return errs;
}

/** Validates and defaults a pod about to be created (name already final). Throws 422 Invalid. */
export function preparePod(pod: Pod): void {
  const errs = [...metadataErrors(pod), ...podSpecErrors(pod.spec, 'spec', ['Always', 'OnFailure', 'Never'])];
  if (errs.length) throw invalid('Pod', '', pod.metadata.name ?? '', errs);
  defaultPodSpec(pod.spec);
  admitPod(pod.spec);
  pod.status = { phase: 'Pending', qosClass: qosClass(pod.spec) };
}

const CONTROLLER_UID = 'batch.kubernetes.io/controller-uid';
const JOB_NAME = 'batch.kubernetes.io/job-name';

/**
 * Defaults, generates the selector and validates a Job as its strategy does (uid already assigned). A client that
 * resubmits a Job read back from a cluster (stale selector or controller-uid labels) gets the real 422.
 */
export function prepareJob(job: Job): void {
  const name = job.metadata.name ?? '';
  const uid = job.metadata.uid as string;
  if (!isRecord(job.spec)) throw invalid('Job', 'batch', name, [{ field: 'spec.template', type: 'Required' }]);
  const spec = job.spec;
  const tmpl = spec.template as unknown;
  if (!isRecord(tmpl)) throw invalid('Job', 'batch', name, [{ field: 'spec.template', type: 'Required' }]);

  // SetDefaults_Job, then generateSelector (PrepareForCreate).
  const hadCounts = spec.parallelism !== undefined || spec.completions !== undefined;
  spec.parallelism ??= 1;
  if (!hadCounts) spec.completions = 1;
  spec.backoffLimit ??= 6;
  spec.completionMode ??= 'NonIndexed';
  spec.suspend ??= false;
  spec.podReplacementPolicy ??= spec.podFailurePolicy ? 'Failed' : 'TerminatingOrFailed';
  for (const rule of spec.podFailurePolicy?.rules ?? []) {
    for (const pc of rule.onPodConditions ?? []) pc.status ??= 'True';
  }
  const t = spec.template;
  t.metadata ??= {};
  const labels = (t.metadata.labels ??= {});
  if (!spec.manualSelector) {
    for (const k of [JOB_NAME, 'job-name']) labels[k] ??= name;
    for (const k of [CONTROLLER_UID, 'controller-uid']) labels[k] ??= uid;
    spec.selector ??= {};
    spec.selector.matchLabels ??= {};
    spec.selector.matchLabels[CONTROLLER_UID] ??= uid;
  }
  if (!job.metadata.labels || Object.keys(job.metadata.labels).length === 0) job.metadata.labels = { ...labels };
  if (isRecord(t.spec)) defaultPodSpec(t.spec as V1PodSpec);

  const errs: FieldError[] = [...metadataErrors(job)];
  if (!spec.manualSelector) {
    const expected: Record<string, string> = {
      'controller-uid': uid,
      'job-name': name,
      [CONTROLLER_UID]: uid,
      [JOB_NAME]: name,
    };
    for (const [k, v] of Object.entries(expected)) {
      if (labels[k] !== v) {
        errs.push({
          field: `spec.template.metadata.labels[${k}]`,
          type: 'Invalid',
          value: labels[k],
          detail: `must be '${v}'`,
        });
      }
    }
    if (!matchesLabelSelectorObject(spec.selector, expected)) {
      errs.push({
        field: 'spec.selector',
        type: 'Invalid',
        value: spec.selector,
        detail: '`selector` not auto-generated',
      });
    }
  }
  if (spec.selector && !matchesLabelSelectorObject(spec.selector, labels)) {
    errs.push({
      field: 'spec.template.metadata.labels',
      type: 'Invalid',
      value: labels,
      detail: '`selector` does not match template `labels`',
    });
  }
  for (const k of ['parallelism', 'completions', 'activeDeadlineSeconds', 'backoffLimit', 'ttlSecondsAfterFinished']) {
    const v = (spec as unknown as Record<string, unknown>)[k];
    if (v !== undefined && v !== null && (typeof v !== 'number' || v < 0)) {
      errs.push({ field: `spec.${k}`, type: 'Invalid', value: v, detail: 'must be greater than or equal to 0' });
    }
  }
  (spec.podFailurePolicy?.rules ?? []).forEach((rule, i) => {
    const f = `spec.podFailurePolicy.rules[${i}]`;
    if (!['Count', 'FailIndex', 'FailJob', 'Ignore'].includes(rule.action)) {
      errs.push({
        field: `${f}.action`,
        type: rule.action ? 'NotSupported' : 'Required',
        value: rule.action,
        detail: 'supported values: "Count", "FailIndex", "FailJob", "Ignore"',
      });
    }
    const hasCodes = !!rule.onExitCodes;
    const hasConds = (rule.onPodConditions?.length ?? 0) > 0;
    if (hasCodes === hasConds) {
      errs.push({
        field: f,
        type: 'Invalid',
        value: '',
        detail: hasCodes
          ? 'specifying both OnExitCodes and OnPodConditions is not supported'
          : 'specifying one of OnExitCodes and OnPodConditions is required',
      });
    }
  });
  if (spec.podFailurePolicy && spec.podReplacementPolicy !== 'Failed') {
    errs.push({
      field: 'spec.podReplacementPolicy',
      type: 'NotSupported',
      value: spec.podReplacementPolicy,
      detail: 'supported values: "Failed"',
    });
  }
  errs.push(...podSpecErrors(t.spec, 'spec.template.spec', ['OnFailure', 'Never']));
  const rp = t.spec?.restartPolicy;
  if (spec.podFailurePolicy && rp === 'OnFailure') {
    errs.push({
      field: 'spec.template.spec.restartPolicy',
      type: 'Invalid',
      value: rp,
      detail: 'only "Never" is supported when podFailurePolicy is specified',
    });
  }
  if (errs.length) throw invalid('Job', 'batch', name, errs);
  job.status = {};
}

/** Secrets: `stringData` is write-only sugar folded into base64 `data`; type defaults to Opaque. */
export function prepareSecret(o: KObject): void {
  const data = isRecord(o.data) ? (o.data as Record<string, string>) : {};
  if (isRecord(o.stringData)) {
    for (const [k, v] of Object.entries(o.stringData)) data[k] = Buffer.from(String(v)).toString('base64');
  }
  delete o.stringData;
  const errs: FieldError[] = [...metadataErrors(o)];
  for (const [k, v] of Object.entries(data)) {
    if (!/^[-._a-zA-Z0-9]+$/.test(k)) {
      errs.push({
        field: `data[${k}]`,
        type: 'Invalid',
        value: k,
        detail: "a valid config key must consist of alphanumeric characters, '-', '_' or '.'",
      });
    }
    if (typeof v !== 'string') errs.push({ field: `data[${k}]`, type: 'Invalid', value: v });
  }
  o.type ??= 'Opaque';
  if (o.type === 'kubernetes.io/dockerconfigjson' && !data['.dockerconfigjson']) {
    errs.push({ field: 'data[.dockerconfigjson]', type: 'Required' });
  }
  if (errs.length) throw invalid('Secret', '', o.metadata.name ?? '', errs);
  if (Object.keys(data).length) o.data = data;
}

export function prepareConfigMap(o: KObject): void {
  const errs: FieldError[] = [...metadataErrors(o)];
  for (const k of Object.keys(isRecord(o.data) ? o.data : {})) {
    if (!/^[-._a-zA-Z0-9]+$/.test(k)) {
      errs.push({
        field: `data[${k}]`,
        type: 'Invalid',
        value: k,
        detail: "a valid config key must consist of alphanumeric characters, '-', '_' or '.'",
      });
    }
  }
  if (errs.length) throw invalid('ConfigMap', '', o.metadata.name ?? '', errs);
}
