import { existsSync, readFileSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join, normalize } from 'node:path';
import { parse as parseToml } from 'smol-toml';
import type { LaunchSpec } from '@liftoff/core';
import { BuildError } from './types.js';

export interface ResolvedDockerfile {
  /** Path relative to the build context. */
  path: string;
  text: string;
  origin: 'spec' | 'Dockerfile.liftoff' | 'generated';
}

const GENERATED = '.liftoff/Dockerfile';

/**
 * The job's own Dockerfile (`--dockerfile`), else a `Dockerfile.liftoff` next to the entry point's script (or at
 * the root of the code), else one generated for a Python job.
 */
export async function resolveDockerfile(
  codeDir: string,
  spec: LaunchSpec,
  baseImage: string,
): Promise<ResolvedDockerfile> {
  if (spec.dockerfile) {
    const path = normalize(spec.dockerfile);
    try {
      return { path, text: await readFile(join(codeDir, path), 'utf8'), origin: 'spec' };
    } catch {
      throw new BuildError(`The Dockerfile "${spec.dockerfile}" given with --dockerfile is not in the job's code.`);
    }
  }
  for (const dir of scriptDirs(codeDir, spec)) {
    const path = join(dir, 'Dockerfile.liftoff');
    if (existsSync(join(codeDir, path)))
      return { path, text: readFileSync(join(codeDir, path), 'utf8'), origin: 'Dockerfile.liftoff' };
  }
  const text = generateDockerfile(baseImage, await pythonRequirements(codeDir));
  await mkdir(join(codeDir, dirname(GENERATED)), { recursive: true });
  await writeFile(join(codeDir, GENERATED), text);
  return { path: GENERATED, text, origin: 'generated' };
}

/** Directories of entry-point arguments that name files in the code, then the root. */
function scriptDirs(codeDir: string, spec: LaunchSpec): string[] {
  const dirs = spec.entry_point
    .filter(
      (a) => !a.startsWith('-') && !a.startsWith('/') && !a.split('/').includes('..') && existsSync(join(codeDir, a)),
    )
    .map((a) => dirname(a));
  return [...new Set([...dirs, '.'])];
}

/** requirements.txt if present, else `[project].dependencies` of pyproject.toml written out as one. */
async function pythonRequirements(codeDir: string): Promise<string | undefined> {
  if (existsSync(join(codeDir, 'requirements.txt'))) return 'requirements.txt';
  const pyproject = join(codeDir, 'pyproject.toml');
  if (!existsSync(pyproject)) return undefined;
  let deps: unknown;
  try {
    deps = (parseToml(await readFile(pyproject, 'utf8')) as { project?: { dependencies?: unknown } }).project
      ?.dependencies;
  } catch (e) {
    throw new BuildError(`pyproject.toml is not valid TOML: ${(e as Error).message.split('\n')[0] ?? ''}`);
  }
  if (!Array.isArray(deps) || !deps.length) return undefined;
  const path = '.liftoff/requirements.txt';
  await mkdir(join(codeDir, '.liftoff'), { recursive: true });
  await writeFile(join(codeDir, path), `${deps.map(String).join('\n')}\n`);
  return path;
}

/**
 * A Python image: the code in /app owned by an unprivileged user, dependencies installed with pip. The command is
 * not baked in: it is given when the container is created, so changing arguments never forces a rebuild.
 */
export function generateDockerfile(baseImage: string, requirements: string | undefined): string {
  return [
    `FROM ${baseImage}`,
    // Debian's python refuses pip installs into the system site without this; other images ignore it.
    'ENV PIP_BREAK_SYSTEM_PACKAGES=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONUNBUFFERED=1',
    'WORKDIR /app',
    'COPY --chown=1000:1000 . /app',
    ...(requirements ? [`RUN python3 -m pip install -r ${requirements}`] : []),
    'USER 1000:1000',
    '',
  ].join('\n');
}
