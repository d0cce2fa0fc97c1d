#!/usr/bin/env bash
# End-to-end on a kind cluster, for machines with a Docker engine (not run in CI here).
# Builds the image, loads it into kind, installs the chart and applies examples/local.yaml
# (its relative sqlite path lands in the worker pod's /data volume),
# then waits for the connection to be Ready. NATS is the caller's: a server with JetStream
# reachable from the cluster at $NATS_URL (default nats://nats.nats:4222).
set -euo pipefail
cd "$(dirname "$0")/.."
cluster="${KIND_CLUSTER:-akeneo-e2e}"
image="akeneo-connector:e2e"
nats_url="${NATS_URL:-nats://nats.nats:4222}"
for tool in docker kind kubectl helm; do
  command -v "$tool" >/dev/null || { echo "e2e-kind needs $tool on PATH" >&2; exit 1; }
done
docker info >/dev/null 2>&1 || { echo "e2e-kind needs a running Docker engine" >&2; exit 1; }
kind get clusters | grep -qx "$cluster" || kind create cluster --name "$cluster" --wait 120s
docker build -t "$image" .
kind load docker-image "$image" --name "$cluster"
helm upgrade --install akeneo charts/akeneo-connector-operator \
  --namespace akeneo-operator --create-namespace \
  --set image.repository=akeneo-connector --set image.tag=e2e --set nats.url="$nats_url" --wait
kubectl create namespace demo --dry-run=client -o yaml | kubectl apply -f -
kubectl apply -f examples/local.yaml
kubectl -n demo wait akeneoconnection/demo --for=condition=Ready --timeout=300s
kubectl -n demo get akeneoconnections,deploy,svc,cronjob
