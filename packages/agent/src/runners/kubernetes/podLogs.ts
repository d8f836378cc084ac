import http from 'node:http';
import https from 'node:https';
import { StringDecoder } from 'node:string_decoder';
import type { KubeConfig, V1Pod } from '@kubernetes/client-node';
import type { Logger } from 'pino';

/** A position in a container's log: the last timestamp delivered and how many lines carried it. */
interface Position {
  ts: bigint;
  atTs: number;
}

/** How long a followed stream may stay silent before it is re-opened (a half-open connection sends nothing). */
const SILENCE_MS = 30_000;

/**
 * Streams the logs of a run's pods to its output, line by line: every container instance of every pod, in order,
 * across container restarts (a new instance is followed when the kubelet starts it; one that came and went between
 * two pod events is read with `previous`) and across dropped log connections (re-opened from the last timestamp,
 * skipping lines already delivered).
 *
 * client-node's `Log.log` pipes the response without forwarding its errors, so a dropped connection would leave
 * the follower waiting forever; the request is made here with the library's own auth and TLS options instead.
 */
export class PodLogs {
  private readonly seen = new Set<string>();
  private readonly chains = new Map<string, Promise<void>>();
  /** Latest container status by "pod/container": instance number and whether it has ended. */
  private readonly live = new Map<string, { instance: number; ended: boolean; podGone: boolean }>();
  private readonly active = new Set<AbortController>();
  private stopped = false;

  constructor(
    private readonly kc: KubeConfig,
    private readonly namespace: string,
    private readonly onOutput: (text: string) => void,
    private readonly logger: Logger,
  ) {}

  /** Called with every state of every pod of the run. */
  update(pod: V1Pod, deleted: boolean): void {
    const name = pod.metadata?.name;
    if (!name || this.stopped) return;
    const containers = pod.spec?.containers ?? [];
    const prefix = (c: string) => (containers.length > 1 ? `[${c}] ` : '');
    for (const s of pod.status?.containerStatuses ?? []) {
      const key = `${name}/${s.name}`;
      const instance = s.restartCount ?? 0;
      const ended = !s.state?.running && !!(s.state?.terminated ?? s.lastState?.terminated);
      this.live.set(key, { instance, ended: ended || deleted, podGone: deleted });
      if (deleted) continue;
      // An instance that started and ended between two events was never followed: its log is `previous`.
      if (instance > 0 && !this.seen.has(`${key}#${instance - 1}`)) {
        this.seen.add(`${key}#${instance - 1}`);
        this.enqueue(key, async () => void (await this.read(name, s.name, prefix(s.name), { previous: true })));
      }
      const started = !!(s.state?.running ?? s.state?.terminated);
      if (started && !this.seen.has(`${key}#${instance}`)) {
        this.seen.add(`${key}#${instance}`);
        this.enqueue(key, () => this.follow(name, s.name, prefix(s.name), key, instance));
      }
    }
  }

