#!/usr/bin/env bash
# Every figure the README and evsim/bundled/nmnist_cnn/MODEL_CARD.md quote for the bundled N-MNIST model,
# measured with the evsim CLI on the held-out test split (191 recordings of
# $EVSIM_SHARED_DATA/nmnist-train1k); the cutoff is calibrated without the test recordings: on the
# split's 96 calibration recordings (several ε), and on all 809 recordings outside the test split
# (train + calibration, ε = 0.01: the bundled calibration).
#
#   bash examples/nmnist_figures.sh [DATA] [OUT]      (defaults: $EVSIM_SHARED_DATA/nmnist-train1k, docs/results)
#
# Writes one `evsim eval --json` file per configuration to OUT, a summary table OUT/summary.md,
# the calibration files, the figures docs/images/{accuracy_vs_latency,cutoff_epsilon,temporal,classes,raster}.png
# and the page OUT/report.html. A few minutes on 2 cores. With the JSON files already in OUT,
# FIGURES_ONLY=1 redraws only the figures (no evaluation). UPDATE_BUNDLED=1 copies the new ε = 0.01
# calibration on the 809 recordings over evsim/bundled/nmnist_cnn/calibration_speck.json.
set -euo pipefail
DATA=${1:-${EVSIM_SHARED_DATA:-../shared/data}/nmnist-train1k}
OUT=${2:-docs/results}
MODEL=evsim/bundled/nmnist_cnn/model.nir
SPLIT=evsim/bundled/nmnist_cnn/split.json
EVSIM=${EVSIM:-$(command -v evsim || echo .venv/bin/evsim)}
W=${WORKERS:-2}
mkdir -p "$OUT" docs/images
test_eval() { "$EVSIM" eval "$MODEL" "$DATA" --subset "$SPLIT:test" --workers "$W" --quiet "$@"; }

if [ -z "${FIGURES_ONLY:-}" ]; then
# 1. event-driven, no cutoff, both chip-style profiles
test_eval --profile speck --json "$OUT/event_speck.json"
test_eval --profile sinabs --json "$OUT/event_sinabs.json"

# 2. clock-driven baseline (the training semantics), several step widths
for b in 1000 5000 20000 50000; do
  test_eval --profile sinabs --mode clock --bin-us "$b" --json "$OUT/clock_sinabs_${b}us.json"
done
test_eval --profile sinabs --mode clock --n-bins 1 --json "$OUT/clock_sinabs_1bin.json"

# 3. Top-K cutoff calibrated on the calibration split (never on test), speck profile:
#    one threshold per 10 ms of elapsed time, and one global threshold; several ε
for eps in 0.01 0.02 0.03 0.05; do
  "$EVSIM" calibrate "$MODEL" "$DATA" --subset "$SPLIT:calibration" --profile speck --cutoff topk \
      --epsilon "$eps" --workers "$W" --quiet -o "$OUT/cal_topk_bins_${eps}.json"
  test_eval --profile speck --calibration "$OUT/cal_topk_bins_${eps}.json" --json "$OUT/event_speck_topk_bins_${eps}.json"
  "$EVSIM" calibrate "$MODEL" "$DATA" --subset "$SPLIT:calibration" --profile speck --cutoff topk \
      --epsilon "$eps" --calib-bins 1 --workers "$W" --quiet -o "$OUT/cal_topk_global_${eps}.json"
  test_eval --profile speck --calibration "$OUT/cal_topk_global_${eps}.json" --json "$OUT/event_speck_topk_global_${eps}.json"
done
# the same cutoff in the clock-driven baseline at 1 ms (calibrated there too)
"$EVSIM" calibrate "$MODEL" "$DATA" --subset "$SPLIT:calibration" --profile sinabs --mode clock --bin-us 1000 \
    --cutoff topk --epsilon 0.01 --workers "$W" --quiet -o "$OUT/cal_clock_topk_bins_0.01.json"
test_eval --profile sinabs --mode clock --bin-us 1000 --calibration "$OUT/cal_clock_topk_bins_0.01.json" \
    --json "$OUT/clock_sinabs_1000us_topk_bins_0.01.json"

# 4. the bundled calibration: ε = 0.01 on every recording outside the test split (809: train +
#    calibration; 96 recordings cannot certify ε = 0.01 at confidence 0.9, docs/SEMANTICS.md#calibration)
python3 -c 'import json, sys; s = json.load(open(sys.argv[1])); print("\n".join(s["train"] + s["calibration"]))' \
    "$SPLIT" > "$OUT/subset_outside_test.txt"
