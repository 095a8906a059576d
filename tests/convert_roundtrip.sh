#!/usr/bin/env bash
# torchvision <-> strata: for resnet18 (3x64x64) and vgg11_bn (3x32x32), 10 classes, a
# randomly initialised torchvision model (fixed seed; BatchNorm running statistics, affine
# parameters and biases randomised so that every tensor matters) is converted with
# launch/torchvision_convert.py to-strata; `strata inspect --verify` passes on the file;
# strata's forward (ckpt_forward, eval mode) matches torch's logits on the same input within
# 1e-4 x max |logit|; to-torch gives back the state_dict bit for bit (num_batches_tracked
# aside, and tensor(0) on the way back); --random --seed converts torchvision's seeded model.
# Then bad input: a state_dict missing a key, an unsupported arch, a file that is not
# a checkpoint and a checkpoint whose head is not 'original' are refused by name.
# Usage: convert_roundtrip.sh STRATA CKPT_FORWARD CONVERT_PY. Exit 77 without python3-torch.
set -uo pipefail
strata=$1 fwd=$2 conv=$3
py=/usr/bin/python3
if ! "$py" -c 'import torch, torchvision, h5py' 2>/dev/null; then
    echo "SKIP: python3-torch/python3-torchvision not installed"
    exit 77
fi
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "PASS: $*"; }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }
# check NAME CMD...: runs CMD, shows its output, counts.
check() {
    local name=$1
    shift
    if "$@" > "$dir/log" 2>&1; then
        cat "$dir/log"
        ok "$name"
        return 0
    fi
    cat "$dir/log"
    bad "$name"
    return 1
}

# The torch side: make (model, input, logits), logits (compare), same (state_dicts), drop.
helper=$(cat <<'EOF'
import sys
import h5py
import numpy as np
import torch
import torchvision

cmd, args = sys.argv[1], sys.argv[2:]
if cmd == "make":  # ARCH CxHxW SEED OUT_PREFIX: OUT.pt, OUT-in.h5 (x), OUT-torch.h5 (logits)
    arch, chw, seed, out = args[0], [int(v) for v in args[1].split("x")], int(args[2]), args[3]
    torch.manual_seed(seed)
    m = getattr(torchvision.models, arch)(num_classes=10)
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.normal_(0.0, 0.2)
                mod.running_var.uniform_(0.5, 2.0)
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.normal_(0.0, 0.2)
                mod.num_batches_tracked.fill_(7)
            elif isinstance(mod, (torch.nn.Conv2d, torch.nn.Linear)) and mod.bias is not None:
                mod.bias.uniform_(-0.1, 0.1)
    m.eval()
    x = torch.randn(4, *chw)
    with torch.no_grad():
        y = m(x)
    torch.save(m.state_dict(), out + ".pt")
    with h5py.File(out + "-in.h5", "w") as f:
        f["x"] = x.numpy()
    with h5py.File(out + "-torch.h5", "w") as f:
        f["logits"] = y.numpy()
    print(f"{arch}: {sum(t.numel() for t in m.state_dict().values()):,} values, logits {tuple(y.shape)}")
elif cmd == "logits":  # TORCH.h5 STRATA.h5
    a = h5py.File(args[0], "r")["logits"][()]
    b = h5py.File(args[1], "r")["logits"][()]
    if a.shape != b.shape:
        sys.exit(f"logits shapes differ: torch {a.shape}, strata {b.shape}")
    diff, scale = float(np.abs(a - b).max()), float(np.abs(a).max())
    print(f"max |logit| {scale:.6g}, max abs diff {diff:.3g}, ratio {diff / scale:.3g} (limit 1e-4)")
    sys.exit(0 if diff <= 1e-4 * scale else 1)
elif cmd == "same":  # A.pt B.pt: every key equal bit for bit (num_batches_tracked aside)
    a, b = torch.load(args[0]), torch.load(args[1])
    errs = [f"key {k} missing from {args[1]}" for k in a if k not in b]
    errs += [f"key {k} not in {args[0]}" for k in b if k not in a]
    n = 0
    for k in a:
        if k in b and k.endswith("num_batches_tracked"):
            if b[k].dtype != torch.int64 or b[k].dim() != 0 or b[k].item() != 0:
                errs.append(f"key {k} is {b[k]!r}, not tensor(0) as a new torchvision model has")
        elif k in b:
            n += 1
            if a[k].dtype != b[k].dtype or a[k].shape != b[k].shape or \
               not np.array_equal(a[k].numpy().view(np.uint8), b[k].numpy().view(np.uint8)):
                errs.append(f"key {k} differs")
    print("\n".join(errs) if errs else f"{n} tensors equal bit for bit, {len(a)} keys")
    sys.exit(1 if errs else 0)
elif cmd == "seeded":  # ARCH SEED OUT.pt: a new torchvision model after torch.manual_seed
    torch.manual_seed(int(args[1]))
    torch.save(getattr(torchvision.models, args[0])(num_classes=10).state_dict(), args[2])
elif cmd == "drop":  # IN.pt OUT.pt KEY
    sd = torch.load(args[0])
    del sd[args[2]]
    torch.save(sd, args[1])
EOF
)

