/**
 * Guardrail exceptions a queue may grant: without one, the Kubernetes runner refuses a manifest that uses it (host
 * namespaces, privileged containers, hostPath volumes, added capabilities, secrets, service-account tokens, a fixed
 * node, seccomp/AppArmor/SELinux relaxations, a shared process namespace, the host user namespace), and the
 * local-container runner refuses to run a container as root (`root`).
 */
export const SECURITY_ALLOWANCES = [
  'hostPID',
  'hostIPC',
  'hostNetwork',
  'privileged',
  'hostPath',
  'capabilities',
  'secrets',
  'serviceAccountToken',
  'nodeName',
  'unconfined',
  'shareProcessNamespace',
  'hostUsers',
  /** local-container: the container may run as uid 0 (or a user name, which could be uid 0 in the image). */
  'root',
] as const;
