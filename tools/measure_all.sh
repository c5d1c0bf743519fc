#!/usr/bin/env bash
# Re-runs every measurement the docs render; each lands in docs/measurements/ as a record (command, machine, date),
# written by python -m vitcore.measurement for the commands that print their figures. Then: python tools/render_docs.py
# Timings assume an idle machine: pause a training run first (kill -STOP PID, then kill -CONT PID).
# The longest steps (2-core Intel Xeon, 2026-12-03; 78 min for all): bench-edges 19 min, full-val sweep 18, bundled sweep 13,
# full-val target search 8.
# Resumable: a step that finished after the shipped weights last changed is skipped on the next
# call (marks in runs/measure_all/); FRESH=1 re-runs everything.
set -euo pipefail
cd "$(dirname "$0")/.."
out=docs/measurements
marks=runs/measure_all
mkdir -p "$out" "$marks"
W=n01443537,n01629819,n01641577   # goldfish, European fire salamander, bullfrog

step() {  # step NAME 'COMMAND': run COMMAND unless it already ran on the shipped model
  local mark="$marks/$1" start=$SECONDS
  if [[ -z "${FRESH:-}" && -f "$mark" && "$mark" -nt assets/model/model.safetensors ]]; then
    echo "skip $1 (done $(date -r "$mark" '+%F %T'))"; return
  fi
  echo "$(date +%T) $1"
  W=$W out=$out bash -euo pipefail -c "$2"
  touch "$mark"
  echo "$(date +%T) $1 took $((SECONDS - start)) s"
}

