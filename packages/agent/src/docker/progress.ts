import type Dockerode from 'dockerode';

interface ProgressEvent {
  stream?: string;
  status?: string;
  id?: string;
  progress?: string;
  error?: string;
  errorDetail?: { message?: string };
}

/**
 * Follows a build/push/pull stream of the Engine API, handing readable lines to `onLine`, and rejects with the
 * engine's own message if the stream reports an error (the engine answers 200 and reports failures in-band).
 */
export function followProgress(
  docker: Dockerode,
  stream: NodeJS.ReadableStream,
  onLine: (text: string) => void,
): Promise<void> {
  return new Promise((resolve, reject) => {
    let failure: string | undefined;
    docker.modem.followProgress(
      stream,
      (err: Error | null) => {
        if (err) reject(err);
        else if (failure) reject(new Error(failure));
        else resolve();
      },
      (ev: ProgressEvent) => {
        if (ev.error || ev.errorDetail?.message) {
          failure ??= ev.errorDetail?.message ?? ev.error;
          onLine(`${failure ?? ''}\n`);
        } else if (ev.stream) onLine(ev.stream);
        else if (ev.status && !ev.progress) onLine(`${ev.id ? `${ev.id}: ` : ''}${ev.status}\n`);
      },
    );
  });
}

export const isNotFound = (e: unknown): boolean => (e as { statusCode?: number }).statusCode === 404;