  /** Resolves once every stream has delivered its container's whole log, or after `timeoutMs`. */
  async drain(timeoutMs: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all([...this.chains.values()]),
      new Promise<void>((r) => {
        timer = setTimeout(r, timeoutMs);
      }),
    ]);
    clearTimeout(timer);
  }

  stop(): void {
    this.stopped = true;
    for (const c of this.active) c.abort();
  }

  /** Streams of one container run one after the other, so instances appear in order. */
  private enqueue(key: string, fn: () => Promise<void>): void {
    const next = (this.chains.get(key) ?? Promise.resolve())
      .then(fn)
      .catch((err: unknown) => this.logger.warn({ err, key }, 'pod log stream failed'));
    this.chains.set(key, next);
  }

  private async follow(pod: string, container: string, prefix: string, key: string, instance: number): Promise<void> {
    let from: Position | undefined;
    for (let attempt = 0; !this.stopped; attempt++) {
      const endedBefore = this.instanceEnded(key, instance);
      from = await this.read(pod, container, prefix, { follow: !endedBefore, from });
      if (endedBefore || this.stopped) return;
      // A follow ends when the container does, or when the connection drops: the pod status tells which.
      await new Promise((r) => setTimeout(r, Math.min(250 * 2 ** attempt, 2_000)));
      if (this.instanceEnded(key, instance)) {
        // One last read from the position picks up whatever a dropped stream missed before the end.
        await this.read(pod, container, prefix, { follow: false, from });
        return;
      }
    }
  }

  private instanceEnded(key: string, instance: number): boolean {
    const s = this.live.get(key);
    return !s || s.podGone || s.instance !== instance || s.ended;
  }

  /** One log request; returns the position after the last delivered line. */
  private async read(
    pod: string,
    container: string,
    prefix: string,
    opts: { follow?: boolean; previous?: boolean; from?: Position | undefined },
  ): Promise<Position | undefined> {
    const cluster = this.kc.getCurrentCluster();
    if (!cluster) throw new Error('no current cluster in the kubeconfig');
    const url = new URL(`${cluster.server}/api/v1/namespaces/${this.namespace}/pods/${pod}/log`);
    url.searchParams.set('container', container);
    url.searchParams.set('timestamps', 'true');
    if (opts.follow) url.searchParams.set('follow', 'true');
    if (opts.previous) url.searchParams.set('previous', 'true');
    if (opts.from) url.searchParams.set('sinceTime', secondsOf(opts.from.ts));
    const reqOpts: https.RequestOptions = { method: 'GET' };
    await this.kc.applyToHTTPSOptions(reqOpts);
    const abort = new AbortController();
    this.active.add(abort);
    let position = opts.from;
    let skip = opts.from;
    try {
      const res = await new Promise<http.IncomingMessage>((resolve, reject) => {
        const req = (url.protocol === 'https:' ? https : http).request(url, { ...reqOpts, signal: abort.signal });
        req.on('response', resolve).on('error', reject).end();
      });
      if (res.statusCode !== 200) {
        res.resume();
        // 400 "waiting to start" or the pod is gone: nothing to read (yet); the next pod event retries.
        return position;
      }
      const decoder = new StringDecoder('utf8');
      let partial = '';
      let silence: NodeJS.Timeout | undefined;
      const arm = () => {
        clearTimeout(silence);
        if (opts.follow) silence = setTimeout(() => abort.abort(), SILENCE_MS);
      };
      arm();
      const emit = (line: string) => {
        const sp = line.indexOf(' ');
        const ts = sp > 0 ? parseTimestamp(line.slice(0, sp)) : undefined;
        const text = ts === undefined ? line : line.slice(sp + 1);
        if (ts !== undefined) {
          if (skip && (ts < skip.ts || (ts === skip.ts && skip.atTs-- > 0))) return;
          skip = undefined;
          position = position && position.ts === ts ? { ts, atTs: position.atTs + 1 } : { ts, atTs: 1 };
        }
        this.onOutput(`${prefix}${text}\n`);
      };
      try {
        for await (const chunk of res) {
          arm();
          partial += decoder.write(chunk as Buffer);
          let nl: number;
          while ((nl = partial.indexOf('\n')) >= 0) {
            emit(partial.slice(0, nl));
            partial = partial.slice(nl + 1);
          }
        }
      } catch {
        // Dropped or aborted: the caller decides whether to re-open from `position`.
      } finally {
        clearTimeout(silence);
      }
      partial += decoder.end();
      if (partial) emit(partial);
      return position;
    } catch (err) {
      if (!this.stopped) this.logger.debug({ err, pod, container }, 'log request failed');
      return position;
    } finally {
      this.active.delete(abort);
    }
  }
}

/** RFC 3339 with up to nanoseconds → nanoseconds since the epoch (fractions vary in length, so strings do not sort). */
export function parseTimestamp(s: string): bigint | undefined {
  const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)$/.exec(s);
  if (!m) return undefined;
  const secs = Date.parse(`${m[1]}${m[3]}`);
  if (Number.isNaN(secs)) return undefined;
  return BigInt(secs) * 1_000_000n + BigInt((m[2] ?? '').padEnd(9, '0'));
}

const secondsOf = (ns: bigint): string =>
  new Date(Number(ns / 1_000_000_000n) * 1000).toISOString().replace('.000', '');
