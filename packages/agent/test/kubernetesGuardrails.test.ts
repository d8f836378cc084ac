import { describe, expect, it } from 'vitest';
import { Job } from 'kubernetes-models/batch/v1/Job';
import { LaunchSpec, ManifestRefusedError, type SecurityAllowance } from '@liftoff/core';
import { enforceGuardrails, type GuardrailPolicy } from '../src/runners/kubernetes/guardrails.js';
import { buildManifest, splitResourceArgs } from '../src/runners/kubernetes/manifest.js';
import { secureModeRefusal } from '../src/secureMode.js';

type Obj = Record<string, unknown>;

const spec = (kubernetes: Obj, extra: Obj = {}) =>
  LaunchSpec.parse({
    source: { type: 'image', image: 'reg.example:5000/team/train:1' },
    entry_point: ['python', 'train.py'],
    resource_args: { kubernetes },
    ...extra,
  });

/** Builds the manifest from resource args as the runner does, then checks it as the runner does. */
function check(kubernetes: Obj, over: Partial<GuardrailPolicy> = {}, tokenAllowed = false): Obj {
  const s = spec(kubernetes);
  const { settings, fragment } = splitResourceArgs(s.resource_args.kubernetes);
  const m = buildManifest(fragment, settings, {
    runId: 'abcd1234',
    itemId: 'item-1',
    queue: 'gpu',
    entity: 'team',
    agentId: 'agent-1',
    spec: s,
    image: 'reg.example:5000/team/train:1',
    env: { LIFTOFF_RUN_ID: 'abcd1234' },
    namespace: 'ml',
    pullSecret: 'liftoff-regcred-abcd1234',
    tokenAllowed,
  });
  enforceGuardrails(fragment, m.body, {
    queue: 'gpu',
    allow: [],
    serviceAccounts: [],
    namespace: 'ml',
    secureMode: false,
    ...over,
  });
  return m.body;
}

const pod = (podSpec: Obj, containerOver: Obj = {}, template: Obj = {}): Obj => ({
  spec: { template: { ...template, spec: { ...podSpec, containers: [{ ...containerOver }] } } },
});
const container = (c: Obj): Obj => pod({}, c);
const sc = (securityContext: Obj): Obj => container({ securityContext });