# Model-facing figures first (accuracy, the sweeps behind the README's EAP-vs-ACDC finding, circuits),
# then speed, the app, and the training benchmarks, so that a run cut short has done what matters most.
step evaluate_full_val 'python -m vitcore.measurement "$out/evaluate_full_val.json" -- python -m vitcore evaluate --data ../shared/data/tiny-imagenet-200.zip --split val --json'
step evaluate_bundled_val 'python -m vitcore.measurement "$out/evaluate_bundled_val.json" -- python -m vitcore evaluate --json'
step sweep 'python -m vitcore.measurement "$out/sweep.json" -- python -m vitcore sweep --classes $W --finetune-steps 20 --learned-steps 100 --target-accuracy 0.4 --out runs/sweep 2>/dev/null'
step sweep_full_val 'python -m vitcore.measurement "$out/sweep_full_val.json" -- python -m vitcore sweep --classes $W --finetune-steps 20 --learned-steps 100 --eval-data ../shared/data/tiny-imagenet-200.zip --out runs/sweep_full_val 2>/dev/null'
step target_full_val 'python -m vitcore.measurement "$out/target_full_val.json" -- python -m vitcore sweep --classes $W --eval-data ../shared/data/tiny-imagenet-200.zip --target-only --target-accuracy 0.45 --learned-steps 100 --out runs/target_full_val 2>/dev/null'
step bench_circuits 'python -m vitcore.measurement "$out/bench_circuits.json" -- python -m vitcore bench-circuits --classes $W 2>/dev/null'
step lrp_and_reference_tests 'python -m vitcore.measurement "$out/lrp_and_reference_tests.json" -- python -m pytest -q -s tests/test_lrp.py tests/test_reference_circuits.py'
step atlas 'rm -rf atlas/shipped && python -m vitcore atlas --methods eap-ig,eap,relp --backend local --out atlas/shipped 2>/dev/null && cp atlas/shipped/table.csv.gz atlas/shipped/atlas.json assets/atlas/'
step atlas_groups 'for m in eap-ig eap relp; do python benchmarks/atlas_groups.py assets/atlas --method $m --out "$out/atlas_groups_$m.json" > /dev/null; done'
step shortcut_model 'python -m vitcore shortcut eval --checkpoint assets/shortcut --control shipped --eval-data ../shared/data/tiny-imagenet-200.zip --json "$out/shortcut_model.json" > /dev/null'
step shortcut_cut 'python -m vitcore shortcut cut --checkpoint assets/shortcut --method eap,eap-ig,acdc,learned,lrp,relp --images 100 --eval-data ../shared/data/tiny-imagenet-200.zip --json "$out/shortcut_cut.json" > /dev/null 2>&1'
# SAEs: trained (long: see docs/results/features.md), shipped as float16, then measured on the full val split.
step sae_train_planted 'python -m vitcore.measurement "$out/sae_train_planted.json" -- python -m vitcore features train --checkpoint assets/shortcut --data ../shared/data/tiny-imagenet-200.zip --layers 2 --epochs 2 --out runs/sae-planted 2>/dev/null && mkdir -p assets/shortcut/sae && python -m vitcore features half --sae runs/sae-planted/L2.safetensors --out assets/shortcut/sae/L2.safetensors'
step sae_train_shipped 'python -m vitcore.measurement "$out/sae_train_x8_cls16.json" -- python -m vitcore features train --data ../shared/data/tiny-imagenet-200.zip --layers 4,8 --epochs 2 --cls-weight 16 --out runs/sae-x8-cls16 2>/dev/null && for l in 4 8; do python -m vitcore features half --sae runs/sae-x8-cls16/L$l.safetensors --out assets/model/sae/L$l.safetensors; done'
step sae_train_x8 'python -m vitcore.measurement "$out/sae_train_x8.json" -- python -m vitcore features train --data ../shared/data/tiny-imagenet-200.zip --layers 4,8 --epochs 2 --out runs/sae-shipped-x8 2>/dev/null && mkdir -p runs/sae-x8 && for l in 4 8; do python -m vitcore features half --sae runs/sae-shipped-x8/L$l.safetensors --out runs/sae-x8/L$l.safetensors; done'
step sae_quality_x8 'python -m vitcore.measurement "$out/sae_quality_x8.json" -- python -m vitcore features quality --data ../shared/data/tiny-imagenet-200.zip --sae runs/sae-x8/L4.safetensors runs/sae-x8/L8.safetensors 2>/dev/null'
step sae_quality_shipped 'python -m vitcore.measurement "$out/sae_quality_shipped.json" -- python -m vitcore features quality --data ../shared/data/tiny-imagenet-200.zip --sae assets/model/sae/L4.safetensors assets/model/sae/L8.safetensors 2>/dev/null'
step sae_quality_planted 'python -m vitcore.measurement "$out/sae_quality_planted.json" -- python -m vitcore features quality --checkpoint assets/shortcut --data ../shared/data/tiny-imagenet-200.zip --sae assets/shortcut/sae/L2.safetensors 2>/dev/null'
step sae_shortcut 'python -m vitcore.measurement "$out/sae_shortcut.json" -- python -m vitcore features shortcut --checkpoint assets/shortcut --sae assets/shortcut/sae/L2.safetensors --data ../shared/data/tiny-imagenet-200.zip --eval-data ../shared/data/tiny-imagenet-200.zip 2>/dev/null'
step bench_features 'python benchmarks/bench_features.py --out "$out/bench_features.json" 2>/dev/null'
step prune_eap50 'python -m vitcore.measurement "$out/prune_eap50.json" -- python -m vitcore prune --classes $W --method eap --keep 0.5 --out runs/eap50.zip'
step bench_latency_eap50 'python -m vitcore.measurement "$out/bench_latency_eap50.json" -- python -m vitcore bench-latency --checkpoint runs/eap50.zip'
step bench 'python -m vitcore.measurement "$out/bench.json" -- python benchmarks/bench.py'
step bench_app 'python -m vitcore.measurement "$out/bench_app.json" -- python benchmarks/bench_app.py'
step bench_inspect 'python -m vitcore.measurement "$out/bench_inspect.json" -- python benchmarks/bench_inspect.py'
step load_test 'python benchmarks/load_test.py --out "$out/load_test_chart_on_demand_run1.json" > /dev/null'
step load_test_class 'for i in 1 2; do python benchmarks/load_test.py --pattern class --browser-nice 19 --out "$out/load_test_class_service_run$i.json" > /dev/null; done'
step load_test_open 'for i in 1 2 3; do python benchmarks/load_test.py --pattern open --browser-nice 19 --out "$out/load_test_open_after_run$i.json" > /dev/null; done'
step class_service 'python benchmarks/bench_class_service.py --students 6 --toggles 5 --out "$out/class_service_6.json" > /dev/null && python benchmarks/bench_class_service.py --students 30 --toggles 2 --out "$out/class_service_30.json" > /dev/null'
step estimates 'python benchmarks/bench_estimates.py --threads 1 --out "$out/estimates.json" > /dev/null'
step own_vit 'python benchmarks/bench_own_vit.py --out "$out/own_vit_tiny.json" > /dev/null && python benchmarks/bench_own_vit.py --arch vit_base_patch16_224 --repeats 2 --out "$out/own_vit_base.json" > /dev/null'
step finetune_defaults 'python -m vitcore.measurement "$out/finetune_defaults.json" -- python benchmarks/finetune_defaults.py'
step bench_edges 'python -m vitcore.measurement "$out/bench_edges.json" -- python -m vitcore bench-edges --classes $W --images 30 --few-images 3 2>/dev/null'
step bench_faithfulness 'python -m vitcore bench-faithfulness --data ../shared/data/tiny-imagenet-200.zip --images 50 > /dev/null'
step bench_exact 'python benchmarks/bench_exact.py --data ../shared/data/tiny-imagenet-200.zip --out "$out/bench_exact.json" > /dev/null'
step learned_ranking 'python benchmarks/bench_learned_ranking.py --out "$out/learned_ranking.json" > /dev/null'
step bench_acdc_cache 'python benchmarks/bench_acdc_cache.py --rounds 5 --out "$out/bench_acdc_cache.json" > /dev/null'
step bench_train 'python -m vitcore.measurement "$out/bench_train.json" -- python -m vitcore bench-train --data ../shared/data/tiny-imagenet-200.zip --json runs/bench_train_rows.json 2>/dev/null'
step bench_learned_target 'python benchmarks/bench_learned_target.py --edge-targets --constraints projection --out "$out/bench_learned_target.json" > /dev/null && python benchmarks/bench_learned_target.py --node-targets --edge-targets 0.95 --out "$out/bench_learned_target_edges.json" > /dev/null && python benchmarks/bench_learned_target.py --node-targets 0.5 0.9 --constraints lagrangian --edge-targets --out "$out/bench_learned_target_lagrangian.json" > /dev/null'
step render_docs 'python tools/render_docs.py'
step bench_augment_groups 'python -m vitcore.measurement "$out/bench_augment_groups.json" -- python benchmarks/bench_augment_groups.py'
# On Intel CPUs MKL already takes its fast path, so the shim changes nothing there: the two arms check the benchmark's noise.
cpu=$(grep -q AuthenticAMD /proc/cpuinfo && echo amd || echo intel)
step bench_mkl_amd "python -m vitcore.measurement \"\$out/bench_mkl_amd_on_$cpu.json\" -- python benchmarks/bench_mkl_amd.py --rounds 4"
