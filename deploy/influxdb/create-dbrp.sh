#!/bin/bash
# Runs once, after the influxdb:2.x image's first-start setup (DOCKER_INFLUXDB_INIT_MODE=setup):
# maps the InfluxQL database/retention policy drift/autogen to the "drift" bucket, so that
# Grafana's InfluxQL datasource (monitor/dashboards/grafana/provisioning/datasources/drift.yaml) can query it.
set -euo pipefail

bucket="${DOCKER_INFLUXDB_INIT_BUCKET:-drift}"
org="${DOCKER_INFLUXDB_INIT_ORG:-drift}"
bucket_id="${DOCKER_INFLUXDB_INIT_BUCKET_ID:-}"
if [[ -z "$bucket_id" ]]; then
  bucket_id="$(influx bucket list --org "$org" --name "$bucket" --hide-headers | cut -f1)"
fi
if [[ -z "$bucket_id" ]]; then
  echo "create-dbrp: bucket $bucket not found in org $org" >&2
  exit 1
fi

influx v1 dbrp create --org "$org" --db drift --rp autogen --bucket-id "$bucket_id" --default
echo "create-dbrp: database drift, retention policy autogen -> bucket $bucket ($bucket_id)"