/** [case, resource args, the allowance that lifts it, or null when nothing does (then: a pattern of the message)] */
const REFUSED: Array<[string, Obj, SecurityAllowance | null, RegExp?]> = [
  ['hostNetwork: true', pod({ hostNetwork: true }), 'hostNetwork'],
  ['HostNetwork: true (odd case)', pod({ HostNetwork: true }), 'hostNetwork'],
  ['HOSTNETWORK: true', pod({ HOSTNETWORK: true }), 'hostNetwork'],
  ['hostNetwork: "true"', pod({ hostNetwork: 'true' }), null, /hostNetwork is "true" \(string\); .*true or false/],
  ['hostPID: 1', pod({ hostPID: 1 }), null, /hostPID is 1 \(number\)/],
  ['hostIPC: "yes"', pod({ hostIPC: 'yes' }), null, /hostIPC is "yes"/],
  ['hostPID: true', pod({ hostPID: true }), 'hostPID'],
  ['hostpid: true', pod({ hostpid: true }), 'hostPID'],
  ['hostIPC: true', pod({ hostIPC: true }), 'hostIPC'],
  ['a host port', container({ ports: [{ containerPort: 80, hostPort: 8080 }] }), 'hostNetwork'],
  ['a host port as a string', container({ ports: [{ containerPort: 80, hostPort: '8080' }] }), null, /hostPort/],
  ['privileged: true', sc({ privileged: true }), 'privileged'],
  ['Privileged: true', sc({ Privileged: true }), 'privileged'],
  ['privileged: "true"', sc({ privileged: 'true' }), null, /privileged is "true"/],
  ['privileged: 1', sc({ privileged: 1 }), null, /privileged is 1/],
  ['privileged: "yes" under SecurityContext', container({ SecurityContext: { privileged: 'yes' } }), null],
  ['allowPrivilegeEscalation: true', sc({ allowPrivilegeEscalation: true }), 'privileged'],
  ['hostPath volume', pod({ volumes: [{ name: 'h', hostPath: { path: '/' } }] }), 'hostPath'],
  ['HostPath volume', pod({ volumes: [{ name: 'h', HostPath: { path: '/' } }] }), 'hostPath'],
  ['hostpath volume', pod({ volumes: [{ name: 'h', hostpath: { path: '/' } }] }), 'hostPath'],
  ['host_path volume', pod({ volumes: [{ name: 'h', host_path: { path: '/' } }] }), 'hostPath'],
  ['added capabilities', sc({ capabilities: { add: ['SYS_ADMIN'] } }), 'capabilities'],
  ['Capabilities.Add', container({ securityContext: { Capabilities: { Add: ['NET_ADMIN'] } } }), 'capabilities'],
  ['seccomp Unconfined', sc({ seccompProfile: { type: 'Unconfined' } }), 'unconfined'],
  [
    'pod seccomp Localhost',
    pod({ securityContext: { seccompProfile: { type: 'Localhost', localhostProfile: 'x' } } }),
    'unconfined',
  ],
  ['SeccompProfile spelled oddly', sc({ SeccompProfile: { type: 'Unconfined' } }), 'unconfined'],
  ['AppArmor Unconfined', sc({ appArmorProfile: { type: 'Unconfined' } }), 'unconfined'],
  ['SELinux options', sc({ seLinuxOptions: { type: 'spc_t' } }), 'unconfined'],
  ['pod SELinux options', pod({ securityContext: { seLinuxOptions: { level: 's0' } } }), 'unconfined'],
  ['procMount Unmasked', sc({ procMount: 'Unmasked' }), 'unconfined'],
  ['sysctls', pod({ securityContext: { sysctls: [{ name: 'kernel.shm_rmid_forced', value: '0' }] } }), 'unconfined'],
  [
    'AppArmor annotation unconfined',
    pod({}, {}, { metadata: { annotations: { 'container.apparmor.security.beta.kubernetes.io/main': 'unconfined' } } }),
    'unconfined',
  ],
  [
    'seccomp annotation localhost',
    { metadata: { annotations: { 'seccomp.security.alpha.kubernetes.io/pod': 'localhost/any.json' } } },
    'unconfined',
  ],
  ['hostProcess: true', sc({ windowsOptions: { hostProcess: true } }), 'privileged'],
  ['hostProcess: "true"', sc({ windowsOptions: { hostProcess: 'true' } }), null, /hostProcess is "true"/],
  [
    'mountPropagation Bidirectional',
    container({ volumeMounts: [{ name: 'v', mountPath: '/v', mountPropagation: 'Bidirectional' }] }),
    'privileged',
  ],
  ['serviceAccountName', pod({ serviceAccountName: 'admin' }), 'serviceAccount:admin'],
  ['serviceAccount (deprecated key)', pod({ serviceAccount: 'admin' }), 'serviceAccount:admin'],
  ['ServiceAccountName', pod({ ServiceAccountName: 'admin' }), 'serviceAccount:admin'],
  ['automountServiceAccountToken: true', pod({ automountServiceAccountToken: true }), 'serviceAccountToken'],
  [
    'automountServiceAccountToken: "true"',
    pod({ automountServiceAccountToken: 'true' }),
    null,
    /automountServiceAccountToken is "true"/,
  ],
  [
    'a projected service-account token',
    pod({ volumes: [{ name: 't', projected: { sources: [{ serviceAccountToken: { path: 'token' } }] } }] }),
    'serviceAccountToken',
  ],
  ['a secret volume', pod({ volumes: [{ name: 's', secret: { secretName: 'db' } }] }), 'secrets'],
  [
    'a projected secret',
    pod({ volumes: [{ name: 's', projected: { sources: [{ secret: { name: 'db' } }] } }] }),
    'secrets',
  ],
  [
    'env secretKeyRef',
    container({ env: [{ name: 'P', valueFrom: { secretKeyRef: { name: 'db', key: 'p' } } }] }),
    'secrets',
  ],
  ['envFrom secretRef', container({ envFrom: [{ secretRef: { name: 'db' } }] }), 'secrets'],
  ['nodeName', pod({ nodeName: 'control-plane-1' }), 'nodeName'],
  ['NodeName', pod({ NodeName: 'control-plane-1' }), 'nodeName'],
  ['shareProcessNamespace: true', pod({ shareProcessNamespace: true }), 'shareProcessNamespace'],
  ['hostUsers: true', pod({ hostUsers: true }), 'hostUsers'],
  ['hostUsers: "false"', pod({ hostUsers: 'false' }), null, /hostUsers is "false"/],
  [
    'a template in another namespace',
    pod({}, {}, { metadata: { namespace: 'kube-system' } }),
    null,
    /namespace "kube-system"/,
  ],
  [
    'Containers beside containers',
    { spec: { template: { spec: { containers: [{}], Containers: [{ name: 'x', image: 'evil:1' }] } } } },
    null,
    /spec.template.spec.Containers is not how Kubernetes spells "containers"/,
  ],
  ['SecurityContext', container({ SecurityContext: { runAsUser: 0 } }), null, /spells "securityContext"/],
  ['Image', container({ Image: 'evil:1' }), null, /spells "image"/],
  [
    'nested in a custom resource',
    {
      apiVersion: 'kubeflow.org/v1',
      kind: 'PyTorchJob',
      spec: { replicas: { Worker: { template: { spec: { HostNetwork: true, containers: [{ name: 'w' }] } } } } },
    },
    'hostNetwork',
  ],
];

