import { spawnSync } from 'node:child_process';
import { dockerAvailable } from './docker.js';

/** The Debian-built buildah image of scripts/services/buildah.sh (imported, never pulled). */
export const BUILDAH = 'liftoff-test/buildah:1';

/**
 * Whether the buildah image is on the local engine. Missing: the suite named `suite` skips with a loud reason, unless
 * LIFTOFF_REQUIRE_SERVICES=1, where that is a failure.
 */
export function buildahImageAvailable(suite: string): boolean {
  if (!dockerAvailable()) return false;
  if (spawnSync('docker', ['image', 'inspect', BUILDAH], { stdio: 'ignore' }).status === 0) return true;
  const reason = `${BUILDAH} missing: run scripts/services/buildah.sh`;
  if (process.env.LIFTOFF_REQUIRE_SERVICES === '1') throw new Error(`${reason} (LIFTOFF_REQUIRE_SERVICES=1)`);
  console.warn(`\n*** SKIPPING ${suite}: ${reason} ***\n`);
  return false;
}
