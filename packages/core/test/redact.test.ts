import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { REDACTED, isSecretKey, redactConfig } from '../src/redact.js';

/** Secret-looking key names, in the spellings configs use (snake, kebab, camel, upper). */
const SECRET_BASES = [
  'password',
  'passwd',
  'secret',
  'client_secret',
  'token',
  'access_token',
  'credentials',
  'Authorization',
  'auths',
  'auth',
  'api_key',
  'apiKey',
  'aws_access_key_id',
  'AWS_SECRET_ACCESS_KEY',
  'aws_session_token',
  'private_key',
  'account-key',
  'connection_string',
  'sshKey',
  'env',
  'pwd',
];
const secretKey = fc
  .tuple(fc.constantFrom('', 'db_', 'registry-', 'my.', 'X'), fc.constantFrom(...SECRET_BASES), fc.boolean())
  .map(([pre, base, upper]) => (upper ? `${pre}${base}`.toUpperCase() : `${pre}${base}`));
const plainKey = fc
  .oneof(
    fc.constantFrom('name', 'region', 'image', 'type', 'uri', 'count', 'queue', 'host', 'project', 'user'),
    fc.stringMatching(/^[a-z]{1,8}$/),
  )
  .filter((k) => !isSecretKey(k) && !/env(s|vars)?$/.test(k) && k !== 'builder' && k !== 'git');

let counter = 0;
/** Leaves planted under secret keys: each carries a marker that must not survive. */
const secretLeaf = fc.oneof(
  fc.nat().map(() => `S3CR3T-${counter++}`),
  fc.integer(),
  fc.boolean(),
);
const plainLeaf = fc.oneof(
  fc.string().filter((s) => !s.includes('S3CR3T') && !s.includes('PRIVATE KEY') && !s.includes('://')),
  fc.integer(),
  fc.boolean(),
  fc.constant(null),
);

/** Arbitrary nesting of objects and arrays, where any key may be secret-looking. */
const { tree } = fc.letrec<{ tree: unknown; secretTree: unknown }>((tie) => ({
  tree: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    plainLeaf,
    fc.array(tie('tree'), { maxLength: 3 }),
    fc.dictionary(plainKey, tie('tree'), { maxKeys: 4 }),
    fc.dictionary(secretKey, tie('secretTree'), { minKeys: 1, maxKeys: 3 }),
  ),
  secretTree: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    secretLeaf,
    fc.array(tie('secretTree'), { maxLength: 3 }),
    fc.dictionary(fc.oneof(plainKey, secretKey), tie('secretTree'), { maxKeys: 3 }),
  ),
}));

/** Every non-null leaf below a secret-looking key, in the redacted output. */
function leavesUnderSecrets(value: unknown, underSecret: boolean, out: unknown[] = []): unknown[] {
  if (Array.isArray(value)) value.forEach((v) => leavesUnderSecrets(v, underSecret, out));
  else if (value !== null && typeof value === 'object')
    for (const [k, v] of Object.entries(value))
      leavesUnderSecrets(v, underSecret || isSecretKey(k) || /env(s|vars)?$/i.test(k), out);
  else if (underSecret && value !== null) out.push(value);
  return out;
}

describe('redactConfig', () => {
  it('leaves no value under a secret-looking key, at any nesting (property)', () => {
    fc.assert(
      fc.property(fc.dictionary(fc.oneof(plainKey, secretKey), tree), (config) => {
        const redacted = redactConfig(config);
        expect(JSON.stringify(redacted)).not.toContain('S3CR3T');
        for (const leaf of leavesUnderSecrets(redacted, false)) expect(leaf).toBe(REDACTED);
      }),
      { seed: 1212, numRuns: 500 },
    );
  });

  it('keeps everything that is not secret, and never changes its input (property)', () => {
    const plainTree = fc.letrec<{ t: unknown }>((tie) => ({
      t: fc.oneof(
        { depthSize: 'small' },
        plainLeaf,
        fc.array(tie('t'), { maxLength: 3 }),
        fc.dictionary(plainKey, tie('t'), { maxKeys: 4 }),
      ),
    })).t;
    fc.assert(
      fc.property(fc.dictionary(plainKey, plainTree), (config) => {
        const before = structuredClone(config);
        expect(redactConfig(config)).toEqual(config);
        expect(config).toEqual(before);
      }),
      { seed: 1213, numRuns: 300 },
    );
  });

  it('redacts the known secret sections of the agent config and keeps its look-alike names', () => {
    const config = {
      entity: 'team',
      queues: ['q'],
      builder: {
        type: 'kaniko',
        'build-context-store': 's3://bucket/ctx',
        credentials: { username: 'robot', region: 'eu-west-1', nested: { anything: 'x' } },
        'kaniko-config': { auths: { 'reg.example.com': { auth: 'dXNlcjpwYXNz' } }, plain: 'y' },
        'secret-name': 'registry-creds',
        'secret-key': '.dockerconfigjson',
      },
      git: { 'credential-hosts': ['github.com'] },
      environment: { type: 'aws', region: 'us-east-1' },
      registry: { type: 'ecr', uri: 'https://user:hunter2@registry.example.com/repo' },
      kubernetes: { 'config-file': '/home/a/.kube/config', namespace: 'ml' },
      extra: { ca: '-----BEGIN RSA PRIVATE KEY-----\nMIIE...\n-----END RSA PRIVATE KEY-----' },
    };
    expect(redactConfig(config)).toEqual({
      ...config,
      builder: {
        ...config.builder,
        credentials: { username: REDACTED, region: REDACTED, nested: { anything: REDACTED } },
        'kaniko-config': { auths: { 'reg.example.com': { auth: REDACTED } }, plain: REDACTED },
      },
      registry: { type: 'ecr', uri: `https://user:${REDACTED}@registry.example.com/repo` },
      extra: { ca: REDACTED },
    });
  });

  it('redacts secret-looking keys everywhere else, in any spelling', () => {
    const out = redactConfig({
      a: { Password: 'p', 'Secret-Access-Key': 's', apiToken: 't', AUTHORIZATION: 'Bearer x', pwd: 'z' },
      list: [{ private_key: 'k' }, { name: 'ok' }],
      env: { HF_TOKEN: 'v', PLAIN: 'w' },
      'job-env': ['HF_TOKEN'],
      n: { password: null, token: 42 },
    });
    expect(out).toEqual({
      a: {
        Password: REDACTED,
        'Secret-Access-Key': REDACTED,
        apiToken: REDACTED,
        AUTHORIZATION: REDACTED,
        pwd: REDACTED,
      },
      list: [{ private_key: REDACTED }, { name: 'ok' }],
      env: { HF_TOKEN: REDACTED, PLAIN: REDACTED },
      'job-env': ['HF_TOKEN'],
      n: { password: null, token: REDACTED },
    });
  });

  it('survives hostile shapes: deep nesting and __proto__ keys', () => {
    let deep: Record<string, unknown> = { password: 'bottom' };
    for (let i = 0; i < 10_000; i++) deep = { d: deep };
    expect(JSON.stringify(redactConfig(deep))).not.toContain('bottom');
    const proto = JSON.parse('{"__proto__": {"token": "t", "polluted": true}}') as Record<string, unknown>;
    const out = redactConfig(proto);
    expect(({} as { polluted?: boolean }).polluted).toBeUndefined();
    expect(JSON.stringify(out)).toBe('{"__proto__":{"token":"[redacted]","polluted":true}}');
  });
});