describe('kubernetes guardrails: what is refused', () => {
  it.each(REFUSED)('%s', (_name, args, allowance, message) => {
    let caught: unknown;
    try {
      check(args);
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(ManifestRefusedError);
    const text = (caught as Error).message;
    if (message) expect(text).toMatch(message);
    if (allowance) {
      expect(text).toContain(`--allow ${allowance}`);
      // The queue allowance lifts exactly this guardrail.
      expect(() => check(args, { allow: [allowance] })).not.toThrow();
    } else {
      expect(text).toMatch(/The Kubernetes manifest is refused: /);
      // No allowance lifts a malformed switch.
      expect(() => check(args, { allow: allAllowances })).toThrow(ManifestRefusedError);
    }
  });

  const allAllowances: SecurityAllowance[] = [
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
  ];

  it.each<[string, Obj]>([
    ['false switches', pod({ hostNetwork: false, hostPID: false, hostIPC: false, shareProcessNamespace: false })],
    [
      'seccomp and AppArmor RuntimeDefault',
      sc({ seccompProfile: { type: 'RuntimeDefault' }, appArmorProfile: { type: 'RuntimeDefault' } }),
    ],
    [
      'procMount Default, runAsUser, readOnlyRootFilesystem',
      sc({ procMount: 'Default', runAsUser: 1000, readOnlyRootFilesystem: true }),
    ],
    [
      'ConfigMap and emptyDir volumes',
      pod({
        volumes: [
          { name: 'c', configMap: { name: 'cfg' } },
          { name: 'e', emptyDir: {} },
        ],
      }),
    ],
    ['an empty capabilities.add', sc({ capabilities: { add: [] } })],
    ['the run namespace named again', { metadata: { namespace: 'ml' } }],
    ['a container port without a host port', container({ ports: [{ containerPort: 80 }] })],
  ])('passes %s', (_name, args) => {
    expect(() => check(args)).not.toThrow();
  });

  it('a service account listed in the agent config or allowed by the queue passes; others name both fixes', () => {
    expect(() => check(pod({ serviceAccountName: 'trainer' }), { serviceAccounts: ['trainer'] })).not.toThrow();
    expect(() => check(pod({ serviceAccountName: 'trainer' }), { allow: ['serviceAccount:trainer'] })).not.toThrow();
    expect(() => check(pod({ serviceAccountName: 'admin' }), { serviceAccounts: ['trainer'] })).toThrow(
      /serviceAccount:admin \(spec.template.spec.serviceAccountName\).*--allow serviceAccount:admin.*kubernetes.service-accounts/,
    );
  });

  it('the token is forced off without the allowance, even with an allowed service account', () => {
    const body = check(pod({ serviceAccountName: 'trainer' }), { serviceAccounts: ['trainer'] }) as any;
    expect(body.spec.template.spec.automountServiceAccountToken).toBe(false);
    const allowed = check(
      pod({ serviceAccountName: 'trainer' }),
      {
        serviceAccounts: ['trainer'],
        allow: ['serviceAccountToken'],
      },
      true,
    ) as any;
    expect(allowed.spec.template.spec.automountServiceAccountToken).toBeUndefined();
    // With the allowance, an unnamed (default) service account still gets no token unless asked.
    const unnamed = check({}, { allow: ['serviceAccountToken'] }, true) as any;
    expect(unnamed.spec.template.spec.automountServiceAccountToken).toBe(false);
    expect(() => new Job(body).validate()).not.toThrow();
  });

  it("the agent's pull secrets are refused whatever the queue allows, the run's own included", () => {
    const own = pod({ volumes: [{ name: 's', secret: { secretName: 'liftoff-regcred-abcd1234' } }] });
    expect(() => check(own, { allow: ['secrets'] })).toThrow(/secretName names one of the agent's own objects/);
    const other = pod({ imagePullSecrets: [{ name: 'LIFTOFF-REGCRED-other' }] });
    expect(() => check(other, { allow: allAllowances })).toThrow(/imagePullSecrets\[0\].name names one of the agent's/);
    // The one Liftoff adds itself is fine.
    expect((check({}) as any).spec.template.spec.imagePullSecrets).toEqual([{ name: 'liftoff-regcred-abcd1234' }]);
  });
});

describe("kubernetes guardrails: the run outputs wiring is Liftoff's alone", () => {
  const main = (c: Obj) => pod({}, { name: 'main', ...c });
  const allAllowances: SecurityAllowance[] = ['hostPath', 'secrets', 'serviceAccountToken', 'unconfined'];
  it("another run's upload Secret is refused whatever the queue allows, by volume, env or projection", () => {
    const byEnv = main({
      env: [{ name: 'T', valueFrom: { secretKeyRef: { name: 'liftoff-upload-0193-other-run', key: 'token' } } }],
    });
    expect(() => check(byEnv, { allow: allAllowances })).toThrow(
      /env\[0\]\.valueFrom\.secretKeyRef\.name names one of the agent's own objects/,
    );
    const byVolume = pod({ volumes: [{ name: 'x', secret: { secretName: 'Liftoff-Upload-abcd1234' } }] });
    expect(() => check(byVolume, { allow: allAllowances })).toThrow(/secretName names one of the agent's own objects/);
    const projected = pod({
      volumes: [{ name: 'x', projected: { sources: [{ secret: { name: 'liftoff-upload-x' } }] } }],
    });
    expect(() => check(projected, { allow: allAllowances })).toThrow(/sources\[0\]\.secret\.name names one/);
    const helperMap = pod({ volumes: [{ name: 'x', configMap: { name: 'liftoff-outputs-helper-0123456789ab' } }] });
    expect(() => check(helperMap, { allow: allAllowances })).toThrow(/configMap\.name names one of the agent's own/);
  });

  it('a fragment cannot shadow the outputs volumes, mounts or variables', () => {
    const cases: Array<[Obj, RegExp]> = [
      [
        pod({ volumes: [{ name: 'liftoff-outputs', hostPath: { path: '/' } }] }),
        /volumes\[0\]\.name is the name of Liftoff's own outputs volume/,
      ],
      [pod({ volumes: [{ name: 'liftoff-outputs-helper', emptyDir: {} }] }), /outputs volume "liftoff-outputs-helper"/],
      [
        main({ volumeMounts: [{ name: 'd', mountPath: '/mnt/liftoff/outputs' }] }),
        /mountPath \/mnt\/liftoff is where Liftoff mounts/,
      ],
      [main({ volumeMounts: [{ name: 'd', mountPath: '/mnt/liftoff/' }] }), /mountPath \/mnt\/liftoff is where/],
      [main({ env: [{ name: 'LIFTOFF_UPLOAD_TOKEN', value: 'lu_mine' }] }), /LIFTOFF_UPLOAD_TOKEN is set by Liftoff/],
      [main({ env: [{ name: 'LIFTOFF_UPLOAD_URL', value: 'http://evil' }] }), /LIFTOFF_UPLOAD_URL is set by Liftoff/],
      [main({ env: [{ name: 'LIFTOFF_OUTPUT_DIR', value: '/tmp' }] }), /LIFTOFF_OUTPUT_DIR is set by Liftoff/],
      [
        main({ VolumeMounts: [{ name: 'd', mountPath: '/x' }] }),
        /VolumeMounts is not how Kubernetes spells "volumeMounts"/,
      ],
      [
        main({ volumeMounts: [{ name: 'd', MountPath: '/mnt/liftoff/outputs' }] }),
        /MountPath is not how Kubernetes spells/,
      ],
    ];
    for (const [fragment, message] of cases) expect(() => check(fragment, { allow: allAllowances })).toThrow(message);
    // Other mounts and variables are the job's own.
    const own = pod(
      { volumes: [{ name: 'd', emptyDir: {} }] },
      { volumeMounts: [{ name: 'd', mountPath: '/mnt/data' }], env: [{ name: 'LIFTOFF_X', value: '1' }] },
    );
    expect(() => check(own)).not.toThrow();
  });
});

describe('kubernetes guardrails: secure_mode', () => {
  const secure = { secureMode: true };
  it.each<[string, Obj, RegExp]>([
    ['a container command', container({ command: ['sh', '-c', 'id'] }), /containers\[0\].command .*secure_mode/],
    [
      'a sidecar command',
      {
        spec: { template: { spec: { containers: [{}, { name: 's', image: 'busybox:1', command: ['sleep', '1'] }] } } },
      },
      /containers\[1\].command/,
    ],
    [
      'a lifecycle exec command',
      container({ lifecycle: { postStart: { exec: { command: ['id'] } } } }),
      /exec.command/,
    ],
    [
      'init containers',
      pod({ initContainers: [{ name: 'i', image: 'busybox:1' }] }),
      /initContainers .*no init containers/,
    ],
    [
      'hostNetwork even when the queue allows it',
      pod({ hostNetwork: true }),
      /hostNetwork is locked by the agent's secure_mode/,
    ],
    ['hostPID even when the queue allows it', pod({ hostPID: true }), /hostPID is locked/],
    [
      'a host port even when the queue allows it',
      container({ ports: [{ containerPort: 1, hostPort: 1 }] }),
      /hostNetwork is locked/,
    ],
  ])('refuses %s', (_name, args, message) => {
    const allow: SecurityAllowance[] = ['hostNetwork', 'hostPID', 'hostIPC'];
    expect(() => check(args, { ...secure, allow })).toThrow(message);
    // Without secure_mode the queue's allowances apply as usual.
    expect(() => check(args, { allow })).not.toThrow();
  });

  it("keeps the job's own entry point as the pod command: only what the resource args say is locked", () => {
    const body = check({}, secure) as any;
    expect(body.spec.template.spec.containers[0].command).toEqual(['python', 'train.py']);
  });

  it('refuses an image entry-point override and local-process items; keeps args and code jobs', () => {
    const image = spec({});
    expect(secureModeRefusal(image, 'kubernetes', 'q')).toMatch(/replace an image's entry point/);
    expect(secureModeRefusal(spec({}, { entry_point: [], args: ['--x'] }), 'kubernetes', 'q')).toBeUndefined();
    const code = LaunchSpec.parse({ source: { type: 'code', archive_id: 'a1' }, entry_point: ['python', 'x.py'] });
    expect(secureModeRefusal(code, 'local-container', 'q')).toBeUndefined();
    expect(secureModeRefusal(code, 'local-process', 'q')).toMatch(/Queue "q" runs local-process jobs/);
  });
});

describe('kubernetes resource args: cluster access only from the agent config', () => {
  it.each(['configFile', 'context', 'config-file', 'ConfigFile', 'kubeconfig', 'kube_context', 'serviceAccountDir'])(
    'refuses %s, naming the key and the agent-config fix',
    (key) => {
      expect(() => splitResourceArgs({ [key]: '/tmp/evil-kubeconfig' })).toThrow(
        new RegExp(
          `resource_args.kubernetes.${key} is refused: .*set kubernetes.config-file and kubernetes.context in the agent's launch-config.yaml`,
        ),
      );
    },
  );
});
