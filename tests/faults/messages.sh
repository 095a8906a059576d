#!/usr/bin/env bash
# Messages that name the config (issue 17 item 6): what a run refuses after loading its config
# (the data or the model disagreeing with it) names the keys, their values, where they were
# given (FILE:LINE: key, or the override's text) and what to change:
#  1. train.accumulate x data.batch_size x ranks beyond an epoch of data.train (it said "a
#     rank's share of the data is 0 samples");
#  2. model.split with model.cut leaving an empty layer group (it said "splits must lie in
#     1..0"), and a model.cut beyond the architecture;
#  3. model.input and model.classes against the data, at the file's line or the override (they
#     named no key's origin).
# Usage: messages.sh STRATA CONFIG (tests/configs/synthetic.yaml: model.input at line 5,
# model.classes at line 6, data.batch_size 32, 512 synthetic samples, mlp [32, 32])
set -uo pipefail
strata=$1 config=$2
dir=$(mktemp -d "${TMPDIR:-/tmp}/strata-messages.XXXXXX")
trap 'rm -rf "$dir"' EXIT
fails=0 n=0
# expect NAME WANT [--set ...]: train exits 1 (no signal) and prints WANT exactly.
expect() {
    local name=$1 want=$2
    shift 2
    n=$((n + 1))
    "$strata" train "$config" --set run.dir="$dir/run$n" --set train.epochs=1 "$@" > "$dir/out.log" 2>&1
    local st=$?
    if ((st == 1)) && grep -qxF -- "strata train: rank 0: $want" "$dir/out.log"; then
        echo "ok: $name"
    else
        echo "FAIL: $name (exit $st), wanted: $want"
        grep "strata train" "$dir/out.log" | tail -2
        fails=$((fails + 1))
    fi
}

expect "accumulate beyond an epoch" "--set train.accumulate=65536: train.accumulate: train.accumulate 65536 x data.batch_size 32 x 1 rank = 2097152 samples per optimizer step, more than data.train's 512 samples (synthetic), 512 per rank per epoch: an epoch would hold no optimizer step; lower train.accumulate to at most 16" \
    --set train.accumulate=65536
expect "accumulate just beyond an epoch" "--set train.accumulate=17: train.accumulate: train.accumulate 17 x data.batch_size 32 x 1 rank = 544 samples per optimizer step, more than data.train's 512 samples (synthetic), 512 per rank per epoch: an epoch would hold no optimizer step; lower train.accumulate to at most 16, or data.batch_size to at most 30" \
    --set train.accumulate=17
expect "batch beyond an epoch, batch_size in the file" "$config:17: data.batch_size: data.batch_size 32 x 1 rank = 32 samples per optimizer step, more than data.train's 20 samples (synthetic), 20 per rank per epoch: an epoch would hold no optimizer step; lower data.batch_size to at most 20" \
    --set data.synthetic.samples=20
expect "a split of 1..0" "--set model.split=1: model.split: 1 with model.cut 1 (--set model.cut=1) gives the layer groups 0..0, 1..0 (body children), and 1..0 is empty: the body of mlp has 1 child (0..0) after that cut, of 6; a body of 1 child cannot be split; give model.split: null or [] (one group), or a larger model.cut (2..6; 0 keeps every child)" \
    --set model.cut=1 --set model.split=1
expect "a split at the default cut" "--set model.split=[2,5]: model.split: [2, 5] with mlp's default model.cut 5 gives the layer groups 0..1, 2..4, 5..4 (body children), and 5..4 is empty: the body of mlp has 5 children (0..4) after that cut, of 6; split points must lie in 1..4; give split points in 1..4, or model.split: null for mlp's default, or a larger model.cut (6 or 0, every child)" \
    --set 'model.split=[2,5]'
expect "a cut beyond the children" "--set model.cut=25: model.cut: 25 is out of range for mlp, which has 6 children: give 0..6 (0 keeps every child), or null for mlp's default (5)" \
    --set model.cut=25
expect "model.input of the file against the data" "$config:5: model.input: 1x8x8 does not match the 3x8x8 samples of data.train (synthetic); give [3, 8, 8], or null to take the data's shape" \
    --set 'data.synthetic.input=[3,8,8]'
expect "model.input of an override" "--set model.input=3x8x8: model.input: 3x8x8 does not match the 1x8x8 samples of data.train (synthetic); give [1, 8, 8], or null to take the data's shape" \
    --set model.input=3x8x8
expect "model.classes of the file against the data" "$config:6: model.classes: 4 classes are too few for the labels of data.train (synthetic, 6 classes): synthetic: sample 0 has label 4, outside [0, 4) for a model with 4 classes; give at least 6, or 0 to take the data's" \
    --set data.synthetic.classes=6
expect "a model the input is too small for" "--set model.arch=vgg16_bn: model.arch: vgg16_bn on input 1x8x8: body: child (33): MaxPool2d(kernel_size=2, padding=0): input 1x1 is too small" \
    --set model.arch=vgg16_bn
echo "$((n - fails)) passed, $fails failed"
((fails == 0))
