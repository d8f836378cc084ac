import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { Job } from 'kubernetes-models/batch/v1/Job';
import { LaunchSpec, ManifestRefusedError, type SecurityAllowance } from '@liftoff/core';
import { enforceGuardrails, findViolations } from '../src/runners/kubernetes/guardrails.js';
import { buildManifest, labelValue, splitResourceArgs } from '../src/runners/kubernetes/manifest.js';
import { parseTimestamp } from '../src/runners/kubernetes/podLogs.js';
import { readCustom, readJob, readPod } from '../src/runners/kubernetes/status.js';

const spec = (kubernetes: Record<string, unknown> = {}, extra: Record<string, unknown> = {}) =>
  LaunchSpec.parse({
    source: { type: 'image', image: 'reg.example:5000/team/train:1' },
    entry_point: ['python', 'train.py'],
    args: ['--lr', '0.1'],
    resource_args: { kubernetes },
    ...extra,
  });

const build = (kubernetes: Record<string, unknown> = {}, extra: Record<string, unknown> = {}) => {
  const s = spec(kubernetes, extra);
  const { settings, fragment } = splitResourceArgs(s.resource_args.kubernetes);
  return buildManifest(fragment, settings, {
    runId: 'abcd1234',
    itemId: '0190a4b2-7c1e-7000-8000-000000000001',
    queue: 'gpu',
    entity: 'team',
    agentId: 'agent-on-a-host-with-a-very-long-name-that-exceeds-sixty-three-characters-easily',
    spec: s,
    image: 'reg.example:5000/team/train:1',
    env: { LIFTOFF_RUN_ID: 'abcd1234', FOO: 'from-run' },
    namespace: 'ml',
    pullSecret: 'liftoff-regcred-abcd1234',
  });
};

type Any = Record<string, any>;

