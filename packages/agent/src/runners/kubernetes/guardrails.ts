import { ManifestRefusedError, type SecurityAllowance } from '@liftoff/core';
import { HELPER_VOLUME, OUTPUTS_VOLUME, OUTPUT_ENV } from './outputs.js';

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** One thing in a manifest the runner refuses. */
export interface Finding {
  path: string;
  /** The queue allowance that would permit it; absent when nothing does (a malformed switch, secure_mode, ...). */
  allowance?: SecurityAllowance;
  /** Why it is refused, for findings no allowance lifts. */
  why?: string;
}

/** What a manifest is checked against: the queue's allowances and the agent's own settings. */
export interface GuardrailPolicy {
  queue: string;
  allow: readonly SecurityAllowance[];
  /** The agent config's `kubernetes.service-accounts`. */
  serviceAccounts: readonly string[];
  /** The run's namespace: a manifest may not name any other. */
  namespace: string;
  /** The agent config's `secure_mode` (W&B's locks, which no queue allowance lifts). */
  secureMode: boolean;
}

/**
 * Keys are compared lower-cased and without "-" and "_": API servers and operators have decoded JSON
 * case-insensitively (Go's encoding/json does), so `HostPath` or `HOSTNETWORK` must count as what they spell.
 */
export const normKey = (k: string): string => k.toLowerCase().replace(/[-_]/g, '');

type Rule = (value: unknown, path: string, policy: GuardrailPolicy) => Finding[];

const absent = (v: unknown): boolean => v === undefined || v === null;

/** A boolean switch: `true` needs the allowance; anything but a real boolean is refused outright. */
const boolSwitch =
  (allowance: SecurityAllowance): Rule =>
  (v, path) => {
    if (absent(v) || v === false) return [];
    if (v === true) return [{ allowance, path }];
    return [{ path, why: `is ${JSON.stringify(v)} (${typeof v}); a guardrail switch must be true or false` }];
  };

/** Present at all (a volume source, a reference): needs the allowance. */
const present =
  (allowance: SecurityAllowance): Rule =>
  (v, path) =>
    absent(v) || v === '' ? [] : [{ allowance, path }];

/** seccomp and AppArmor profiles: only the runtime's default confinement passes without `unconfined`. */
const profile: Rule = (v, path) => {
  if (absent(v)) return [];
  if (!isObj(v)) return [{ path, why: 'must be a mapping with type: RuntimeDefault' }];
  const type = Object.entries(v).find(([k]) => normKey(k) === 'type')?.[1];
  const extra = Object.keys(v).filter((k) => normKey(k) !== 'type');
  return type === 'RuntimeDefault' && !extra.length ? [] : [{ allowance: 'unconfined', path }];
};

const RULES: Record<string, Rule> = {
  hostpid: boolSwitch('hostPID'),
  hostipc: boolSwitch('hostIPC'),
  hostnetwork: boolSwitch('hostNetwork'),
  privileged: boolSwitch('privileged'),
  allowprivilegeescalation: boolSwitch('privileged'),
  // A Windows HostProcess container is the node itself.
  hostprocess: boolSwitch('privileged'),
  shareprocessnamespace: boolSwitch('shareProcessNamespace'),
  hostusers: boolSwitch('hostUsers'),
  automountserviceaccounttoken: boolSwitch('serviceAccountToken'),
  // A host port exposes the node's network as much as hostNetwork does.
  hostport: (v, path) => {
    if (absent(v) || v === 0) return [];
    if (Number.isInteger(v)) return [{ allowance: 'hostNetwork', path }];
    return [{ path, why: `is ${JSON.stringify(v)}; a port must be a number` }];
  },
  hostpath: present('hostPath'),
  capabilities: (v, path) => {
    if (absent(v)) return [];
    if (!isObj(v)) return [{ path, why: 'must be a mapping' }];
    return Object.entries(v)
      .filter(([k, add]) => normKey(k) === 'add' && !absent(add) && !(Array.isArray(add) && add.length === 0))
      .map(([k]) => ({ allowance: 'capabilities' as const, path: `${path}.${k}` }));
  },
  serviceaccountname: serviceAccount,
  serviceaccount: serviceAccount,
  // A projected token is an API credential, as the automounted one is.
  serviceaccounttoken: present('serviceAccountToken'),
  // A fixed node skips the scheduler and with it taints and the node restrictions the operator set.
  nodename: present('nodeName'),
  // Secret volumes, projected secrets, env secretKeyRef, envFrom secretRef, volume plugins' secretRef.
  secret: present('secrets'),
  secretkeyref: present('secrets'),
  secretref: present('secrets'),
  seccompprofile: profile,
  apparmorprofile: profile,
  selinuxoptions: present('unconfined'),
  procmount: (v, path) => (absent(v) || v === 'Default' ? [] : [{ allowance: 'unconfined', path }]),
  sysctls: (v, path) => (absent(v) || (Array.isArray(v) && v.length === 0) ? [] : [{ allowance: 'unconfined', path }]),
  // Bidirectional propagation lets a container mount into the host (the API allows it for privileged ones only).
  mountpropagation: (v, path) =>
    typeof v === 'string' && normKey(v) === 'bidirectional' ? [{ allowance: 'privileged', path }] : [],
  // The annotations older clusters read for seccomp and AppArmor.
  annotations: (v, path) =>
    isObj(v)
      ? Object.entries(v)
          .filter(
            ([k, a]) => /apparmor|seccomp/i.test(k) && typeof a === 'string' && /unconfined|^localhost/i.test(a.trim()),
          )
          .map(([k]) => ({ allowance: 'unconfined' as const, path: `${path}.${k}` }))
      : [],
  namespace: (v, path, policy) =>
    typeof v === 'string' && v !== policy.namespace
      ? [{ path, why: `names namespace "${v}", but the run's namespace is "${policy.namespace}"` }]
      : [],
};

