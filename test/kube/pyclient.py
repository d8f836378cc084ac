"""Drives the test Kubernetes API server with the official Python client (Debian's python3-kubernetes).

Usage: python3 pyclient.py KUBECONFIG OP 'JSON ARGS'. Prints one JSON document: the result, or
{"error": {"status": ..., "reason": ..., "body": ...}} for an ApiException. Run by test/kube/pythonClient.test.ts.
"""
import json
import sys

from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException


def names(items):
    return [i.metadata.name for i in items]


def op_list_configmaps(core, _batch, a):
    """Pages with limit/continue (the client sends `continue` as `_continue`)."""
    seen, pages, token = [], 0, None
    while True:
        kw = {"limit": a["limit"]}
        if token:
            kw["_continue"] = token
        page = core.list_namespaced_config_map(a["ns"], **kw)
        pages += 1
        seen += names(page.items)
        token = page.metadata._continue
        if not token:
            return {"names": seen, "pages": pages, "resourceVersion": page.metadata.resource_version}


def op_create_configmap(core, _batch, a):
    c = core.create_namespaced_config_map(a["ns"], client.V1ConfigMap(metadata=client.V1ObjectMeta(name=a["name"]), data={"k": "v"}))
    return {"name": c.metadata.name, "resourceVersion": c.metadata.resource_version}


def op_delete_configmap(core, _batch, a):
    core.delete_namespaced_config_map(a["name"], a["ns"])
    return {}


def op_create_secret(core, _batch, a):
    body = client.V1Secret(metadata=client.V1ObjectMeta(name=a["name"]), data=a.get("data"), string_data=a.get("stringData"))
    s = core.create_namespaced_secret(a["ns"], body)
    return {"data": s.data, "type": s.type}


def op_read_secret(core, _batch, a):
    s = core.read_namespaced_secret(a["name"], a["ns"])
    return {"data": s.data}


def op_create_job(_core, batch, a):
    # A raw dict body: the client sends it as given, so wrong types reach the server as a user's YAML would.
    j = batch.create_namespaced_job(a["ns"], a["body"])
    return {"name": j.metadata.name, "backoffLimit": j.spec.backoff_limit}


def op_watch_configmaps(core, _batch, a):
    """Watches from a resourceVersion until `count` events arrived (the client sends watch=True)."""
    w = watch.Watch()
    events = []
    for e in w.stream(core.list_namespaced_config_map, a["ns"], resource_version=a["rv"], timeout_seconds=a.get("timeout", 10)):
        events.append({"type": e["type"], "name": e["object"].metadata.name, "rv": e["object"].metadata.resource_version})
        if len(events) >= a["count"]:
            w.stop()
    return {"events": events}


def op_logs(core, _batch, a):
    """Follows a pod's log to its end (the client sends follow=True)."""
    resp = core.read_namespaced_pod_log(a["name"], a["ns"], follow=True, _preload_content=False)
    text = b"".join(resp.stream(amt=1024)).decode()
    return {"text": text}


def op_delete_job(_core, batch, a):
    r = batch.delete_namespaced_job(a["name"], a["ns"], propagation_policy=a["policy"])
    return {"kind": r.kind if hasattr(r, "kind") else None}


OPS = {k[3:]: v for k, v in globals().items() if k.startswith("op_")}


def main():
    kubeconfig, op = sys.argv[1], sys.argv[2]
    args = json.loads(sys.argv[3]) if len(sys.argv) > 3 else {}
    config.load_kube_config(config_file=kubeconfig)
    api = client.ApiClient()
    core, batch = client.CoreV1Api(api), client.BatchV1Api(api)
    try:
        out = OPS[op](core, batch, args)
    except ApiException as e:
        body = e.body.decode() if isinstance(e.body, bytes) else e.body
        try:
            body = json.loads(body) if body else None
        except ValueError:
            pass
        out = {"error": {"status": e.status, "reason": e.reason, "body": body}}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
