/**
 * A small Kubeflow training-operator for the test API server: the `kubeflow.org/v1` PyTorchJob CRD (a structural
 * schema trimmed to the fields the operator reads) and a controller that runs each replica's template as pods and
 * sets `status` the way training-operator's PyTorchJob reconciler does: conditions appended in order Created
 * (reason PyTorchJobCreated, "PyTorchJob <name> is created."), Running ("PyTorchJob <ns>/<name> is running."),
 * then Succeeded ("PyTorchJob <ns>/<name> successfully completed.") or Failed ("PyTorchJob <name> is failed because
 * <n> <type> replica(s) failed."), with Running turned False on either end; `replicaStatuses` per replica type,
 * `startTime` and `completionTime`. Pods are named `<job>-<type>-<index>` and labelled `training.kubeflow.org/*`.
 * Not modelled: restart policies other than Never, elastic and gang scheduling, services, the MASTER_ADDR env.
 */
import type { FakeKube } from './index.js';
import { rfc3339 } from './types.js';

const preserve = { type: 'object', 'x-kubernetes-preserve-unknown-fields': true };
const replicaSpec = {
  type: 'object',
  properties: {
    replicas: { type: 'integer', format: 'int32' },
    restartPolicy: { type: 'string' },
    template: { ...preserve, 'x-kubernetes-embedded-resource': false },
  },
};

/** The CRD, as a cluster admin installs it with the operator (wire JSON, for kubectl or a raw POST). */
export const PYTORCHJOB_CRD = {
  apiVersion: 'apiextensions.k8s.io/v1',
  kind: 'CustomResourceDefinition',
  metadata: { name: 'pytorchjobs.kubeflow.org' },
  spec: {
    group: 'kubeflow.org',
    names: { kind: 'PyTorchJob', listKind: 'PyTorchJobList', plural: 'pytorchjobs', singular: 'pytorchjob' },
    scope: 'Namespaced',
    versions: [
      {
        name: 'v1',
        served: true,
        storage: true,
        subresources: { status: {} },
        schema: {
          openAPIV3Schema: {
            type: 'object',
            properties: {
              apiVersion: { type: 'string' },
              kind: { type: 'string' },
              metadata: { type: 'object' },
              spec: {
                type: 'object',
                properties: {
                  runPolicy: preserve,
                  elasticPolicy: preserve,
                  nprocPerNode: { type: 'string' },
                  pytorchReplicaSpecs: { type: 'object', additionalProperties: replicaSpec },
                },
              },
              status: preserve,
            },
          },
        },
      },
    ],
  },
};

interface Condition {
  type: string;
  status: 'True' | 'False';
  reason: string;
  message: string;
  lastUpdateTime: string;
  lastTransitionTime: string;
}

/** Runs PyTorchJobs of a namespace until stop(). */
export function startPyTorchOperator(kube: FakeKube, namespace: string): { stop(): void } {
  const started = new Set<string>();
  const tick = async () => {
    for (const job of kube.list('PyTorchJob', namespace)) {
      const name: string = job.metadata.name;
      const key = job.metadata.uid as string;
      const status = job.status ?? {};
      const conditions: Condition[] = status.conditions ?? [];
      const has = (t: string) => conditions.some((c) => c.type === t && c.status === 'True');
      if (has('Succeeded') || has('Failed')) continue;
      const specs: Record<string, { replicas?: number; template: any }> = job.spec?.pytorchReplicaSpecs ?? {};
      const set = (next: Record<string, unknown>) =>
        kube.setCustomStatus('kubeflow.org', 'v1', 'pytorchjobs', namespace, name, { ...status, ...next });
      const add = (type: string, reason: string, message: string, ...falsify: string[]): Condition[] => {
        const now = rfc3339();
        const out = conditions.map((c) =>
          falsify.includes(c.type)
            ? { ...c, status: 'False' as const, lastUpdateTime: now, lastTransitionTime: now }
            : c,
        );
        return [...out, { type, status: 'True', reason, message, lastUpdateTime: now, lastTransitionTime: now }];
      };
      if (!started.has(key)) {
        started.add(key);
        set({ conditions: add('Created', 'PyTorchJobCreated', `PyTorchJob ${name} is created.`), replicaStatuses: {} });
        for (const [rtype, spec] of Object.entries(specs)) {
          for (let i = 0; i < (spec.replicas ?? 1); i++) {
            const t = spec.template ?? {};
            await kube.createPod(namespace, {
              metadata: {
                name: `${name}-${rtype.toLowerCase()}-${i}`,
                labels: {
                  ...(t.metadata?.labels ?? {}),
                  'training.kubeflow.org/job-name': name,
                  'training.kubeflow.org/operator-name': 'pytorchjob-controller',
                  'training.kubeflow.org/replica-type': rtype.toLowerCase(),
                  'training.kubeflow.org/replica-index': String(i),
                  ...(rtype === 'Master' ? { 'training.kubeflow.org/job-role': 'master' } : {}),
                },
                ownerReferences: [
                  {
                    apiVersion: 'kubeflow.org/v1',
                    kind: 'PyTorchJob',
                    name,
                    uid: key,
                    controller: true,
                    blockOwnerDeletion: true,
                  },
                ],
              },
              spec: { ...(t.spec ?? {}), restartPolicy: 'Never' },
            });
          }
        }
        continue;
      }
      const pods = kube
        .list('Pod', namespace)
        .filter((p) => p.metadata.labels?.['training.kubeflow.org/job-name'] === name);
      const replicaStatuses: Record<string, { active: number; succeeded: number; failed: number }> = {};
      for (const rtype of Object.keys(specs)) {
        const mine = pods.filter(
          (p) => p.metadata.labels['training.kubeflow.org/replica-type'] === rtype.toLowerCase(),
        );
        const n = (phase: string) => mine.filter((p) => p.status?.phase === phase).length;
        replicaStatuses[rtype] = { active: n('Running'), succeeded: n('Succeeded'), failed: n('Failed') };
      }
      const lead = specs.Master ? 'Master' : 'Worker';
      const r = replicaStatuses[lead] ?? { active: 0, succeeded: 0, failed: 0 };
      const expected = (specs[lead]?.replicas ?? 1) - r.succeeded;
      const failedType = Object.entries(replicaStatuses).find(([, s]) => s.failed > 0);
      if (failedType) {
        const [rtype, s] = failedType;
        set({
          replicaStatuses,
          completionTime: rfc3339(),
          conditions: add(
            'Failed',
            'PyTorchJobFailed',
            `PyTorchJob ${name} is failed because ${s.failed} ${rtype} replica(s) failed.`,
            'Running',
          ),
        });
      } else if (expected === 0) {
        set({
          replicaStatuses,
          completionTime: rfc3339(),
          conditions: add(
            'Succeeded',
            'PyTorchJobSucceeded',
            `PyTorchJob ${namespace}/${name} successfully completed.`,
            'Running',
          ),
        });
      } else if (r.active > 0 && !has('Running')) {
        set({
          replicaStatuses,
          startTime: status.startTime ?? rfc3339(),
          conditions: add('Running', 'PyTorchJobRunning', `PyTorchJob ${namespace}/${name} is running.`),
        });
      }
    }
  };
  let busy = false;
  const timer = setInterval(() => {
    if (busy) return;
    busy = true;
    tick()
      .catch((e: unknown) => console.error('pytorch operator:', e))
      .finally(() => {
        busy = false;
      });
  }, 100);
  return { stop: () => clearInterval(timer) };
}
