import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { AwsError, validationError } from './errors.js';
import { validateInput, validateShape, type ModelName, type ServiceModel } from './models.js';
import { verifySigV4, type IssuedKey } from './sigv4.js';

/** One operation's implementation: the validated input in, the output (checked against the model) out. */
export type Handler = (input: Record<string, unknown>) => Promise<Record<string, unknown>> | Record<string, unknown>;

export interface RecordedCall {
  service: ModelName;
  operation: string;
  input: Record<string, unknown>;
  accessKeyId: string;
  /** The error type returned, if any. */
  error?: string;
}

const SIGNING_NAMES: Record<ModelName, string> = { sagemaker: 'sagemaker', logs: 'logs', ecr: 'ecr', sts: 'sts' };

/**
 * The wire side of the fake: one loopback http.Server speaking awsJson1_1 (routed by X-Amz-Target's prefix) and
 * awsQuery (STS: form body, XML answer), every request SigV4-checked and its input validated against the official
 * model before a handler sees it; plus the container-credentials endpoint the SDK's http provider reads.
 */
export class FakeAwsServer {
  readonly calls: RecordedCall[] = [];
  /** Access key ids → keys: what SigV4 checks accept. */
  readonly keys = new Map<string, IssuedKey>();
  readonly credentialsToken = `ct-${randomBytes(12).toString('hex')}`;
  /** How long a key from the credentials endpoint lives (ms). */
  credentialsTtlMs = 15 * 60_000;
  credentialFetches = 0;
  private server: Server | undefined;
  private readonly handlers = new Map<ModelName, Map<string, Handler>>();
  private readonly byPrefix = new Map<string, ModelName>();
  port = 0;

  constructor(readonly models: Record<ModelName, ServiceModel>) {
    for (const [name, model] of Object.entries(models) as [ModelName, ServiceModel][]) {
      if (model.metadata.targetPrefix) this.byPrefix.set(model.metadata.targetPrefix, name);
    }
  }

  get endpoint(): string {
    return `http://127.0.0.1:${this.port}`;
  }
  get credentialsUri(): string {
    return `${this.endpoint}/container-credentials`;
  }

  on(service: ModelName, operation: string, handler: Handler): void {
    if (!this.models[service].operations[operation]) throw new Error(`${service} has no operation ${operation}`);
    let ops = this.handlers.get(service);
    if (!ops) this.handlers.set(service, (ops = new Map()));
    ops.set(operation, handler);
  }

  /** A long-lived static key (for the AWS CLI and tests that use env credentials). */
  staticKey(): IssuedKey {
    const key = { accessKeyId: `AKIA${randomBytes(8).toString('hex').toUpperCase()}`, secretAccessKey: 'x'.repeat(40) };
    this.keys.set(key.accessKeyId, key);
    return key;
  }

  async listen(): Promise<void> {
    this.server = createServer((req, res) => void this.serve(req, res));
    await new Promise<void>((r) => this.server?.listen(0, '127.0.0.1', r));
    this.port = (this.server.address() as AddressInfo).port;
  }

  async close(): Promise<void> {
    const s = this.server;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((r) => s.close(() => r()));
  }

  callsOf(operation: string): RecordedCall[] {
    return this.calls.filter((c) => c.operation === operation);
  }

