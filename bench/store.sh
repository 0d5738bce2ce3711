#!/usr/bin/env bash
# Benchmarks the store on the sheet's book, in a copy of it:
#
# 1. A warm `mdbook build` (every record valid) against the same book with
#    the preprocessor disabled, and against the rendered chapter served as
#    plain Markdown (which isolates the preprocessor's own cost from mdBook's
#    work on a longer page). Runs alternate, and medians are compared, so
#    that the noise of a shared machine hits both sides alike.
# 2. How many docker processes the warm builds started (must be 0).
# 3. How many steps run after an edit of one step, and after an edit of one
#    exercise file, once checkpoints exist.
#
# Part 3 runs the whole sheet once, so it needs a daemon that belongs to
# this run alone: set WORKBOOK_DEDICATED_DAEMON=1 (CI's daemon, or a fresh
# machine's). RUNS sets the number of timed builds per side (default 15);
# SKIP_EDITS=1 leaves part 3 out.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
runs=${RUNS:-15}
work=$(mktemp -d -t workbook-bench-XXXXXX)
trap 'rm -rf "$work"' EXIT

cargo build --release --quiet --manifest-path "$repo/Cargo.toml"
export PATH="$repo/target/release:$PATH"
export WORKBOOK_CACHE="$work/cache"
unset CI WORKBOOK_MODE

cp -r "$repo/book" "$repo/exercises" "$repo/theme" "$work/"
rm -rf "$work/book/book"
chapter=src/06.2-docker-advanced.md

# The same book without the preprocessor.
cp -r "$work/book" "$work/plain"
python3 - "$work/plain/book.toml" <<'PY'
import sys
p = sys.argv[1]
# Drop every table of the preprocessor: [preprocessor.workbook],
# [preprocessor.workbook.repos], [[preprocessor.workbook.compare]], ...
kept, inside = [], False
for line in open(p).read().splitlines(keepends=True):
    header = line.strip()
    if header.startswith("["):
        inside = header.lstrip("[").startswith("preprocessor.workbook")
    if not inside:
        kept.append(line)
text = "".join(kept)
assert "workbook" not in text.replace("workbook.css", ""), text
open(p, "w").write(text)
PY

# A docker client that counts its starts.
real_docker=$(command -v docker || true)
mkdir "$work/shim"
cat > "$work/shim/docker" <<SH
#!/bin/sh
echo "\$*" >> "$work/docker-calls"
exec ${real_docker:-false} "\$@"
SH
chmod +x "$work/shim/docker"
export PATH="$work/shim:$PATH"
: > "$work/docker-calls"

build() { # book [env...] -> stderr in $work/log
  local book=$1; shift
  env "$@" mdbook build "$work/$book" 2> "$work/log" > /dev/null
}
ms() { date +%s%N; }

# The warm book must run nothing.
build book
if grep -q "ran [0-9]* steps" "$work/log"; then
  echo "the committed store is not warm for this book:" >&2
  grep "running steps" "$work/log" >&2
  exit 1
fi
: > "$work/docker-calls"

# The rendered chapter as plain Markdown, for the second comparison: what
# mdBook sends the preprocessor is captured once, and its answer kept.
cp -r "$work/plain" "$work/static"
python3 - "$work" <<'PY'
import json, os, subprocess, sys
work = sys.argv[1]
# Capture what mdBook sends to the preprocessor, run it once, keep the result.
capture = os.path.join(work, "capture.sh")
with open(capture, "w") as f:
    f.write('#!/bin/sh\nif [ $# -eq 0 ]; then tee "%s/input.json" | mdbook-workbook; else mdbook-workbook "$@"; fi\n' % work)
os.chmod(capture, 0o755)
toml = os.path.join(work, "book", "book.toml")
original = open(toml).read()
open(toml, "w").write(original.replace("[preprocessor.workbook]\n", '[preprocessor.workbook]\ncommand = "%s"\n' % capture, 1))
subprocess.run(["mdbook", "build", os.path.join(work, "book")], capture_output=True, check=True)
open(toml, "w").write(original)
out = subprocess.run(["mdbook-workbook"], input=open(os.path.join(work, "input.json"), "rb").read(), capture_output=True, check=True).stdout
book = json.loads(out)
def chapters(items):
    for item in items:
        ch = item.get("Chapter")
        if ch:
            yield ch
            yield from chapters(ch.get("sub_items", []))
for ch in chapters(book["items"]):
    if ch.get("source_path") == "06.2-docker-advanced.md":
        open(os.path.join(work, "static", "src", "06.2-docker-advanced.md"), "w").write(ch["content"])
PY
: > "$work/docker-calls"

declare -A times
for side in book plain static; do times[$side]=""; done
for ((i = 0; i < runs; i++)); do
  for side in book plain static; do
    t0=$(ms); build "$side"; t1=$(ms)
    times[$side]+="$(( (t1 - t0) / 1000 )) "
  done
done
calls=$(wc -l < "$work/docker-calls")

median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
warm=$(echo "${times[book]}" | median)
plain=$(echo "${times[plain]}" | median)
static=$(echo "${times[static]}" | median)
echo "warm build, every record valid ($runs runs each, medians):"
printf '  with the preprocessor:                %6.1f ms\n' "$(echo "$warm / 1000" | bc -l)"
printf '  preprocessor disabled:                %6.1f ms   ratio %.2f\n' "$(echo "$plain / 1000" | bc -l)" "$(echo "$warm / $plain" | bc -l)"
printf '  rendered chapter, no preprocessor:    %6.1f ms   ratio %.2f\n' "$(echo "$static / 1000" | bc -l)" "$(echo "$warm / $static" | bc -l)"
echo "  docker processes started by warm builds: $calls"

if [ -n "${SKIP_EDITS:-}" ]; then
  exit 0
fi
if [ "${WORKBOOK_DEDICATED_DAEMON:-}" != 1 ]; then
  echo "edits: skipped; they run the sheet, which removes all images: set WORKBOOK_DEDICATED_DAEMON=1 on a daemon of its own" >&2
  exit 0
fi

steps_ran() { sed -n 's/.*ran \([0-9]*\) steps in \([0-9.]*\) s.*/\1 steps in \2 s/p' "$work/log"; }
total=$(grep -c '^    command:' "$work/book/workbook/06.2-docker-advanced.yml" || true)

echo "edits (the first run records checkpoints on this machine):"
t0=$(ms); build book WORKBOOK_MODE=refresh; t1=$(ms)
echo "  full run: $(steps_ran) ($(( (t1 - t0) / 1000000 )) ms wall)"

python3 - "$work/book/$chapter" <<'PY'
import sys
p = sys.argv[1]
lines = open(p).read().split("\n")
hits = [i for i, l in enumerate(lines) if l.strip() == "docker build . --tag python-webapp"]
lines[hits[4]] += "  # bench"
open(p, "w").write("\n".join(lines))
PY
build book
echo "  edit of the 5th python-webapp build of section 09: $(steps_ran) of $total; $(grep -o 'running steps [0-9.]* of [0-9]*' "$work/log")"

echo "# bench" >> "$work/exercises/03-layers/src/server.py"
build book
echo "  edit of exercises/03-layers/src/server.py: $(steps_ran) of $total; $(grep -o 'running steps [0-9.]* of [0-9]*' "$work/log")"

sed -i '0,/^docker run pyramid$/s//docker run pyramid  # bench/' "$work/book/$chapter"
build book
echo "  edit of \`docker run pyramid\` (section 01): $(steps_ran) of $total; $(grep -o 'running steps [0-9.]* of [0-9]*' "$work/log")"
