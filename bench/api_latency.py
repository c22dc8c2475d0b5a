#!/usr/bin/env python3
"""bench/api_latency.py KUBECONFIG IMAGE COUNT OUT_TSV

Create -> Running latency through the API, one pod at a time: for each pod, POST it, then
follow a watch on that pod until status.phase is Running, and record the elapsed time. Also
deletes each pod after it ran (grace 0) so pods do not pile up. Python stdlib only; the client
certificate and token come from the kubeconfig nodelet serve writes.
"""
import base64, http.client, json, os, ssl, statistics, sys, tempfile, time, urllib.parse

def load_kubeconfig(path):
    import re
    text = open(path).read()
    try:
        config = json.loads(text)
    except ValueError:
        config = None
    if config is None:  # simple YAML: key: value lines are enough for our kubeconfig
        values = dict(re.findall(r"^\s*-?\s*([a-z-]+):\s*(\S+)\s*$", text, re.M))
        return values
    cluster = config["clusters"][0]["cluster"]
    user = config["users"][0]["user"]
    return {**cluster, **user}

def connection(cfg):
    url = urllib.parse.urlparse(cfg["server"])
    ctx = ssl.create_default_context()
    tmp = tempfile.mkdtemp()
    ca = os.path.join(tmp, "ca.pem")
    open(ca, "wb").write(base64.b64decode(cfg["certificate-authority-data"]))
    ctx.load_verify_locations(ca)
    headers = {}
    if "client-certificate-data" in cfg:
        cert, key = os.path.join(tmp, "c.pem"), os.path.join(tmp, "k.pem")
        open(cert, "wb").write(base64.b64decode(cfg["client-certificate-data"]))
        open(key, "wb").write(base64.b64decode(cfg["client-key-data"]))
        ctx.load_cert_chain(cert, key)
    if "token" in cfg:
        headers["Authorization"] = "Bearer " + cfg["token"]
    return lambda: http.client.HTTPSConnection(url.hostname, url.port, context=ctx), headers

def main():
    kubeconfig, image, count, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    connect, headers = connection(load_kubeconfig(kubeconfig))
    headers["Content-Type"] = "application/json"
    api = connect()
    latencies = []
    for i in range(count):
        name = f"lat-{i}"
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
               "spec": {"terminationGracePeriodSeconds": 0, "containers": [
                   {"name": "main", "image": image, "imagePullPolicy": "IfNotPresent",
                    "command": ["/bin/sleep", "3600"]}]}}
        watch = connect()
        start = time.monotonic()
        api.request("POST", "/api/v1/namespaces/default/pods", json.dumps(pod), headers)
        created = api.getresponse()
        body = json.loads(created.read())
        if created.status != 201:
            sys.exit(f"create {name}: {created.status} {body}")
        rv = body["metadata"]["resourceVersion"]
        watch.request("GET", f"/api/v1/namespaces/default/pods?watch=1&resourceVersion={rv}"
                      f"&fieldSelector=metadata.name%3D{name}", headers=headers)
        stream = watch.getresponse()
        while True:
            line = stream.readline()
            if not line:
                sys.exit(f"watch of {name} ended before Running")
            event = json.loads(line)
            if event["object"].get("status", {}).get("phase") == "Running":
                break
        latencies.append((time.monotonic() - start) * 1000)
        watch.close()
        api.request("DELETE", f"/api/v1/namespaces/default/pods/{name}",
                    json.dumps({"gracePeriodSeconds": 0}), headers)
        api.getresponse().read()
    ordered = sorted(latencies)
    p = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]
    with open(out, "w") as f:
        f.write("pods\tp50_ms\tp99_ms\tmin_ms\tmax_ms\tmean_ms\n")
        f.write(f"{count}\t{statistics.median(ordered):.0f}\t{p(0.99):.0f}\t{ordered[0]:.0f}"
                f"\t{ordered[-1]:.0f}\t{statistics.mean(ordered):.0f}\n")
    print(open(out).read(), end="")

main()
