"""Checks the Kubernetes manifests beside it (they cannot be applied here): each parses as YAML,
has the fields its kind needs, and they agree with each other — the StatefulSet's Service, its
labels and selector, the pod index as EMBER_CLUSTER_PROCESS, and a host list that names every
pod through the headless Service in ordinal order on the cluster port. Run by scripts/test.sh."""

import pathlib
import sys

import yaml

here = pathlib.Path(__file__).parent
docs = {}
for path in sorted(here.glob("*.yaml")):
    for doc in yaml.safe_load_all(path.read_text()):
        for key in ("apiVersion", "kind", "metadata"):
            assert key in doc, f"{path.name}: no {key}"
        docs[doc["kind"]] = doc

service, sts, pvc = docs["Service"], docs["StatefulSet"], docs["PersistentVolumeClaim"]
assert service["spec"]["clusterIP"] == "None", "the Service must be headless"
assert service["spec"]["publishNotReadyAddresses"] is True, "peers connect before they are ready"
port = {p["name"]: p["port"] for p in service["spec"]["ports"]}["cluster"]

spec = sts["spec"]
name, replicas = sts["metadata"]["name"], spec["replicas"]
assert spec["serviceName"] == service["metadata"]["name"], "the StatefulSet names its Service"
assert spec["podManagementPolicy"] == "Parallel", "pods start together"
labels = spec["template"]["metadata"]["labels"]
assert spec["selector"]["matchLabels"].items() <= labels.items(), "the selector matches the pods"
assert service["spec"]["selector"].items() <= labels.items(), "the Service selects the pods"

pod = spec["template"]["spec"]
(container,) = pod["containers"]
env = {e["name"]: e for e in container["env"]}
index = env["EMBER_CLUSTER_PROCESS"]["valueFrom"]["fieldRef"]["fieldPath"]
assert index == "metadata.labels['apps.kubernetes.io/pod-index']", index
hosts = env["EMBER_CLUSTER_HOSTS"]["value"].split(",")
want = [f"{name}-{i}.{spec['serviceName']}:{port}" for i in range(replicas)]
assert hosts == want, f"EMBER_CLUSTER_HOSTS {hosts} should be {want}"
assert int(env["EMBER_CLUSTER_WORKERS"]["value"]) >= 1
assert {p["containerPort"] for p in container["ports"]} == {port}

claims = {v["name"]: v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"]}
assert claims[container["volumeMounts"][0]["name"]] == pvc["metadata"]["name"], "checkpoints on the shared claim"
assert "ReadWriteMany" in pvc["spec"]["accessModes"], "every pod mounts the checkpoints read-write"
print(f"deploy/kubernetes: {len(docs)} manifests agree ({replicas} processes on port {port})")
