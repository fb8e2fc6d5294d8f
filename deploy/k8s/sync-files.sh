#!/usr/bin/env bash
# Copies the Prometheus and Grafana files the compose files mount into the Kubernetes base
# (kustomize loads no file outside a kustomization's directory). tests/test_deploy_k8s.py
# fails when the copies drift from the originals.
set -euo pipefail
cd "$(dirname "$0")/.."
files=k8s/base/files
cp prometheus/prometheus.yml "$files/prometheus.yml"
cp prometheus/rules/pluto-overview.yml "$files/pluto-overview.yml"
cp grafana/grafana.ini "$files/grafana.ini"
cp grafana/provisioning/datasources/prometheus.yaml "$files/datasources.yaml"
cp grafana/provisioning/dashboards/pluto.yaml "$files/dashboard-providers.yaml"
echo "synced deploy/k8s/base/files"
