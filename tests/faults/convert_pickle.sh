#!/usr/bin/env bash
# A .pt file is a pickle, and unpickling runs whatever its __reduce__ names: the converter
# must read only tensors (torch.load weights_only=True). A file whose object would run code
# when loaded (here: write a marker file) is refused with a message that says why, nothing
# runs, and no checkpoint is written. A whole pickled nn.Module is refused the same way.
#
# Usage: convert_pickle.sh STRATA CONVERTER
set -uo pipefail
strata=$1 conv=$2
dir=$(mktemp -d "${TMPDIR:-/tmp}/strata-convert-pickle.XXXXXX")
trap 'rm -rf "$dir"' EXIT
fails=0
ok() { echo "ok: $*"; }
bad() { echo "FAIL: $*"; fails=$((fails + 1)); }

if ! /usr/bin/python3 -c "import torch, torchvision" 2>/dev/null; then
    echo "SKIP: Debian's python3-torch and python3-torchvision are not installed"
    exit 77
fi

/usr/bin/python3 - "$dir" <<'PY' || { echo "FAIL: could not make the test pickles"; exit 1; }
import os, sys, torch, torchvision
d = sys.argv[1]
class Payload:
    def __reduce__(self):
        return (open, (os.path.join(d, "payload-ran"), "w"))
sd = torchvision.models.resnet18(num_classes=10).state_dict()
sd["extra"] = Payload()
torch.save(sd, os.path.join(d, "evil.pt"))
torch.save(torchvision.models.resnet18(num_classes=10), os.path.join(d, "module.pt"))
PY
[ -e "$dir/payload-ran" ] && { rm -f "$dir/payload-ran"; echo "note: saving ran nothing of ours"; }

for f in evil module; do
    /usr/bin/python3 "$conv" to-strata --arch resnet18 --state-dict "$dir/$f.pt" --out "$dir/$f.h5" \
        --input 3x32x32 --strata "$strata" > "$dir/$f.log" 2>&1
    rc=$?
    if [ "$rc" -eq 1 ] && grep -q "$dir/$f.pt: refused: it holds more than tensors" "$dir/$f.log"; then
        ok "$f.pt refused (exit 1): $(head -c 160 "$dir/$f.log")"
    else
        bad "$f.pt: exit $rc, expected 1 and the refusal"; cat "$dir/$f.log"
    fi
    [ -e "$dir/$f.h5" ] && bad "$f.pt: a checkpoint was written" || ok "$f.pt: no checkpoint written"
done
[ -e "$dir/payload-ran" ] && bad "the pickle's payload ran" || ok "the pickle's payload did not run"
exit $((fails > 0))
