#!/usr/bin/env python3
"""A stand-in for the Kaniko executor (whose image is on gcr.io, unreachable from the test machines): it takes the
executor's flags, checks what a real executor would rely on and prints kaniko-like log lines. It checks that the
push login is a mounted docker config that parses and names the destination's registry, that the context URL is
fetched with a plain GET and no storage credentials (a presigned URL), that the context is a gzipped tar holding the
--dockerfile, then prints STANDIN_LINES lines, sleeps STANDIN_SLEEP seconds and exits with STANDIN_EXIT."""
import base64
import io
import json
import os
import sys
import tarfile
import time
import urllib.request


def say(line):
    print(line, flush=True)


def main():
    args = {}
    for a in sys.argv[1:]:
        k, _, v = a.partition("=")
        args[k] = v
    say("INFO[0000] stand-in kaniko executor")
    dest = args.get("--destination", "")
    host = dest.split("/")[0]
    try:
        with open("/kaniko/.docker/config.json", encoding="utf-8") as f:
            auth = json.load(f)["auths"][host]["auth"]
        user = base64.b64decode(auth).decode().split(":", 1)[0]
    except Exception as e:  # noqa: BLE001 - the message is the test's evidence
        say(f"ERROR no usable docker config for {host}: {e!r}")
        return 3
    say(f"INFO[0000] push login for {host}: user {user}")
    leaked = sorted(k for k in os.environ if k.startswith(("AWS_ACCESS", "AWS_SECRET", "GOOGLE_APPLICATION")))
    say(f"INFO[0000] storage credentials in env: {','.join(leaked) or 'none'}")
    ctx = args.get("--context", "")
    if ctx.startswith("gs://"):
        # Kaniko reads gs:// with Google's default credentials; the stand-in cannot reach GCS, so it checks that
        # a key is mounted where GOOGLE_APPLICATION_CREDENTIALS says and parses as one.
        path = os.environ.get("GOOGLE_APPLICATION_CREDENTIALS", "")
        try:
            with open(path, encoding="utf-8") as f:
                kind = json.load(f)["type"]
        except Exception as e:  # noqa: BLE001
            say(f"ERROR no Google key for {ctx}: {e!r}")
            return 6
        say(f"INFO[0001] context {ctx} read with the {kind} key at {path}")
        return int(os.environ.get("STANDIN_EXIT", "0"))
    if not ctx.startswith(("http://", "https://")):
        say(f"ERROR context is not a URL: {ctx[:40]}")
        return 4
    try:
        data = urllib.request.urlopen(ctx, timeout=30).read()
        tf = tarfile.open(fileobj=io.BytesIO(data), mode="r:gz")
        names = tf.getnames()
    except Exception as e:  # noqa: BLE001
        say(f"ERROR could not fetch the context: {e!r}")
        return 4
    dockerfile = args.get("--dockerfile", "")
    if dockerfile not in names:
        say(f"ERROR {dockerfile} is not in the context ({names})")
        return 5
    first = tf.extractfile(dockerfile).read().decode().splitlines()[0]
    say(f"INFO[0001] context: {len(data)} bytes, {len(names)} entries; {dockerfile} begins {first}")
    for i in range(int(os.environ.get("STANDIN_LINES", "3"))):
        say(f"INFO[0002] step {i + 1}")
        time.sleep(0.2)
    time.sleep(float(os.environ.get("STANDIN_SLEEP", "0")))
    code = int(os.environ.get("STANDIN_EXIT", "0"))
    say(f"ERROR error building image: stand-in exit {code}" if code else f"INFO[0003] Pushed {dest}")
    return code


sys.exit(main())
