#!/usr/bin/env python3
"""Uploads a Liftoff run's outputs from inside its job (Kubernetes pods; docs/outputs.md).

The agent mounts this file in every pod of a kubernetes queue and sets:
  LIFTOFF_OUTPUT_DIR      the directory to upload (an emptyDir capped at the agent's outputs-max-mib)
  LIFTOFF_UPLOAD_URL      the Liftoff server as the pod reaches it
  LIFTOFF_UPLOAD_TOKEN    the run's upload token (from a Secret): it uploads this run's outputs and nothing else
  LIFTOFF_RUN_ID          the run
  LIFTOFF_OUTPUTS_HELPER  the path of this file

Usage:
  python3 "$LIFTOFF_OUTPUTS_HELPER" run -- CMD [ARGS...]
      Runs CMD (never through a shell) and forwards SIGTERM and SIGINT to it; once it exits, uploads
      $LIFTOFF_OUTPUT_DIR and exits with CMD's exit code. Made to be the container's entry point, so a
      cancelled run's checkpoint (written when CMD gets SIGTERM) is uploaded too.
  python3 "$LIFTOFF_OUTPUTS_HELPER" upload [DIR]
      Uploads DIR (default $LIFTOFF_OUTPUT_DIR) now: at the end of the job, or from its SIGTERM handler.
      Exits 0 once the files are listed, non-zero with a message on stderr otherwise.

A run's outputs are committed once: the first successful upload lists them, later ones are refused.

What it does, as the agent does for other runners: walks the directory without following links, regular
files only (symlinks, FIFOs, sockets and devices are skipped with a note on stderr, as are names the server
would refuse), opens each with O_NOFOLLOW, hashes it (sha256), then per file starts the upload (the server
answers the offset it already holds), sends the bytes from there, and at last commits every file at once:
nothing is listed until then. Transient failures (connection cut, 5xx, 429, an offset that moved) resume from
the offset the server answers. Python 3 standard library only: job images are arbitrary.
"""

import hashlib
import http.client
import json
import os
import signal
import ssl
import stat
import subprocess
import sys
import time
import urllib.parse

# The path rules of packages/core/src/outputPaths.ts, which the server applies too.
PATH_MAX_BYTES = 1024
SEGMENT_MAX_BYTES = 255
PATH_MAX_DEPTH = 32
MAX_FILES = 10_000
PIECE = 1024 * 1024


def _attempts():
    """Tries per call before giving up (LIFTOFF_UPLOAD_ATTEMPTS, default 8: about 35 s of backoff)."""
    try:
        return max(1, min(100, int(os.environ.get("LIFTOFF_UPLOAD_ATTEMPTS", "8"))))
    except ValueError:
        return 8


ATTEMPTS = _attempts()


def note(line):
    print(f"liftoff_outputs: {line}", file=sys.stderr, flush=True)


class Refused(Exception):
    """The server refused a call for good (a limit, a path, the token): the upload ends here."""


class Transient(Exception):
    """A call that may work when tried again (the connection, a 5xx, a moved offset)."""


def path_problem(path):
    """Why the server would refuse this output path, or None (outputPaths.ts, checkOutputPath)."""
    if not path:
        return "it is empty"
    if any(ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F for ch in path):
        return "it holds a NUL or control character"
    if len(path.encode("utf-8", "surrogateescape")) > PATH_MAX_BYTES:
        return f"it is longer than {PATH_MAX_BYTES} bytes"
    if path.startswith("/"):
        return "it is absolute"
    if "\\" in path:
        return "it holds a backslash"
    segments = path.split("/")
    if len(segments) > PATH_MAX_DEPTH:
        return f"it is nested deeper than {PATH_MAX_DEPTH} folders"
    for s in segments:
        if s in ("", ".", ".."):
            return 'it has an empty, "." or ".." segment'
        if len(s.encode("utf-8", "surrogateescape")) > SEGMENT_MAX_BYTES:
            return f"a name in it is longer than {SEGMENT_MAX_BYTES} bytes"
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return "it is not valid UTF-8"
    return None


