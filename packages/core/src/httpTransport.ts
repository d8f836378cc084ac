import { Agent as HttpAgent, request as httpRequest, type ClientRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { rootCertificates } from 'node:tls';

/** A response whose body is read at most once: as text, JSON, bytes, or a stream of chunks. */
export interface HttpAnswer {
  readonly status: number;
  readonly ok: boolean;
  text(): Promise<string>;
  json(): Promise<unknown>;
  bytes(): Promise<Buffer>;
  /** The body as it arrives (server-sent events). */
  readonly body: AsyncIterable<Buffer>;
}

export interface HttpCall {
  method: string;
  url: URL;
  headers: Record<string, string>;
  body?: Uint8Array | string;
  /** A body streamed from `source` (never held whole in memory), of exactly `length` bytes. Not with `body`. */
  stream?: { source: Iterable<Uint8Array> | AsyncIterable<Uint8Array>; length: number };
  signal: AbortSignal;
  /** Called as the body is handed to the socket, in pieces of UPLOAD_PIECE bytes: bytes sent so far, and of how many. */
  onUploadProgress?: (sent: number, total: number) => void;
}

/** The piece size of a body whose upload reports progress. */
export const UPLOAD_PIECE = 256 * 1024;

/**
 * The API client's transport, on node:http and node:https rather than the global fetch. Node's fetch is undici,
 * which compiles its WebAssembly HTTP parser on first use: ~150 ms and ~10 MB in every process that makes a request
 * (each `liftoff` command, each agent), against ~20 ms for node:http, whose parser is built into node. The client
 * needs little of fetch: one request, one response, a body read whole or streamed, an abort signal; this is that.
 *
 * Connections are kept alive for reuse (an agent's polls and syncs), and a kept-alive idle socket does not keep
 * the process running (node's agents unref them), so a CLI command exits when its work is done.
 */
export class HttpTransport {
  private readonly agent: HttpAgent | HttpsAgent;
  private readonly secure: boolean;

  /** `ca`: PEM of extra CAs to trust for https, besides the system's. */
  constructor(baseUrl: URL, ca?: string) {
    this.secure = baseUrl.protocol === 'https:';
    this.agent = this.secure
      ? new HttpsAgent({ keepAlive: true, ...(ca ? { ca: [...rootCertificates, ca] } : {}) })
      : new HttpAgent({ keepAlive: true });
  }

  send(call: HttpCall): Promise<HttpAnswer> {
    const body = call.body === undefined ? undefined : Buffer.from(call.body);
    const length = body?.length ?? call.stream?.length;
    const headers = { ...call.headers, ...(length !== undefined ? { 'content-length': String(length) } : {}) };
    const send = this.secure ? httpsRequest : httpRequest;
    return new Promise((resolve, reject) => {
      const req = send(call.url, { method: call.method, headers, agent: this.agent, signal: call.signal }, (res) =>
        resolve(answerOf(res)),
      );
      req.on('error', reject);
      if (call.stream) {
        pipeline(Readable.from(call.stream.source), req).catch((e: unknown) => req.destroy(e as Error));
        return;
      }
      if (!body || !call.onUploadProgress) return void req.end(body);
      writeInPieces(req, body, call.onUploadProgress).then(
        () => req.end(),
        (e: unknown) => req.destroy(e as Error),
      );
    });
  }

  close(): void {
    this.agent.destroy();
  }
}

/** Writes `body` a piece at a time, waiting for the socket to drain, so progress follows what was really sent. */
async function writeInPieces(
  req: ClientRequest,
  body: Buffer,
  onProgress: (sent: number, total: number) => void,
): Promise<void> {
  for (let at = 0; at < body.length; at += UPLOAD_PIECE) {
    const piece = body.subarray(at, at + UPLOAD_PIECE);
    if (req.destroyed) return;
    if (!req.write(piece)) await new Promise<void>((r) => req.once('drain', r).once('close', r));
    onProgress(Math.min(at + piece.length, body.length), body.length);
  }
}

function answerOf(res: IncomingMessage): HttpAnswer {
  const status = res.statusCode ?? 0;
  let taken = false;
  const take = () => {
    if (taken) throw new Error('The response body was already read.');
    taken = true;
    return res;
  };
  const bytes = async () => {
    const chunks: Buffer[] = [];
    for await (const chunk of take()) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks);
  };
  return {
    status,
    ok: status >= 200 && status < 300,
    bytes,
    text: async () => (await bytes()).toString('utf8'),
    json: async () => JSON.parse((await bytes()).toString('utf8')) as unknown,
    get body() {
      return take() as AsyncIterable<Buffer>;
    },
  };
}
