#!/usr/bin/env bash
# Runs every shipped study at the scale that fits a 2-core CPU and writes each report
# (used for docs/results.md). CIFAR-10 studies run on Fashion-MNIST here (--data), since
# CIFAR-10 is not available on these machines. Usage: bash scripts/reproduce-cpu.sh [OUT]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-runs}
export PETRI_DATA=${PETRI_DATA:-../shared/datasets}
petri=.venv/bin/petri
$petri run studies/inverted-mnist.toml --out "$out/inverted-mnist"
$petri run studies/inverted-mnist-bn.toml --out "$out/inverted-mnist-bn"
$petri run studies/mlp-log.toml --out "$out/mlp-log"
$petri run studies/cross-sampling.toml --profile cpu --out "$out/cross-sampling-cpu"
$petri run studies/activations.toml --out "$out/activations"
$petri run studies/lenet5.toml --profile cpu --out "$out/lenet5-cpu"
for s in cifar-bn-lr cifar-augment cifar-label-noise cifar-corruptions; do
  $petri run "studies/$s.toml" --profile cpu --data fashion-mnist --out "$out/$s-fashion-cpu"
done
$petri run studies/bn-lr.toml --out "$out/bn-lr"
$petri run studies/equivalence.toml --out "$out/equivalence"
$petri run studies/equivalence.toml --profile few --out "$out/equivalence-few"
$petri run studies/adaptive.toml --out "$out/adaptive"
$petri run studies/calibration.toml --out "$out/calibration"
$petri run studies/noise-sources.toml --out "$out/noise-sources"
$petri run studies/noise-sources.toml --data fashion-mnist --out "$out/noise-sources-fashion"
