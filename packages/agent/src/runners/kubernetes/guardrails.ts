import { ManifestRefusedError, type SecurityAllowance } from '@liftoff/core';

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

interface Violation {
  allowance: SecurityAllowance;
  path: string;
}

/**
 * Finds host access and privilege anywhere in a manifest (a Job or any custom resource: pod specs can sit at any
 * depth, e.g. a PyTorchJob's replica specs), so no nesting slips past. Each finding names the queue allowance that
 * would permit it.
 */
export function findViolations(manifest: unknown): Violation[] {
  const out: Violation[] = [];
  const walk = (v: unknown, path: string): void => {
    if (Array.isArray(v)) {
      v.forEach((x, i) => walk(x, `${path}[${i}]`));
      return;
    }
    if (!isObj(v)) return;
    for (const [k, val] of Object.entries(v)) {
      const p = path ? `${path}.${k}` : k;
      if ((k === 'hostPID' || k === 'hostIPC' || k === 'hostNetwork') && val === true)
        out.push({ allowance: k, path: p });
      // A host port exposes the node's network as much as hostNetwork does.
      if (k === 'hostPort' && val !== undefined && val !== null && val !== 0)
        out.push({ allowance: 'hostNetwork', path: p });
      if (k === 'hostPath' && val !== undefined && val !== null) out.push({ allowance: 'hostPath', path: p });
      if ((k === 'privileged' || k === 'allowPrivilegeEscalation') && val === true)
        out.push({ allowance: 'privileged', path: p });
      if (k === 'capabilities' && isObj(val) && Array.isArray(val.add) && val.add.length > 0)
        out.push({ allowance: 'capabilities', path: `${p}.add` });
      walk(val, p);
    }
  };
  walk(manifest, '');
  return out;
}

/** Refuses the manifest, before anything is created, when it uses what the queue does not allow. */
export function enforceGuardrails(manifest: unknown, allow: readonly SecurityAllowance[], queue: string): void {
  const refused = findViolations(manifest).filter((v) => !allow.includes(v.allowance));
  if (!refused.length) return;
  const needed = [...new Set(refused.map((v) => v.allowance))];
  throw new ManifestRefusedError(
    `The Kubernetes manifest uses ${refused.map((v) => `${v.allowance} (${v.path})`).join(', ')}, which queue "${queue}" does not allow. Remove ${refused.length > 1 ? 'them' : 'it'}, or have the queue allow it: liftoff queue update ${queue} --allow ${needed.join(',')}`,
  );
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