for spec in "resnet18 3x64x64" "vgg11_bn 3x32x32"; do
    set -- $spec
    arch=$1 input=$2 p="$dir/$1"
    echo "== $arch, input $input, 10 classes"
    check "$arch: torchvision model" "$py" -c "$helper" make "$arch" "$input" 1 "$p" || continue
    check "$arch: to-strata" "$py" "$conv" to-strata --arch "$arch" --state-dict "$p.pt" \
        --input "$input" --classes 10 --out "$p.h5" --strata "$strata" || continue
    check "$arch: strata inspect --verify" "$strata" inspect "$p.h5" --verify
    if check "$arch: ckpt_forward" "$fwd" "$p.h5" "$p-in.h5" "$p-strata.h5"; then
        check "$arch: logits match torch" "$py" -c "$helper" logits "$p-torch.h5" "$p-strata.h5"
    fi
    check "$arch: to-torch" "$py" "$conv" to-torch --ckpt "$p.h5" --out "$p-back.pt" &&
        check "$arch: state_dict back bit for bit" "$py" -c "$helper" same "$p.pt" "$p-back.pt"
done

# --random --seed S converts what torch.manual_seed(S) and the torchvision constructor give.
echo "== to-strata --random"
p="$dir/random"
check "resnet18 --random --seed 3: to-strata" "$py" "$conv" to-strata --arch resnet18 --random \
    --seed 3 --classes 10 --out "$p.h5" --strata "$strata" &&
    check "resnet18 --random --seed 3: to-torch" "$py" "$conv" to-torch --ckpt "$p.h5" --out "$p-back.pt" &&
    check "resnet18 --random --seed 3: torchvision's model" "$py" -c "$helper" seeded resnet18 3 "$p.pt" &&
    check "resnet18 --random --seed 3: the same state_dict" "$py" -c "$helper" same "$p.pt" "$p-back.pt"

# refused NAME WANT CMD...: CMD must exit non-zero with WANT in its stderr.
refused() {
    local name=$1 want=$2
    shift 2
    if "$@" > "$dir/out.log" 2> "$dir/err.log"; then
        bad "$name: exited 0"
    elif ! grep -qF -- "$want" "$dir/err.log"; then
        cat "$dir/out.log" "$dir/err.log"
        bad "$name: stderr does not name '$want'"
    else
        ok "$name: $(head -c 300 "$dir/err.log" | tr '\n' ' ')"
    fi
}
echo "== bad input"
p="$dir/resnet18"
if [ -f "$p.pt" ]; then
    "$py" -c "$helper" drop "$p.pt" "$dir/missing.pt" layer2.0.bn1.running_var
    refused "to-strata, a state_dict missing a key" "'layer2.0.bn1.running_var'" \
        "$py" "$conv" to-strata --arch resnet18 --state-dict "$dir/missing.pt" --input 3x64x64 \
        --out "$dir/missing.h5" --strata "$strata"
    [ -e "$dir/missing.h5" ] && bad "a failed to-strata left $dir/missing.h5"
    refused "to-strata, the wrong class count" "'fc.weight'" \
        "$py" "$conv" to-strata --arch resnet18 --state-dict "$p.pt" --classes 7 \
        --out "$dir/classes.h5" --strata "$strata"
    refused "to-strata, another arch's state_dict" "missing torchvision key 'layer1.2.conv1.weight'" \
        "$py" "$conv" to-strata --arch resnet34 --state-dict "$p.pt" \
        --out "$dir/arch.h5" --strata "$strata"
    refused "to-torch, not a checkpoint" "not an HDF5 file" \
        "$py" "$conv" to-torch --ckpt "$p.pt" --out "$dir/x.pt"
    refused "to-torch, an HDF5 file that is not a checkpoint" "not a strata checkpoint" \
        "$py" "$conv" to-torch --ckpt "$p-in.h5" --out "$dir/x.pt"
    if [ -f "$p.h5" ]; then
        cp "$p.h5" "$dir/fastai.h5"
        "$py" -c 'import h5py, numpy, sys; h5py.File(sys.argv[1], "r+")["model"].attrs["head"] = numpy.bytes_(b"fastai")' "$dir/fastai.h5"
        refused "to-torch, a head that is not original" "'fastai' head" \
            "$py" "$conv" to-torch --ckpt "$dir/fastai.h5" --out "$dir/x.pt"
    fi
else
    bad "bad input: no resnet18 state_dict to start from"
fi
refused "to-strata, an unsupported arch" "--arch densenet121: not supported" \
    "$py" "$conv" to-strata --arch densenet121 --random --out "$dir/d.h5" --strata "$strata"

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
