import { RunnerError } from '@liftoff/core';
import type { GcpClientSettings } from '../../environments/types.js';
import type { CustomJobView } from './state.js';

/** A Google API error answer (`{error: {code, message, status}}`), kept with its HTTP status. */
export class GoogleApiError extends Error {
  constructor(
    readonly httpStatus: number,
    readonly status: string,
    message: string,
  ) {
    super(message);
    this.name = 'GoogleApiError';
  }
}

export const isNotFound = (e: unknown): boolean => e instanceof GoogleApiError && e.httpStatus === 404;

export interface LogEntry {
  insertId?: string;
  timestamp?: string;
  textPayload?: string;
  jsonPayload?: { message?: unknown };
  resource?: { labels?: { task_name?: string } };
}

/**
 * The four JobService calls and Logging's entries:list the runner needs, as plain REST through the agent's one auth
 * client. Hand-written on purpose: @google-cloud/aiplatform is 115 MB for what is five JSON requests here, and the
 * auth library already refreshes the token.
 */
export class VertexApi {
  readonly base: string;
  private readonly logging: string;

  constructor(private readonly gcp: GcpClientSettings) {
    this.base = `${gcp.endpoints.aiplatform ?? `https://${gcp.region}-aiplatform.googleapis.com`}/v1`;
    this.logging = `${gcp.endpoints.logging ?? 'https://logging.googleapis.com'}/v2`;
  }

  /** `projects/<project>/locations/<region>`: where the agent's jobs live. */
  get parent(): string {
    return `projects/${this.gcp.project}/locations/${this.gcp.region}`;
  }

  create(body: unknown): Promise<CustomJobView> {
    return this.call('POST', `${this.base}/${this.parent}/customJobs`, body);
  }

  get(name: string): Promise<CustomJobView> {
    return this.call('GET', `${this.base}/${name}`);
  }

  async cancel(name: string): Promise<void> {
    await this.call('POST', `${this.base}/${name}:cancel`, {});
  }

  /** Every job with all of `labels` (one filter of `labels.<k>="<v>"` terms), all pages. */
  async listByLabels(labels: Record<string, string>): Promise<CustomJobView[]> {
    const filter = Object.entries(labels)
      .map(([k, v]) => `labels.${k}="${v}"`)
      .join(' AND ');
    const out: CustomJobView[] = [];
    let pageToken: string | undefined;
    do {
      const q = new URLSearchParams({ filter, pageSize: '100', ...(pageToken ? { pageToken } : {}) });
      const page = await this.call<{ customJobs?: CustomJobView[]; nextPageToken?: string }>(
        'GET',
        `${this.base}/${this.parent}/customJobs?${q}`,
      );
      out.push(...(page.customJobs ?? []));
      pageToken = page.nextPageToken || undefined;
    } while (pageToken);
    return out;
  }

  entries(filter: string, pageToken?: string): Promise<{ entries?: LogEntry[]; nextPageToken?: string }> {
    return this.call('POST', `${this.logging}/entries:list`, {
      resourceNames: [`projects/${this.gcp.project}`],
      filter,
      orderBy: 'timestamp asc',
      pageSize: 1000,
      ...(pageToken ? { pageToken } : {}),
    });
  }

  private async call<T>(method: string, url: string, body?: unknown): Promise<T> {
    const token = await this.gcp.accessToken();
    let res: Response;
    try {
      res = await fetch(url, {
        method,
        headers: {
          authorization: `Bearer ${token}`,
          'x-goog-user-project': this.gcp.project,
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal: AbortSignal.timeout(60_000),
      });
    } catch (e) {
      throw new RunnerError(`Could not reach ${new URL(url).origin}: ${(e as Error).message}`, e);
    }
    const text = await res.text();
    let parsed: unknown;
    try {
      parsed = text ? JSON.parse(text) : {};
    } catch {
      parsed = undefined;
    }
    if (!res.ok) {
      const err = (parsed as { error?: { message?: string; status?: string } } | undefined)?.error;
      throw new GoogleApiError(res.status, err?.status ?? String(res.status), err?.message ?? text.slice(0, 500));
    }
    if (typeof parsed !== 'object' || parsed === null) {
      throw new RunnerError(`${method} ${new URL(url).pathname} answered with something that is not JSON.`);
    }
    return parsed as T;
  }
}