describe('Kubernetes Job manifest', () => {
  it('fills defaults: batch/v1 Job, name from the run, labels, backoffLimit 0, TTL, restartPolicy, hardening', () => {
    const m = build();
    expect(m.kind).toBe('job');
    const b = m.body as Any;
    expect(b.apiVersion).toBe('batch/v1');
    expect(b.kind).toBe('Job');
    expect(b.metadata.name).toBe('liftoff-abcd1234');
    expect(b.metadata.namespace).toBe('ml');
    expect(b.metadata.labels['liftoff.dev/run-id']).toBe('abcd1234');
    expect(b.metadata.labels['liftoff.dev/queue']).toBe('gpu');
    expect(b.metadata.labels['liftoff.dev/agent'].length).toBeLessThanOrEqual(63);
    expect(b.metadata.annotations['liftoff.dev/agent-id']).toMatch(/^agent-on-a-host/);
    expect(b.spec.backoffLimit).toBe(0);
    expect(b.spec.ttlSecondsAfterFinished).toBe(600);
    const pod = b.spec.template.spec;
    expect(b.spec.template.metadata.labels['liftoff.dev/run-id']).toBe('abcd1234');
    expect(pod.restartPolicy).toBe('Never');
    expect(pod.automountServiceAccountToken).toBe(false);
    expect(pod.imagePullSecrets).toEqual([{ name: 'liftoff-regcred-abcd1234' }]);
    const c = pod.containers[0];
    expect(c).toMatchObject({
      name: 'main',
      image: 'reg.example:5000/team/train:1',
      command: ['python', 'train.py'],
      args: ['--lr', '0.1'],
      securityContext: {
        allowPrivilegeEscalation: false,
        capabilities: { drop: ['ALL'] },
        seccompProfile: { type: 'RuntimeDefault' },
      },
    });
    expect(c.env).toEqual([
      { name: 'LIFTOFF_RUN_ID', value: 'abcd1234' },
      { name: 'FOO', value: 'from-run' },
    ]);
    expect(() => new Job(b).validate()).not.toThrow();
  });

  it('keeps what the fragment says: resources, nodeSelector, tolerations, volumes, env, backoffLimit', () => {
    const m = build({
      metadata: { labels: { team: 'vision' }, annotations: { note: 'x' } },
      spec: {
        backoffLimit: 2,
        activeDeadlineSeconds: 3600,
        template: {
          spec: {
            nodeSelector: { accelerator: 'a100' },
            tolerations: [{ key: 'gpu', operator: 'Exists', effect: 'NoSchedule' }],
            serviceAccountName: 'trainer',
            volumes: [{ name: 'cfg', configMap: { name: 'train-config' } }],
            containers: [
              {
                resources: { limits: { cpu: '2', memory: '4Gi' }, requests: { cpu: '1' } },
                env: [
                  { name: 'FOO', value: 'from-fragment' },
                  { name: 'KEEP', value: 'yes' },
                ],
                volumeMounts: [{ name: 'cfg', mountPath: '/etc/train' }],
                securityContext: { runAsUser: 1000 },
              },
              { name: 'sidecar', image: 'busybox:1', command: ['sleep', '1'] },
            ],
          },
        },
      },
    });
    const b = m.body as Any;
    expect(b.metadata.labels.team).toBe('vision');
    expect(b.metadata.annotations.note).toBe('x');
    expect(b.spec.backoffLimit).toBe(2);
    expect(b.spec.activeDeadlineSeconds).toBe(3600);
    const pod = b.spec.template.spec;
    expect(pod.nodeSelector).toEqual({ accelerator: 'a100' });
    expect(pod.tolerations).toHaveLength(1);
    expect(pod.serviceAccountName).toBe('trainer');
    // No token without the queue's serviceAccountToken allowance, named service account or not.
    expect(pod.automountServiceAccountToken).toBe(false);
    const [main, side] = pod.containers;
    expect(main.resources.limits).toEqual({ cpu: '2', memory: '4Gi' });
    expect(main.volumeMounts).toEqual([{ name: 'cfg', mountPath: '/etc/train' }]);
    expect(main.securityContext.runAsUser).toBe(1000);
    expect(main.securityContext.capabilities.drop).toEqual(['ALL']);
    expect(main.env).toEqual([
      { name: 'KEEP', value: 'yes' },
      { name: 'LIFTOFF_RUN_ID', value: 'abcd1234' },
      { name: 'FOO', value: 'from-run' },
    ]);
    expect(side.image).toBe('busybox:1');
    expect(side.command).toEqual(['sleep', '1']);
    expect(() => new Job(b).validate()).not.toThrow();
  });

  it('an image job without an entry point keeps the image entrypoint and passes only args', () => {
    const m = build({}, { entry_point: [], args: ['--epochs', '3'] });
    const c = (m.body as Any).spec.template.spec.containers[0];
    expect(c.command).toBeUndefined();
    expect(c.args).toEqual(['--epochs', '3']);
  });

  it('custom resources: every pod template gets image, command, env, labels and hardening', () => {
    const m = build({
      apiVersion: 'kubeflow.org/v1',
      kind: 'PyTorchJob',
      spec: {
        pytorchReplicaSpecs: {
          Master: { replicas: 1, template: { spec: { containers: [{ name: 'pytorch' }] } } },
          Worker: { replicas: 2, template: { spec: { containers: [{ name: 'pytorch' }] } } },
        },
      },
    });
    expect(m.kind).toBe('custom');
    if (m.kind !== 'custom') return;
    expect([m.group, m.version, m.plural]).toEqual(['kubeflow.org', 'v1', 'pytorchjobs']);
    for (const role of ['Master', 'Worker']) {
      const t = (m.body as Any).spec.pytorchReplicaSpecs[role].template;
      expect(t.metadata.labels['liftoff.dev/run-id']).toBe('abcd1234');
      expect(t.spec.containers[0]).toMatchObject({ name: 'pytorch', image: 'reg.example:5000/team/train:1' });
      expect(t.spec.containers[0].securityContext.capabilities.drop).toEqual(['ALL']);
    }
    expect(() => build({ apiVersion: 'v1', kind: 'Pod', spec: { containers: [] } })).toThrow(ManifestRefusedError);
    expect(() => build({ apiVersion: 'example.com/v1', kind: 'Thing', spec: {} })).toThrow(/no pod template/);
  });

  it('refuses unknown resource-arg keys and keeps runner settings out of the manifest', () => {
    expect(() => build({ additional_services: [] })).toThrow(/additional_services is not something/);
    const { settings, fragment } = splitResourceArgs({ namespace: 'n', plural: 'things', spec: {} });
    expect(settings).toEqual({ namespace: 'n', plural: 'things' });
    expect(Object.keys(fragment)).toEqual(['spec']);
  });
});