def collect(root):
    """Regular files under root as (relative path, absolute path, size), by name; never follows a link."""
    files = []

    def walk(directory, rel, depth):
        try:
            names = sorted(os.listdir(directory))
        except OSError as e:
            note(f"skipped {json.dumps(rel or '.')}: {e.strerror}")
            return
        for name in names:
            path = os.path.join(directory, name)
            r = f"{rel}/{name}" if rel else name
            shown = json.dumps(r.encode("utf-8", "surrogateescape").decode("utf-8", "replace"))
            try:
                st = os.lstat(path)
            except OSError as e:
                note(f"skipped {shown}: {e.strerror}")
                continue
            if stat.S_ISDIR(st.st_mode):
                if depth + 1 >= PATH_MAX_DEPTH:
                    note(f"skipped {shown}: nested too deep")
                else:
                    walk(path, r, depth + 1)
                continue
            if not stat.S_ISREG(st.st_mode):
                kind = "a symlink" if stat.S_ISLNK(st.st_mode) else "not a regular file"
                note(f"skipped {shown}: {kind} (only regular files are uploaded)")
                continue
            problem = path_problem(r)
            if problem:
                note(f"skipped {shown}: the server refuses that name ({problem})")
                continue
            if len(files) >= MAX_FILES:
                note(f"more than {MAX_FILES} files; the rest are not uploaded")
                return
            files.append((r, path, st.st_size))

    walk(root, "", 0)
    return files


class Server:
    """The three upload calls of the agent protocol, with the run's upload token."""

    def __init__(self, base_url, token, run_id):
        u = urllib.parse.urlsplit(base_url)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise Refused(f"LIFTOFF_UPLOAD_URL {base_url!r} is not an http(s) URL")
        self.https = u.scheme == "https"
        self.host = u.hostname
        self.port = u.port or (443 if self.https else 80)
        self.prefix = u.path.rstrip("/")
        self.token = token
        self.run = urllib.parse.quote(run_id, safe="")
        ca = os.environ.get("LIFTOFF_CA_FILE")
        self.context = ssl.create_default_context(cafile=ca) if self.https else None

    def _connect(self):
        if self.https:
            return http.client.HTTPSConnection(self.host, self.port, timeout=300, context=self.context)
        return http.client.HTTPConnection(self.host, self.port, timeout=300)

    def call(self, method, path, body=None, stream=None, length=0, moved_is_transient=False):
        """
        One request; JSON answer. `stream`: a file object sent as `length` raw bytes. `moved_is_transient`: a 409
        (for the bytes: the offset moved, or the digest did not match and the server reset the file) is worth
        starting the file again; elsewhere a 409 (the outputs already committed) is final.
        """
        conn = self._connect()
        try:
            conn.putrequest(method, f"{self.prefix}/api/runs/{self.run}/outputs{path}")
            conn.putheader("Authorization", f"Bearer {self.token}")
            if stream is not None:
                conn.putheader("Content-Type", "application/octet-stream")
                conn.putheader("Content-Length", str(length))
                conn.endheaders()
                left = length
                while left > 0:
                    piece = stream.read(min(PIECE, left))
                    if not piece:
                        raise Refused("a file got shorter while it was sent")
                    conn.send(piece)
                    left -= len(piece)
            else:
                data = json.dumps(body).encode()
                conn.putheader("Content-Type", "application/json")
                conn.putheader("Content-Length", str(len(data)))
                conn.endheaders()
                conn.send(data)
            res = conn.getresponse()
            raw = res.read()
        except (OSError, http.client.HTTPException) as e:
            raise Transient(f"cannot reach the Liftoff server at {self.host}:{self.port} ({e})") from e
        finally:
            conn.close()
        try:
            answer = json.loads(raw or b"{}")
        except ValueError:
            answer = {}
        if 200 <= res.status < 300:
            return answer
        err = answer.get("error") if isinstance(answer, dict) else None
        err = err if isinstance(err, dict) else {}
        text = f"{err.get('code', 'HTTP ' + str(res.status))}: {err.get('message', raw[:300].decode('utf-8', 'replace'))}"
        if res.status >= 500 or res.status == 429 or (res.status == 409 and moved_is_transient):
            raise Transient(text)
        raise Refused(text)


