import { listen } from './http.js';

/**
 * A fake GCE/GKE metadata server on loopback: what google-auth-library's Compute client (and gcloud) ask it, with
 * the checks the real one makes. Requests without `Metadata-Flavor: Google` are refused (403, as on GCE); answers
 * carry `Metadata-Flavor: Google`, which gcp-metadata requires. Each token fetch mints a new token
 * (`ya29.fake-<n>`) valid `expiresIn` seconds, so a test sees which token a caller got and how many were fetched.
 */
export interface FakeMetadata {
  /** `127.0.0.1:<port>`, the value of GCE_METADATA_HOST. */
  host: string;
  /** The environment that points ADC (and gcloud) at it and nowhere else. */
  env: Record<string, string>;
  /** Token fetches so far. */
  tokenFetches(): number;
  /** Every token minted, in order. */
  tokens: string[];
  /** Lifetime of the tokens minted from now on, in seconds. */
  expiresIn: number;
  /** Requests refused for a missing Metadata-Flavor header. */
  refused(): number;
  /** Paths asked for that the fake does not serve (a test fails on drift). */
  unknown: string[];
  /** When set, token requests answer this status (as when no service account is attached: 404). */
  tokenStatus?: number;
}

const SCOPE = 'https://www.googleapis.com/auth/cloud-platform';

export async function startFakeMetadata(
  opts: { project?: string; email?: string; expiresIn?: number; token?: string } = {},
): Promise<FakeMetadata> {
  const project = opts.project ?? 'liftoff-test-project';
  const email = opts.email ?? `liftoff-agent@${project}.iam.gserviceaccount.com`;
  let fetches = 0;
  let refused = 0;
  const fake: Omit<FakeMetadata, 'host' | 'env'> = {
    tokenFetches: () => fetches,
    tokens: [],
    expiresIn: opts.expiresIn ?? 3599,
    refused: () => refused,
    unknown: [],
  };
  const base = '/computeMetadata/v1/';
  const { host } = await listen((req, res) => {
    const url = new URL(req.url ?? '/', 'http://metadata');
    const text = (code: number, body: string, type = 'application/text') => {
      res.writeHead(code, { 'metadata-flavor': 'Google', 'content-type': type });
      res.end(body);
    };
    if (req.headers['metadata-flavor'] !== 'Google') {
      refused++;
      return text(403, 'Missing required header "Metadata-Flavor": "Google"', 'text/html');
    }
    const raw = url.pathname.startsWith(base) ? url.pathname.slice(base.length).replace(/\/$/, '') : url.pathname;
    // The account is named "default" or by its email (gcloud asks by email once it knows it).
    const path = raw.replace(`instance/service-accounts/${email}`, 'instance/service-accounts/default');
    switch (path) {
      case '':
      case 'instance':
        return text(200, 'instance/\nproject/\n');
      case 'project/project-id':
        return text(200, project);
      case 'project/numeric-project-id': // gcloud's "is this GCE" probe
        return text(200, '123456789012');
      case 'instance/zone':
        return text(200, 'projects/123456789012/zones/us-central1-a');
      case 'universe/universe-domain':
        return text(200, 'googleapis.com');
      case 'instance/service-accounts/default/email':
        return text(200, email);
      case 'instance/service-accounts/default/token': {
        fetches++;
        if (fake.tokenStatus) return text(fake.tokenStatus, 'service account not found', 'text/html');
        // A fixed token (`opts.token`) lets a test registry's htpasswd hold it before the agent asks.
        const token = opts.token ?? `ya29.fake-${fetches}-${Math.random().toString(36).slice(2, 8)}`;
        fake.tokens.push(token);
        const body = { access_token: token, expires_in: fake.expiresIn, token_type: 'Bearer' };
        return text(200, JSON.stringify(body), 'application/json');
      }
      case 'instance/service-accounts/default':
      case 'instance/service-accounts/default/aliases':
        return url.searchParams.get('recursive')
          ? text(200, JSON.stringify({ email, aliases: ['default'], scopes: [SCOPE] }), 'application/json')
          : text(200, 'aliases\nemail\nidentity\nscopes\ntoken\n');
      case 'instance/service-accounts/default/scopes':
        return text(200, `${SCOPE}\n`);
      case 'instance/service-accounts':
        return text(200, `default/\n${email}/\n`);
      default:
        fake.unknown.push(url.pathname);
        return text(404, 'Not Found', 'text/html');
    }
  });
  return Object.assign(fake, {
    host,
    // GCE_METADATA_HOST / _IP: gcp-metadata and Python google-auth; GCE_METADATA_ROOT: gcloud's own reader.
    env: {
      GCE_METADATA_HOST: host,
      GCE_METADATA_IP: host,
      GCE_METADATA_ROOT: host,
      METADATA_SERVER_DETECTION: 'assume-present',
    },
  }) as FakeMetadata;
}

/**
 * The Google part of an agent's (or this process's) environment: ADC finds nothing but what `extra` adds
 * (no key file, an empty gcloud config dir, HOME at a temp dir), the metadata server is not looked for unless
 * `extra` points at the fake, and nothing beyond loopback is ever contacted.
 */
export function gcpEnv(home: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    HOME: home,
    CLOUDSDK_CONFIG: `${home}/gcloud`,
    METADATA_SERVER_DETECTION: 'none',
    ...extra,
  };
}

/** The variables of the Google auth stack a test must control (unset unless a test sets them). */
export const GCP_VARIABLES = [
  'GOOGLE_APPLICATION_CREDENTIALS',
  'GOOGLE_CLOUD_PROJECT',
  'GCLOUD_PROJECT',
  'GCE_METADATA_HOST',
  'GCE_METADATA_IP',
  'GCE_METADATA_ROOT',
  'METADATA_SERVER_DETECTION',
  'CLOUDSDK_CONFIG',
  'STORAGE_EMULATOR_HOST',
  'CLOUDSDK_API_ENDPOINT_OVERRIDES_IAMCREDENTIALS',
  'CLOUDSDK_API_ENDPOINT_OVERRIDES_AIPLATFORM',
  'CLOUDSDK_API_ENDPOINT_OVERRIDES_LOGGING',
];