describe('guardrails', () => {
  const policy = (allow: SecurityAllowance[] = []) => ({
    queue: 'gpu',
    allow,
    serviceAccounts: [],
    namespace: 'ml',
    secureMode: false,
  });
  const risky = {
    spec: {
      template: {
        spec: {
          hostNetwork: true,
          hostPID: true,
          volumes: [{ name: 'h', hostPath: { path: '/' } }],
          containers: [{ securityContext: { privileged: true, capabilities: { add: ['SYS_ADMIN'] } }, ports: [] }],
        },
      },
    },
  };

  it('finds host access and privilege at any depth and names the allowance for each', () => {
    expect(findViolations(risky, policy()).map((v) => v.allowance)).toEqual([
      'hostNetwork',
      'hostPID',
      'hostPath',
      'privileged',
      'capabilities',
    ]);
    expect(findViolations({ a: [{ b: { spec: { containers: [{ ports: [{ hostPort: 80 }] }] } } }] }, policy())).toEqual(
      [{ allowance: 'hostNetwork', path: 'a[0].b.spec.containers[0].ports[0].hostPort' }],
    );
  });

  it('refuses unless the queue allows each one, with the command that would allow them', () => {
    expect(() => enforceGuardrails({}, risky, policy())).toThrow(
      /--allow hostNetwork,hostPID,hostPath,privileged,capabilities/,
    );
    expect(() => enforceGuardrails({}, risky, policy(['hostNetwork', 'hostPID', 'hostPath', 'privileged']))).toThrow(
      /capabilities \(spec.template.spec.containers\[0\].securityContext.capabilities.add\)/,
    );
    expect(() =>
      enforceGuardrails({}, risky, policy(['hostNetwork', 'hostPID', 'hostPath', 'privileged', 'capabilities'])),
    ).not.toThrow();
  });

  it('an allowed privileged container is not given allowPrivilegeEscalation: false (the API would refuse both)', () => {
    const m = build({ spec: { template: { spec: { containers: [{ securityContext: { privileged: true } }] } } } });
    const sc = (m.body as Any).spec.template.spec.containers[0].securityContext;
    expect(sc.privileged).toBe(true);
    expect(sc.allowPrivilegeEscalation).toBeUndefined();
  });
});

