import { execFileSync } from 'node:child_process';

/**
 * A job (python3) that tries what an attacker's job would: each probe reads a file, lists a directory or connects to
 * a Unix socket, and prints `PROBE <name> OK`, `PROBE <name> DENIED` (permission refused) or `PROBE <name> ERROR
 * <what>` (anything else, e.g. a missing file: the probe then proves nothing and the test must not pass on it).
 * Probes come as JSON in $PROBES; $HOLD seconds to sleep at the end.
 */
export const PROBE_SCRIPT = `
import json, os, socket, sys, time
print("IDS", os.getuid(), os.getgid(), json.dumps(os.getgroups()), flush=True)
print("ENVKEYS", json.dumps(sorted(os.environ.keys())), flush=True)
for p in json.loads(os.environ.get("PROBES", "[]")):
    try:
        if p["kind"] == "read":
            with open(p["path"], "rb") as f:
                f.read()
        elif p["kind"] == "list":
            os.listdir(p["path"])
        elif p["kind"] == "write":
            with open(p["path"], "w") as f:
                f.write(p.get("body", "x"))
        elif p["kind"] == "connect":
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(p["path"])
            s.close()
        print("PROBE", p["name"], "OK", flush=True)
    except PermissionError:
        print("PROBE", p["name"], "DENIED", flush=True)
    except Exception as e:
        print("PROBE", p["name"], "ERROR", type(e).__name__, e, flush=True)
time.sleep(float(os.environ.get("HOLD", "0")))
`;

export interface Probe {
  name: string;
  kind: 'read' | 'list' | 'write' | 'connect';
  path: string;
  body?: string;
}

/** The outcome of every probe in a job's output, by name. */
export function probeResults(output: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of output.matchAll(/^PROBE (\S+) (OK|DENIED|ERROR[^\n]*)$/gm)) out[m[1] as string] = m[2] as string;
  return out;
}

export function envKeys(output: string): string[] {
  const m = /^ENVKEYS (.*)$/m.exec(output);
  return m ? (JSON.parse(m[1] as string) as string[]) : [];
}

export function ids(output: string): { uid: number; gid: number; groups: number[] } | undefined {
  const m = /^IDS (\d+) (\d+) (.*)$/m.exec(output);
  return m ? { uid: Number(m[1]), gid: Number(m[2]), groups: JSON.parse(m[3] as string) as number[] } : undefined;
}

export const isRoot = (): boolean => process.getuid?.() === 0;

/** An ordinary (non-root) user for the `run-as: agent` tests; scripts/services/base.sh creates it in CI. */
export const ORDINARY_USER = 'liftoff-tester';

export function ensureOrdinaryUser(): { uid: number; gid: number } {
  const lookup = () => execFileSync('id', ['-u', ORDINARY_USER], { encoding: 'utf8' }).trim();
  try {
    lookup();
  } catch {
    execFileSync('useradd', ['--system', '--no-create-home', '--shell', '/usr/sbin/nologin', ORDINARY_USER]);
  }
  const uid = Number(lookup());
  const gid = Number(execFileSync('id', ['-g', ORDINARY_USER], { encoding: 'utf8' }).trim());
  return { uid, gid };
}
