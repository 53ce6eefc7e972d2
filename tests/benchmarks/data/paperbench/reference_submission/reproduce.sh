#!/usr/bin/env bash
# Runs the whole reproduction: writes results.csv (one row per dataset, model and scaling).
set -euo pipefail
cd "$(dirname "$0")"
python3 scaling.py results.csv