"$EVSIM" calibrate "$MODEL" "$DATA" --subset "$OUT/subset_outside_test.txt" --profile speck --cutoff topk \
    --epsilon 0.01 --workers "$W" --quiet -o "$OUT/cal_topk_bins_0.01_outside_test.json"
test_eval --profile speck --calibration "$OUT/cal_topk_bins_0.01_outside_test.json" \
    --json "$OUT/event_speck_topk_bins_0.01_outside_test.json"
if [ -n "${UPDATE_BUNDLED:-}" ]; then
  cp "$OUT/cal_topk_bins_0.01_outside_test.json" evsim/bundled/nmnist_cnn/calibration_speck.json
fi
fi

# 5. the figures
# accuracy vs latency / events consumed / speed-up, every result with its 95 % Wilson interval
# (the accuracy axis zoomed to 88-100 %; the one-bin clock run, 78 %, sits on its lower edge)
"$EVSIM" plot "$OUT/event_speck.json" "$OUT/event_sinabs.json" "$OUT/event_speck_topk_bins_0.01_outside_test.json" \
    "$OUT/event_speck_topk_bins_0.05.json" "$OUT/clock_sinabs_1000us.json" "$OUT/clock_sinabs_5000us.json" \
    "$OUT/clock_sinabs_20000us.json" "$OUT/clock_sinabs_50000us.json" "$OUT/clock_sinabs_1bin.json" \
    "$OUT/clock_sinabs_1000us_topk_bins_0.01.json" --accuracy-lim 88 100 \
    --title "Bundled N-MNIST CNN, 191 held-out recordings (95 % Wilson intervals)" -o docs/images/accuracy_vs_latency.png
# the calibrated cutoff at several tolerated error rates ε, per 10 ms bin and one global threshold
"$EVSIM" plot "$OUT/event_speck.json" "$OUT"/event_speck_topk_bins_0.0[1235].json \
    "$OUT"/event_speck_topk_global_0.0[1235].json "$OUT/event_speck_topk_bins_0.01_outside_test.json" \
    --panels latency,fraction --accuracy-lim 88 100 \
    --name "no cutoff" --name "96 rec., per 10 ms, ε=0.01" --name "96 rec., per 10 ms, ε=0.02" \
    --name "96 rec., per 10 ms, ε=0.03" --name "96 rec., per 10 ms, ε=0.05" --name "96 rec., one β, ε=0.01" \
    --name "96 rec., one β, ε=0.02" --name "96 rec., one β, ε=0.03" --name "96 rec., one β, ε=0.05" \
    --name "809 rec., per 10 ms, ε=0.01" \
    --title "Calibrated top-k cutoff, speck profile, 191 held-out recordings" -o docs/images/cutoff_epsilon.png
# temporal flexibility: the same model at every clock bin width and event-driven
"$EVSIM" plot-temporal "$OUT/event_speck.json" "$OUT"/clock_sinabs_{1000,5000,20000,50000}us.json \
    "$OUT/clock_sinabs_1bin.json" --title "Bundled N-MNIST CNN across time resolutions" -o docs/images/temporal.png
# per class: confusion matrix, accuracy and decision latency of the calibrated cutoff
"$EVSIM" plot-classes "$OUT/event_speck_topk_bins_0.01_outside_test.json" -o docs/images/classes.png
# one recording: raster up to a little past the cutoff decision, with the oracle cutoff time
"$EVSIM" raster "$MODEL" evsim/bundled/nmnist_cnn/samples/7/00186.bin --profile speck \
    --calibration "$OUT/cal_topk_bins_0.01_outside_test.json" -o docs/images/raster.png
# everything in one HTML page (figures embedded, tables, provenance)
"$EVSIM" report "$OUT"/event_*.json "$OUT"/clock_*.json -o "$OUT/report.html"

python - "$OUT" <<'EOF'
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
rows = []
for f in sorted(out.glob("*.json")):
    if f.name.startswith("cal_"):
        continue
    d = json.loads(f.read_text())
    rows.append((f.stem, d["accuracy"], d["mean_events_fraction"], d["mean_latency_us"] / 1000, d["synops_per_sample"]))
lines = ["| configuration | accuracy | events consumed | speed-up (events) | mean latency | SynOps / sample |",
         "|---|---|---|---|---|---|"]
for name, acc, frac, lat, syn in rows:
    lines.append(f"| {name} | {100 * acc:.2f} % | {100 * frac:.1f} % | {1 / frac:.2f}× | {lat:.1f} ms | {syn:.3g} |")
(out / "summary.md").write_text("\n".join(lines) + "\n")
print("\n".join(lines))
EOF
