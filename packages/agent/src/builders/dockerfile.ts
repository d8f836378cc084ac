import { dirname, posix } from 'node:path';
import { assertBaseImage, type LaunchSpec } from '@liftoff/core';
import { existsInCode, readCodeFile, type GeneratedFile } from './codeTree.js';
import { BuildError } from './types.js';

export interface ResolvedDockerfile {
  /** Path relative to the build context. */
  path: string;
  text: string;
  origin: 'spec' | 'Dockerfile.liftoff' | 'generated';
  /** Files the agent made for this build; they go into the build context stream, never into the job's code. */
  generated: GeneratedFile[];
}

/** Where generated files live in the build context; the code's own entry of that name is left out of it. */
export const GENERATED_DIR = '.liftoff';
/** Where generated images hold the code (and where the job's per-run copy goes). */
export const GENERATED_WORKDIR = '/app';

/**
 * The job's own Dockerfile (`--dockerfile`), else a `Dockerfile.liftoff` next to the entry point's script (or at
 * the root of the code), else one generated for a Python job. Every file read here is resolved and must be a file
 * inside the code.
 */
export async function resolveDockerfile(
  codeDir: string,
  spec: LaunchSpec,
  baseImage: string,
): Promise<ResolvedDockerfile> {
  if (spec.dockerfile) {
    const path = posix.normalize(spec.dockerfile);
    const text = await readCodeFile(codeDir, path, 'The Dockerfile');
    if (text === undefined)
      throw new BuildError(`The Dockerfile "${spec.dockerfile}" given with --dockerfile is not in the job's code.`);
    return { path, text, origin: 'spec', generated: [] };
  }
  for (const dir of await scriptDirs(codeDir, spec)) {
    const path = posix.join(dir, 'Dockerfile.liftoff');
    const text = await readCodeFile(codeDir, path, 'Dockerfile.liftoff');
    if (text !== undefined) return { path, text, origin: 'Dockerfile.liftoff', generated: [] };
  }
  const generated: GeneratedFile[] = [];
  const requirements = await pythonRequirements(codeDir, generated);
  const text = generateDockerfile(baseImage, requirements);
  const path = `${GENERATED_DIR}/Dockerfile`;
  generated.push({ rel: path, text });
  return { path, text, origin: 'generated', generated };
}

/** Directories of entry-point arguments that name files inside the code, then the root. */
async function scriptDirs(codeDir: string, spec: LaunchSpec): Promise<string[]> {
  const dirs: string[] = [];
  for (const a of spec.entry_point) {
    if (a.startsWith('-') || a.startsWith('/') || a.split('/').includes('..')) continue;
    if (await existsInCode(codeDir, a)) dirs.push(dirname(a));
  }
  return [...new Set([...dirs, '.'])];
}

/**
 * requirements.txt if present, else `[project].dependencies` of pyproject.toml written out as one (added to
 * `generated`). Returns the path pip reads, relative to the code.
 */
async function pythonRequirements(codeDir: string, generated: GeneratedFile[]): Promise<string | undefined> {
  if ((await readCodeFile(codeDir, 'requirements.txt', 'requirements.txt')) !== undefined) return 'requirements.txt';
  const pyproject = await readCodeFile(codeDir, 'pyproject.toml', 'pyproject.toml');
  if (pyproject === undefined) return undefined;
  // smol-toml loads only for a pyproject.toml, not with every agent.
  const { parse: parseToml } = await import('smol-toml');
  let deps: unknown;
  try {
    deps = (parseToml(pyproject) as { project?: { dependencies?: unknown } }).project?.dependencies;
  } catch (e) {
    throw new BuildError(`pyproject.toml is not valid TOML: ${(e as Error).message.split('\n')[0] ?? ''}`);
  }
  if (!Array.isArray(deps) || !deps.length) return undefined;
  for (const d of deps) {
    // A dependency is one PEP 508 line; a newline or a leading "-" would add pip options (-r, --index-url).
    if (typeof d !== 'string' || [...d].some((c) => c < ' ' || c === '\x7f') || d.trim().startsWith('-')) {
      throw new BuildError(
        `pyproject.toml: [project].dependencies holds ${JSON.stringify(d)}, which is not a single requirement.`,
      );
    }
  }
  const path = `${GENERATED_DIR}/requirements.txt`;
  generated.push({ rel: path, text: `${deps.join('\n')}\n` });
  return path;
}

/**
 * A Python image: the code in /app owned by root (read-only to the job, which gets its own writable copy when the
 * container is created), dependencies installed with pip. Neither the command nor the job's user is baked in: both
 * are given when the container is created, so changing them never forces a rebuild.
 */
export function generateDockerfile(baseImage: string, requirements: string | undefined): string {
  // Checked again here although the server validated the spec: this string becomes a FROM line.
  try {
    assertBaseImage(baseImage, 'The base image');
  } catch (e) {
    throw new BuildError((e as Error).message);
  }
  return [
    `FROM ${baseImage}`,
    // Debian's python refuses pip installs into the system site without this; other images ignore it.
    'ENV PIP_BREAK_SYSTEM_PACKAGES=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONUNBUFFERED=1',
    'WORKDIR /app',
    'COPY . /app',
    ...(requirements ? [`RUN python3 -m pip install -r ${requirements}`] : []),
    // The local-container runner sets the user when it creates the container; this default only keeps runners
    // that do not (kubernetes pods without runAsUser) from running the image as root. It is the same for every
    // build, so the image cache does not depend on it.
    'USER 1000:1000',
    '',
  ].join('\n');
}
