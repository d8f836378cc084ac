import type { Env } from '@liftoff/core';

/** What a job inherits from the agent's environment: everything but the agent's own API key. */
export function jobEnvironment(env: Env): Env {
  const { LIFTOFF_API_KEY: _key, ...rest } = env;
  return rest;
}

/** Runs `fn` once on the first SIGINT/SIGTERM, then exits 0; a second signal exits at once. */
export function onShutdown(fn: () => Promise<void>): void {
  let stopping = false;
  const handler = (signal: NodeJS.Signals) => {
    if (stopping) {
      process.exit(130);
    }
    stopping = true;
    process.stderr.write(`received ${signal}; shutting down\n`);
    fn().then(
      () => process.exit(0),
      (err: unknown) => {
        process.stderr.write(`liftoff: error during shutdown: ${(err as Error).message}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
}