  private async serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks);
    if (req.method === 'GET' && req.url === '/container-credentials') return this.containerCredentials(req, res);
    const target = req.headers['x-amz-target'];
    if (typeof target === 'string') return this.json(req, res, body, target);
    if (String(req.headers['content-type'] ?? '').startsWith('application/x-www-form-urlencoded')) {
      return this.query(req, res, body);
    }
    res.writeHead(404).end();
  }

  /** The ECS/EKS container credentials endpoint: a fresh key per fetch, living `credentialsTtlMs`. */
  private containerCredentials(req: IncomingMessage, res: ServerResponse): void {
    if (req.headers.authorization !== this.credentialsToken) {
      res.writeHead(403, { 'content-type': 'application/json' }).end('{"message":"bad token"}');
      return;
    }
    this.credentialFetches++;
    const key: IssuedKey = {
      accessKeyId: `ASIA${String(this.credentialFetches).padStart(4, '0')}${randomBytes(6).toString('hex').toUpperCase()}`,
      secretAccessKey: randomBytes(20).toString('base64'),
      sessionToken: randomBytes(24).toString('base64'),
      expiresAt: Date.now() + this.credentialsTtlMs,
    };
    this.keys.set(key.accessKeyId, key);
    res.writeHead(200, { 'content-type': 'application/json' }).end(
      JSON.stringify({
        AccessKeyId: key.accessKeyId,
        SecretAccessKey: key.secretAccessKey,
        Token: key.sessionToken,
        Expiration: new Date(key.expiresAt ?? 0).toISOString(),
      }),
    );
  }

  private async json(req: IncomingMessage, res: ServerResponse, body: Buffer, target: string): Promise<void> {
    const [prefix = '', operation = ''] = target.split('.');
    const service = this.byPrefix.get(prefix);
    const send = (status: number, payload: unknown, type?: string) =>
      res
        .writeHead(status, {
          'content-type': 'application/x-amz-json-1.1',
          'x-amzn-requestid': randomUUID(),
          ...(type ? { 'x-amzn-errortype': type } : {}),
        })
        .end(JSON.stringify(payload));
    let call: RecordedCall | undefined;
    try {
      if (!service) throw new AwsError('UnknownOperationException', `Unknown target ${target}`);
      let input: Record<string, unknown>;
      try {
        input = body.length ? (JSON.parse(body.toString('utf8')) as Record<string, unknown>) : {};
      } catch {
        throw new AwsError('SerializationException', 'The request body is not valid JSON');
      }
      const signed = await verifySigV4(req as Required<IncomingMessage>, body, this.keys, Date.now());
      call = { service, operation, input, accessKeyId: signed.key.accessKeyId };
      this.calls.push(call);
      if (signed.service !== SIGNING_NAMES[service]) {
        throw new AwsError('InvalidSignatureException', `Credential should be scoped to ${SIGNING_NAMES[service]}`);
      }
      send(200, await this.dispatch(service, operation, input));
    } catch (e) {
      const err = e instanceof AwsError ? e : new AwsError('InternalFailure', String(e), 500);
      if (call) call.error = err.type;
      send(err.status, { __type: err.type, message: err.message }, err.type);
    }
  }

  private async query(req: IncomingMessage, res: ServerResponse, body: Buffer): Promise<void> {
    const params = new URLSearchParams(body.toString('utf8'));
    const operation = params.get('Action') ?? '';
    const xml = (status: number, text: string) =>
      res.writeHead(status, { 'content-type': 'text/xml' }).end(`<?xml version="1.0" encoding="UTF-8"?>\n${text}`);
    const requestId = randomUUID();
    try {
      const signed = await verifySigV4(req as Required<IncomingMessage>, body, this.keys, Date.now());
      if (params.get('Version') !== this.models.sts.metadata.apiVersion) {
        throw new AwsError('InvalidParameterValue', `Unsupported Version ${params.get('Version') ?? ''}`);
      }
      // awsQuery flattens members into form keys; STS's calls used here take only scalar members.
      const input: Record<string, unknown> = {};
      params.forEach((v, k) => {
        if (k !== 'Action' && k !== 'Version') input[k] = v;
      });
      this.calls.push({ service: 'sts', operation, input, accessKeyId: signed.key.accessKeyId });
      const out = await this.dispatch('sts', operation, input, signed.key);
      const fields = Object.entries(out)
        .map(([k, v]) => `<${k}>${escapeXml(String(v))}</${k}>`)
        .join('');
      xml(
        200,
        `<${operation}Response xmlns="${xmlns}"><${operation}Result>${fields}</${operation}Result>` +
          `<ResponseMetadata><RequestId>${requestId}</RequestId></ResponseMetadata></${operation}Response>`,
      );
    } catch (e) {
      const err = e instanceof AwsError ? e : new AwsError('InternalFailure', String(e), 500);
      xml(
        err.status,
        `<ErrorResponse xmlns="${xmlns}"><Error><Type>Sender</Type><Code>${err.type}</Code>` +
          `<Message>${escapeXml(err.message)}</Message></Error><RequestId>${requestId}</RequestId></ErrorResponse>`,
      );
    }
  }

  private async dispatch(
    service: ModelName,
    operation: string,
    input: Record<string, unknown>,
    key?: IssuedKey,
  ): Promise<Record<string, unknown>> {
    const model = this.models[service];
    const op = model.operations[operation];
    if (!op) throw new AwsError('UnknownOperationException', `${service} has no operation ${operation}`);
    const errs = validateInput(model, operation, input);
    if (errs.length) throw validationError(errs);
    const handler = this.handlers.get(service)?.get(operation);
    if (!handler) throw new AwsError('UnknownOperationException', `The fake does not implement ${operation}`);
    const out = await handler(key ? { ...input, __key: key.accessKeyId } : input);
    // The fake's own answers must fit the model too: a wrong one would teach the clients' tests nothing.
    if (op.output) {
      const outErrs: string[] = [];
      validateShape(model, op.output.shape, out, '', outErrs);
      if (outErrs.length) throw new Error(`fake answered ${operation} outside the model: ${outErrs.join('; ')}`);
    }
    return out;
  }
}

const xmlns = 'https://sts.amazonaws.com/doc/2011-06-15/';
const escapeXml = (s: string) =>
  s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