describe('status mapping', () => {
  const pod = (status: Any, name = 'p1') => ({ metadata: { name }, status }) as never;

  it('unschedulable and image pull back-off are warnings; running is running', () => {
    const pending = readPod(
      pod({
        phase: 'Pending',
        conditions: [{ type: 'PodScheduled', status: 'False', reason: 'Unschedulable', message: '0/1 nodes fit' }],
      }),
    );
    expect(pending).toMatchObject({ running: false, warning: 'pod p1 is unschedulable: 0/1 nodes fit' });
    const pull = readPod(
      pod({
        phase: 'Pending',
        containerStatuses: [{ name: 'main', state: { waiting: { reason: 'ImagePullBackOff', message: 'nope' } } }],
      }),
    );
    expect(pull.warning).toBe('pod p1, container main: ImagePullBackOff: nope');
    const creating = readPod(
      pod({
        phase: 'Pending',
        containerStatuses: [{ name: 'main', state: { waiting: { reason: 'ContainerCreating' } } }],
      }),
    );
    expect(creating).toMatchObject({ running: false });
    expect(creating.warning).toBeUndefined();
    expect(
      readPod(pod({ phase: 'Running', containerStatuses: [{ name: 'main', state: { running: {} } }] })).running,
    ).toBe(true);
  });

  it('a pod evicted for its outputs emptyDir past the cap is a failure of the job, not a disruption', () => {
    const evicted = readPod(
      pod({
        phase: 'Failed',
        reason: 'Evicted',
        message: 'Usage of EmptyDir volume "liftoff-outputs" exceeds the limit "64Mi". ',
        conditions: [{ type: 'DisruptionTarget', status: 'True', reason: 'TerminationByKubelet' }],
        containerStatuses: [{ name: 'main', state: { terminated: { exitCode: 137, reason: 'Error' } } }],
      }),
    );
    expect(evicted.disruption).toBeUndefined();
    expect(evicted.failure).toMatchObject({ container: 'main', exitCode: 137, reason: 'Evicted' });
    expect(evicted.failure?.message).toContain("LIFTOFF_OUTPUT_DIR went past its cap (the agent's outputs-max-mib)");
    // Seen first with only the condition (the kubelet sets it before the phase): no disruption either.
    const marked = readPod(
      pod({
        phase: 'Running',
        conditions: [
          {
            type: 'DisruptionTarget',
            status: 'True',
            reason: 'TerminationByKubelet',
            message: 'Usage of EmptyDir volume "liftoff-outputs" exceeds the limit "64Mi". ',
          },
        ],
      }),
    );
    expect(marked.disruption).toBeUndefined();
    // Another emptyDir of the job's own past its limit stays an eviction like any other.
    const other = readPod(
      pod({
        phase: 'Failed',
        reason: 'Evicted',
        message: 'Usage of EmptyDir volume "scratch" exceeds the limit "1Gi". ',
      }),
    );
    expect(other.disruption).toContain('Evicted');
  });

  it('disruption conditions and evicted pods are disruptions; failures carry exit code and reason', () => {
    for (const reason of ['EvictionByEvictionAPI', 'PreemptionByScheduler', 'TerminationByKubelet']) {
      expect(
        readPod(pod({ phase: 'Running', conditions: [{ type: 'DisruptionTarget', status: 'True', reason }] }))
          .disruption,
      ).toContain(reason);
    }
    expect(readPod(pod({ phase: 'Failed', reason: 'Evicted', message: 'low memory' })).disruption).toBe(
      'pod p1: Evicted: low memory',
    );
    const oom = readPod(
      pod({
        phase: 'Failed',
        containerStatuses: [{ name: 'main', state: { terminated: { exitCode: 137, reason: 'OOMKilled' } } }],
      }),
    );
    expect(oom.failure).toEqual({ container: 'main', exitCode: 137, reason: 'OOMKilled' });
  });

  it('jobs end by their conditions; custom resources by phase or newest true condition', () => {
    expect(readJob({ status: { conditions: [{ type: 'Complete', status: 'True' }] } } as never)).toEqual({
      state: 'finished',
    });
    expect(
      readJob({
        status: { conditions: [{ type: 'Failed', status: 'True', reason: 'DeadlineExceeded', message: 'too long' }] },
      } as never),
    ).toEqual({ state: 'failed', reason: 'DeadlineExceeded', message: 'too long' });
    expect(readJob({ status: { active: 1 } } as never)).toBeUndefined();
    expect(readCustom({ status: { state: { phase: 'Running' } } })?.phase).toBe('running');
    expect(
      readCustom({
        status: {
          conditions: [
            { type: 'Created', status: 'True' },
            { type: 'Running', status: 'False' },
            { type: 'Succeeded', status: 'True', reason: 'PyTorchJobSucceeded' },
          ],
        },
      }),
    ).toEqual({ phase: 'finished', detail: 'Succeeded: PyTorchJobSucceeded' });
    expect(readCustom({ status: { state: { phase: 'Aborted' } } })?.phase).toBe('failed');
    expect(readCustom({ status: {} })).toBeUndefined();
  });
});

describe('label values and log timestamps', () => {
  it('labelValue always yields a valid label value, and is stable', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 200 }), (s) => {
        const v = labelValue(s);
        expect(v.length).toBeLessThanOrEqual(63);
        expect(v).toMatch(/^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$/);
        expect(labelValue(s)).toBe(v);
      }),
    );
    expect(labelValue('gpu-queue')).toBe('gpu-queue');
  });

  it('timestamps with fractions of any length order correctly', () => {
    const a = parseTimestamp('2026-11-29T10:00:00.9Z');
    const b = parseTimestamp('2026-11-29T10:00:00.123456789Z');
    const c = parseTimestamp('2026-11-29T10:00:01Z');
    expect(a! > b!).toBe(true);
    expect(c! > a!).toBe(true);
    expect(parseTimestamp('not a time')).toBeUndefined();
  });
});