def sha256_of(fd):
    h = hashlib.sha256()
    os.lseek(fd, 0, os.SEEK_SET)
    while True:
        piece = os.read(fd, PIECE)
        if not piece:
            return h.hexdigest()
        h.update(piece)


def retried(what, fn):
    delay = 0.5
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return fn()
        except Transient as e:
            if attempt == ATTEMPTS:
                raise Refused(f"{what}: {e} (gave up after {ATTEMPTS} tries)") from e
            note(f"{what}: {e}; trying again")
            time.sleep(delay)
            delay = min(delay * 2, 10)
    return None


def upload_file(server, rel, path, size):
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size != size:
            raise Refused(f"{json.dumps(rel)} changed while the outputs were collected")
        meta = {"path": rel, "size": size}

        def once():
            # Hashed on each try: a file the job changed since is started again with its new digest.
            meta["sha256"] = sha256_of(fd)
            u = server.call("POST", "/uploads", body=meta)
            offset = int(u["offset"])
            if offset < size:
                with os.fdopen(os.dup(fd), "rb") as f:
                    f.seek(offset)
                    server.call(
                        "PUT",
                        f"/uploads/{urllib.parse.quote(u['upload_id'], safe='')}?offset={offset}",
                        stream=f,
                        length=size - offset,
                        moved_is_transient=True,
                    )

        retried(f"uploading {json.dumps(rel)}", once)
        return meta
    finally:
        os.close(fd)


def upload(directory):
    """Uploads and commits the directory's files; returns the process exit code (0: listed)."""
    token = os.environ.get("LIFTOFF_UPLOAD_TOKEN", "")
    url = os.environ.get("LIFTOFF_UPLOAD_URL", "")
    run_id = os.environ.get("LIFTOFF_RUN_ID", "")
    missing = [n for n, v in (("LIFTOFF_UPLOAD_TOKEN", token), ("LIFTOFF_UPLOAD_URL", url), ("LIFTOFF_RUN_ID", run_id)) if not v]
    if missing:
        note(f"outputs not uploaded: {', '.join(missing)} not set (the agent sets them in pods of kubernetes queues)")
        return 2
    if not directory or not os.path.isdir(directory):
        note(f"outputs not uploaded: {directory!r} is not a directory (set LIFTOFF_OUTPUT_DIR or name one)")
        return 2
    try:
        server = Server(url, token, run_id)
        files = collect(directory)
        listed = [upload_file(server, rel, path, size) for rel, path, size in files]
        retried("committing the outputs", lambda: server.call("POST", "/commit", body={"files": listed}))
    except Refused as e:
        note(f"outputs not uploaded: {str(e).rstrip('.')}; nothing is listed")
        return 1
    except OSError as e:
        note(f"outputs not uploaded: {e}; nothing is listed")
        return 1
    total = sum(f["size"] for f in listed)
    note(f"outputs uploaded: {len(listed)} file(s), {total} bytes (liftoff runs outputs {run_id})")
    return 0


def run(argv):
    """Runs argv as a child, forwards SIGTERM/SIGINT, uploads after it exits; the child's exit code."""
    if not argv:
        note("run: name the command after --")
        return 2
    try:
        child = subprocess.Popen(argv)
    except OSError as e:
        note(f"run: cannot start {argv[0]!r}: {e.strerror}")
        return 127
    forwarded = []

    def forward(signum, _frame):
        forwarded.append(signum)
        try:
            child.send_signal(signum)
        except ProcessLookupError:
            pass

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    code = child.wait()
    # Past the child's exit the upload is what is left to do: a second SIGTERM does not cut it short.
    signal.signal(signal.SIGTERM, lambda *_: note("SIGTERM while uploading; finishing the upload first"))
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if code < 0:
        code = 128 - code
    if forwarded:
        note(f"the command exited {code} after signal {forwarded[0]}; uploading what it left")
    upload(os.environ.get("LIFTOFF_OUTPUT_DIR", ""))
    return code


def main(args):
    if args[:1] == ["upload"] and len(args) <= 2:
        return upload(args[1] if len(args) == 2 else os.environ.get("LIFTOFF_OUTPUT_DIR", ""))
    if args[:2] == ["run", "--"]:
        return run(args[2:])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