function serviceAccount(v: unknown, path: string, policy: GuardrailPolicy): Finding[] {
  if (absent(v) || v === '') return [];
  if (typeof v !== 'string') return [{ path, why: 'must be a service account name' }];
  if (policy.serviceAccounts.includes(v) || policy.allow.includes(`serviceAccount:${v}`)) return [];
  return [{ allowance: `serviceAccount:${v}` as SecurityAllowance, path }];
}

/** Host access that secure_mode locks even where the queue allows it (W&B: pod hostPID/hostIPC/hostNetwork). */
const SECURE_MODE_LOCKED: readonly string[] = ['hostPID', 'hostIPC', 'hostNetwork'];

/**
 * Finds host access, privilege, credentials and relaxed confinement anywhere in a manifest (a Job or any custom
 * resource: pod specs can sit at any depth, e.g. a PyTorchJob's replica specs), so no nesting slips past.
 */
export function findViolations(manifest: unknown, policy: GuardrailPolicy): Finding[] {
  const out: Finding[] = [];
  const walk = (v: unknown, path: string): void => {
    if (Array.isArray(v)) return v.forEach((x, i) => walk(x, `${path}[${i}]`));
    if (!isObj(v)) return;
    for (const [k, val] of Object.entries(v)) {
      const p = path ? `${path}.${k}` : k;
      const rule = RULES[normKey(k)];
      if (rule) out.push(...rule(val, p, policy));
      walk(val, p);
    }
  };
  walk(manifest, '');
  if (!policy.secureMode) return out;
  return out.map((f) =>
    f.allowance && SECURE_MODE_LOCKED.includes(f.allowance)
      ? { path: f.path, why: `${f.allowance} is locked by the agent's secure_mode` }
      : f,
  );
}

/**
 * Fields Liftoff fills or hardens. Spelled any other way (`Containers`, `SecurityContext`) a lenient decoder would
 * take them for these, after Liftoff's own: unhardened containers or another image would slip in beside the ones
 * Liftoff prepared. Only the exact spelling is accepted.
 */
const OWNED_FIELDS = new Map(
  [
    'apiVersion',
    'kind',
    'metadata',
    'spec',
    'template',
    'containers',
    'initContainers',
    'ephemeralContainers',
    'securityContext',
    'image',
    'command',
    'args',
    'env',
    'labels',
    'annotations',
    'imagePullSecrets',
    'automountServiceAccountToken',
    'name',
    // The outputs wiring's (outputs.ts): shadowing it is checked under these spellings only.
    'volumes',
    'volumeMounts',
    'mountPath',
    'valueFrom',
  ].map((k) => [normKey(k), k]),
);

/**
 * The agent's own objects are never a job's to mount, pull with or read, whatever the queue allows: its image pull
 * secrets, the runs' upload-token Secrets (another run's would upload there) and the outputs helper's ConfigMaps.
 */
const AGENT_SECRET = /^liftoff-(regcred-|upload-|outputs-helper)/i;
/** Volume names, mount paths and variables of the run's outputs (outputs.ts): Liftoff's alone. */
const OUTPUT_VOLUMES = new Set([OUTPUTS_VOLUME, HELPER_VOLUME]);
const LIFTOFF_MOUNTS = '/mnt/liftoff';

/**
 * What only the job's own fragment can say (Liftoff itself adds the image pull secret and the command): references
 * to the agent's pull secrets, and under secure_mode any `command` (W&B: no pod command) and init containers.
 */
