#!/usr/bin/env python3
"""A stand-in for the Kaniko executor (whose image is on gcr.io, unreachable from the test machines): it takes the
executor's flags, checks what a real executor would rely on and prints kaniko-like log lines. It checks that the
push login is a mounted docker config that parses and names the destination's registry, that the context URL is
fetched with a plain GET and no storage credentials (a presigned URL) or, for an Azure blob URI, read as kaniko's
azureblob reader does (Shared Key with AZURE_STORAGE_ACCESS_KEY; STANDIN_BLOB_ENDPOINT serves the account path-style,
as the test server Azurite does), that the context is a gzipped tar holding the --dockerfile, then prints STANDIN_LINES lines, sleeps STANDIN_SLEEP seconds and exits with STANDIN_EXIT."""
import base64
import email.utils
import hashlib
import hmac
import io
import json
import os
import re
import sys
import tarfile
import time
import urllib.parse
import urllib.request

BLOB_URI = re.compile(r"^https://([a-z0-9]{3,24})\.blob\.core\.windows\.net/([^?#]+)$")


def say(line):
    print(line, flush=True)


def blob_request(ctx):
    """A GET of the blob signed with the account key (Azure's Shared Key scheme), as kaniko's Azure reader makes."""
    m = BLOB_URI.match(ctx)
    account, path = m.group(1), m.group(2)
    endpoint = os.environ.get("STANDIN_BLOB_ENDPOINT")
    url = f"{endpoint}/{account}/{path}" if endpoint else ctx
    headers = {"x-ms-date": email.utils.formatdate(usegmt=True), "x-ms-version": "2021-08-06"}
    canonical_headers = "".join(f"{k}:{v}\n" for k, v in sorted(headers.items()))
    to_sign = "GET\n" + "\n" * 11 + canonical_headers + f"/{account}{urllib.parse.urlparse(url).path}"
    key = base64.b64decode(os.environ["AZURE_STORAGE_ACCESS_KEY"])
    signature = base64.b64encode(hmac.new(key, to_sign.encode(), hashlib.sha256).digest()).decode()
    headers["Authorization"] = f"SharedKey {account}:{signature}"
    return urllib.request.Request(url, headers=headers)


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
    if BLOB_URI.match(ctx):
        # Kaniko's rule: any blob-host URL goes to its Azure reader, which needs the key even when a SAS is there.
        if "AZURE_STORAGE_ACCESS_KEY" not in os.environ:
            say(f"ERROR AZURE_STORAGE_ACCESS_KEY is not set for {ctx}")
            return 7
        say(f"INFO[0001] reading Azure blob {ctx} with the storage account key")
    elif BLOB_URI.match(ctx.split("?")[0]):
        say(f"ERROR a blob URL with a SAS: kaniko would read it with AZURE_STORAGE_ACCESS_KEY, not the SAS")
        return 7
    try:
        req = blob_request(ctx) if BLOB_URI.match(ctx) else ctx
        data = urllib.request.urlopen(req, timeout=30).read()
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
