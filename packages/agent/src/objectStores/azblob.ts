import type { Readable } from 'node:stream';
import type { BlobServiceClient, StoragePipelineOptions } from '@azure/storage-blob';
import { AzureEnvironmentError, describeCause } from '@liftoff/core';
import type { AzureClientSettings } from '../environments/types.js';
import type { ObjectStore, ObjectStoreDeps } from './types.js';

/** Storage account names: 3-24 lower-case letters and digits. */
const ACCOUNT = /^[a-z0-9]{3,24}$/;
/** Container names: 3-63 of a-z 0-9 -, starting and ending alnum, no "--". */
const CONTAINER = /^(?!.*--)[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$/;
/** User-delegation SAS: the delegation key lives at most 7 days, so the SAS does too. */
const MAX_SAS_SECONDS = 7 * 24 * 3600;
/** Blocks of 8 MiB, 4 in flight: what a build context needs without holding it all in memory. */
export const BLOCK_BYTES = 8 * 1024 * 1024;
const CONCURRENCY = 4;
/**
 * The SAS format version (`sv`): the newest that was verified end to end here (Azurite 3.35 checks signatures up to
 * it; the SDK's own default, 2026-04-06, adds string-to-sign fields Azurite 3.35 does not know). Azure accepts older
 * SAS versions for years after newer ones appear.
 */
const SAS_VERSION = '2025-11-05';

/** `https://<account>.blob.core.windows.net/<container>/<path>` → account, container and path (may be empty). */
export function parseBlobUri(uri: string): { account: string; container: string; path: string } {
  const m = /^https:\/\/([^./]+)\.blob\.core\.windows\.net\/([^/?#]+)(?:\/([^?#]*))?$/.exec(uri);
  const account = m?.[1] ?? '';
  const container = m?.[2] ?? '';
  if (!m || !ACCOUNT.test(account) || !CONTAINER.test(container)) {
    throw new AzureEnvironmentError(
      `"${uri}" is not an Azure Blob URI: write https://<account>.blob.core.windows.net/<container>/<path>, with an account name of 3-24 lower-case letters and digits and a container name of 3-63 lower-case letters, digits and "-".`,
    );
  }
  return { account, container, path: m[3] ?? '' };
}

/**
 * Azure Blob Storage through @azure/storage-blob with the agent's one credential chain: verify = the container's
 * `exists()` (W&B's check only builds a client, so a missing container went unnoticed until the first upload),
 * upload = a block blob staged in 8 MiB blocks, 4 in parallel, then committed; presign = a user-delegation SAS (read,
 * for one blob), signed with a key the agent's Entra credentials obtain, so no account key is ever needed. The SDK
 * loads on first use. LIFTOFF_AZURE_BLOB_ENDPOINT (read by the CLI) serves accounts path-style, for test servers.
 */
export class AzureBlobObjectStore implements ObjectStore {
  readonly scheme = 'https';
  private readonly azure: AzureClientSettings;
  private readonly clients = new Map<string, Promise<BlobServiceClient>>();

  constructor(deps: ObjectStoreDeps) {
    if (!deps.azure) {
      throw new AzureEnvironmentError(
        'Azure Blob stores need Azure credentials: add environment: {type: azure} to the agent config.',
      );
    }
    this.azure = deps.azure;
  }

  /** The account's URL: Azure's host, or the override's origin with the account as the first path segment. */
  accountUrl(account: string): string {
    const base = this.azure.endpoints.blob;
    return base ? `${base}/${account}` : `https://${account}.blob.core.windows.net`;
  }

  private service(account: string): Promise<BlobServiceClient> {
    let client = this.clients.get(account);
    if (!client) {
      client = import('@azure/storage-blob').then(({ BlobServiceClient: Service }) => {
        // The storage client's options go through to its HTTP pipeline, whose `tlsOptions` (a documented pipeline
        // option the storage typings leave out) sets the CAs a private endpoint is checked against.
        const options = {
          retryOptions: { maxTries: 3 },
          ...(this.azure.ca ? { tlsOptions: { ca: this.azure.ca } } : {}),
        } as StoragePipelineOptions;
        return new Service(this.accountUrl(account), this.azure.credential, options);
      });
      this.clients.set(account, client);
    }
    return client;
  }

  async verify(uri: string): Promise<void> {
    const { account, container } = parseBlobUri(uri);
    const where = `builder.build-context-store ${uri}`;
    let exists: boolean;
    try {
      exists = await (await this.service(account)).getContainerClient(container).exists();
    } catch (e) {
      throw new AzureEnvironmentError(storageProblem(where, account, container, e), e);
    }
    if (!exists) {
      throw new AzureEnvironmentError(
        `${where}: container "${container}" does not exist in storage account ${account}; create it (az storage container create --account-name ${account} --name ${container} --auth-mode login) or fix the URI.`,
      );
    }
  }

  async upload(uri: string, body: Readable | Buffer, opts: { contentType?: string } = {}): Promise<void> {
    const { account, container, path } = objectOf(uri);
    const blob = (await this.service(account)).getContainerClient(container).getBlockBlobClient(path);
    const headers = { blobHTTPHeaders: { blobContentType: opts.contentType ?? 'application/octet-stream' } };
    try {
      if (Buffer.isBuffer(body)) {
        // One request up to one block; larger bodies go in blocks like streams do.
        await blob.uploadData(body, {
          ...headers,
          blockSize: BLOCK_BYTES,
          maxSingleShotSize: BLOCK_BYTES,
          concurrency: CONCURRENCY,
        });
      } else {
        await blob.uploadStream(body, BLOCK_BYTES, CONCURRENCY, headers);
      }
    } catch (e) {
      throw new AzureEnvironmentError(`Uploading to ${uri} failed: ${storageProblem('', account, container, e)}`, e);
    }
  }

  async presign(uri: string, ttlSeconds: number): Promise<string> {
    const { account, container, path } = objectOf(uri);
    if (!Number.isInteger(ttlSeconds) || ttlSeconds < 1 || ttlSeconds > MAX_SAS_SECONDS) {
      throw new AzureEnvironmentError(
        `A user-delegation SAS lives 1 to ${MAX_SAS_SECONDS} seconds (got ${ttlSeconds}).`,
      );
    }
    const [{ generateBlobSASQueryParameters, BlobSASPermissions }, service] = await Promise.all([
      import('@azure/storage-blob'),
      this.service(account),
    ]);
    // A little slack before now: the storage service's clock may be behind the agent's.
    const startsOn = new Date(Date.now() - 5 * 60_000);
    const expiresOn = new Date(Date.now() + ttlSeconds * 1000);
    let key;
    try {
      key = await service.getUserDelegationKey(startsOn, expiresOn);
    } catch (e) {
      throw new AzureEnvironmentError(
        `Cannot sign a URL for ${uri}: getting a user-delegation key failed (${oneLine(describeCause(e))}); the agent's principal needs a role with Microsoft.Storage/storageAccounts/blobServices/generateUserDelegationKey on account ${account} (Storage Blob Delegator, or Storage Blob Data Contributor).`,
        e,
      );
    }
    const sas = generateBlobSASQueryParameters(
      {
        containerName: container,
        blobName: path,
        permissions: BlobSASPermissions.parse('r'),
        startsOn,
        expiresOn,
        version: SAS_VERSION,
      },
      key,
      account,
    );
    const blobUrl = service.getContainerClient(container).getBlobClient(path).url;
    return `${blobUrl}?${sas.toString()}`;
  }
}

function objectOf(uri: string): { account: string; container: string; path: string } {
  const parsed = parseBlobUri(uri);
  if (!parsed.path || parsed.path.endsWith('/')) {
    throw new AzureEnvironmentError(`"${uri}" names no blob: add the blob's name after the container.`);
  }
  return parsed;
}

/** What a failed storage call means, by its status (the SDK's RestError carries it). */
function storageProblem(where: string, account: string, container: string, e: unknown): string {
  const status = (e as { statusCode?: number }).statusCode;
  const prefix = where ? `${where}: ` : '';
  if (status === 401 || status === 403) {
    return `${prefix}container "${container}" of storage account ${account} is not accessible to the agent's Azure credentials (HTTP ${status}: ${oneLine(describeCause(e))}); assign the agent's principal Storage Blob Data Contributor on the container or account.`;
  }
  if (status === 404) {
    return `${prefix}storage account ${account} or container "${container}" does not exist (HTTP 404); fix the URI or create them.`;
  }
  return `${prefix}could not reach storage account ${account} (${oneLine(describeCause(e))}); check the network and LIFTOFF_AZURE_BLOB_ENDPOINT.`;
}

const oneLine = (s: string): string => s.replace(/\s*\n\s*/g, ' ').slice(0, 400);