export function findFragmentViolations(fragment: unknown, secureMode: boolean): Finding[] {
  const out: Finding[] = [];
  const walk = (v: unknown, path: string): void => {
    if (typeof v === 'string' && AGENT_SECRET.test(v)) {
      out.push({ path, why: "names one of the agent's own objects (pull or upload secrets), which jobs may not use" });
    }
    if (Array.isArray(v)) return v.forEach((x, i) => walk(x, `${path}[${i}]`));
    if (!isObj(v)) return;
    out.push(...outputsShadowing(v, path));
    for (const [k, val] of Object.entries(v)) {
      const p = path ? `${path}.${k}` : k;
      const key = normKey(k);
      const owned = OWNED_FIELDS.get(key);
      if (owned && owned !== k)
        out.push({ path: p, why: `is not how Kubernetes spells "${owned}"; use that spelling` });
      if (secureMode && key === 'command' && !absent(val))
        out.push({ path: p, why: "the agent's secure_mode runs only the job's own entry point (no command)" });
      if (secureMode && key === 'initcontainers' && !absent(val) && !(Array.isArray(val) && val.length === 0))
        out.push({ path: p, why: "the agent's secure_mode allows no init containers" });
      walk(val, p);
    }
  };
  walk(fragment, '');
  return out;
}

/**
 * Entries of the fragment that would stand in for the run's outputs wiring (outputs.ts): a volume named as Liftoff's,
 * a mount at or under /mnt/liftoff, a variable Liftoff sets for the helper. Refused rather than overridden, so a
 * job never runs with something else than it was told it has.
 */
function outputsShadowing(v: Obj, path: string): Finding[] {
  const out: Finding[] = [];
  const named = typeof v.name === 'string' ? v.name : undefined;
  if (named !== undefined && /\.volumes\[\d+\]$/.test(path) && OUTPUT_VOLUMES.has(named))
    out.push({ path: `${path}.name`, why: `is the name of Liftoff's own outputs volume "${named}"` });
  if (named !== undefined && /\.env\[\d+\]$/.test(path) && OUTPUT_ENV.includes(named))
    out.push({ path: `${path}.name`, why: `${named} is set by Liftoff for the run's outputs` });
  const mount = typeof v.mountPath === 'string' ? v.mountPath.replace(/\/+$/, '') : undefined;
  if (mount !== undefined && (mount === LIFTOFF_MOUNTS || mount.startsWith(`${LIFTOFF_MOUNTS}/`)))
    out.push({
      path: `${path}.mountPath`,
      why: `${LIFTOFF_MOUNTS} is where Liftoff mounts the run's outputs and helper`,
    });
  return out;
}

/**
 * Refuses the manifest, before anything is created, when it uses what the queue does not allow or what nothing
 * allows. `fragment` is the job's resource args as written; `manifest` the object about to be created.
 */
export function enforceGuardrails(fragment: unknown, manifest: unknown, policy: GuardrailPolicy): void {
  const findings = [...findFragmentViolations(fragment, policy.secureMode), ...findViolations(manifest, policy)];
  const fatal = findings.filter((f) => !f.allowance);
  const liftable = findings.filter((f) => f.allowance && !policy.allow.includes(f.allowance));
  const parts: string[] = [];
  if (fatal.length)
    parts.push(`The Kubernetes manifest is refused: ${fatal.map((f) => `${f.path} ${f.why}`).join('; ')}.`);
  if (liftable.length) {
    const needed = [...new Set(liftable.map((f) => f.allowance as SecurityAllowance))];
    const sa = needed.some((a) => a.startsWith('serviceAccount:'))
      ? " (a service account may also be listed in the agent config's kubernetes.service-accounts)"
      : '';
    parts.push(
      `The Kubernetes manifest uses ${liftable.map((f) => `${f.allowance} (${f.path})`).join(', ')}, which queue "${policy.queue}" does not allow. Remove ${liftable.length > 1 ? 'them' : 'it'}, or have the queue allow it: liftoff queue update ${policy.queue} --allow ${[...policy.allow, ...needed].join(',')}${sa}`,
    );
  }
  if (parts.length) throw new ManifestRefusedError(parts.join(' '));
}

/** Every container runs without privilege escalation, with no capabilities beyond those it adds, under seccomp. */
export function hardenContainer(container: Obj): void {
  const sc = isObj(container.securityContext) ? container.securityContext : {};
  const caps = isObj(sc.capabilities) ? sc.capabilities : {};
  container.securityContext = {
    // The API server rejects privileged together with allowPrivilegeEscalation: false.
    ...(sc.privileged === true ? {} : { allowPrivilegeEscalation: false }),
    seccompProfile: { type: 'RuntimeDefault' },
    ...sc,
    capabilities: { ...caps, drop: ['ALL'] },
  };
}

/**
 * Pods get no service-account token unless the queue allows one (`serviceAccountToken`), and even then an unnamed
 * service account (the namespace's default) gets none unless the manifest asks. Only a default is set: a `true`
 * the job wrote stays, so that the guardrails refuse it with a message instead of it being dropped unseen.
 */
export function defaultServiceAccountToken(podSpec: Obj, tokenAllowed: boolean): void {
  if (!tokenAllowed || (podSpec.serviceAccountName === undefined && podSpec.serviceAccount === undefined))
    podSpec.automountServiceAccountToken ??= false;
}
