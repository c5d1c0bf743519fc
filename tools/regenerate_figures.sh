#!/usr/bin/env bash
# Regenerates the docs' generated images on purpose (measurement runs never touch them):
#   docs/screenshots/*.png   the browser test's screenshot of every page
#   docs/figures/sweep*.{png,csv}  the Pareto sweeps that tools/measure_all.sh last wrote to runs/
#   docs/figures/train_log.png     the shipped model's training log
# Usage: bash tools/regenerate_figures.sh [screenshots] [sweeps] [train-log]   (no argument: all three)
set -euo pipefail
cd "$(dirname "$0")/.."
what=("$@"); [[ ${#what[@]} -eq 0 ]] && what=(screenshots sweeps train-log)
for w in "${what[@]}"; do
  case $w in
    screenshots)
      python -m pytest -q tests/test_browser.py
      cp test-artifacts/{model,circuits,graph,prune,compare,atlas,export,shortcut,component,one_image}.png docs/screenshots/ ;;
    sweeps)
      for s in sweep sweep_full_val; do cp "runs/$s.png" "runs/$s.csv" docs/figures/; done ;;
    train-log)
      python tools/plot_train_log.py assets/model/train_log.json docs/figures/train_log.png ;;
    *) echo "unknown: $w (screenshots, sweeps or train-log)" >&2; exit 2 ;;
  esac
done
