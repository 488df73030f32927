#!/usr/bin/env bash
# The README's first-hour path, timed step by step on this machine (issue 29): the demo, its plot and
# evaluation, a generated plugin installed and tested, scoring with it, and Ctrl-C during the warm-up
# then a rerun. Usage: bash benchmarks/first_hour.sh [WORK_DIR]   (about 10-15 minutes on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
W=${1:-$(mktemp -d)}
mkdir -p "$W"
t() { local name=$1; shift; local s=$(date +%s%N) rc=0; "$@" > "$W/$name.log" 2>&1 || rc=$?
      printf '%-28s %6d ms  rc %s\n' "$name" "$(( ($(date +%s%N) - s) / 1000000 ))" "$rc"; }
t demo-train grpo-plugins train configs/demo.yaml log.run_dir="$W/demo" tiny.dir="$W/tiny" \
    model.name_or_path="$W/tiny/model" data.train="$W/tiny/train.jsonl" data.eval="$W/tiny/test.jsonl" \
    sft.data="$W/tiny/sft.jsonl"
grep -h '"after/eval/accuracy"\|"before/eval/accuracy"' "$W/demo-train.log" || true
t demo-plot grpo-plugins plot "$W/demo"
t demo-eval grpo-plugins eval configs/demo.yaml --model "$W/demo/sft" --model "$W/demo/final" --samples 16 \
    tiny.dir="$W/tiny" model.name_or_path="$W/tiny/model" data.train="$W/tiny/train.jsonl" \
    data.eval="$W/tiny/test.jsonl" sft.data="$W/tiny/sft.jsonl" log.run_dir="$W/eval"
t new-plugin grpo-plugins new-plugin my_length --dir "$W/plugin"
t plugin-install python3 -m pip install -q --no-deps -e "$W/plugin"
t plugin-test python3 -m pytest -q -p no:cacheprovider "$W/plugin"
python3 -m pip uninstall -q -y grpo-my-length-plugin 2>/dev/null || true  # the scaffold names it grpo-NAME-plugin
# Ctrl-C during the warm-up, in a background job (SIGINT ignored at start, as `cmd &` in a script does)
s=$(date +%s)
( trap '' INT; exec grpo-plugins train configs/demo.yaml log.run_dir="$W/stopped" tiny.dir="$W/tiny" \
    model.name_or_path="$W/tiny/model" data.train="$W/tiny/train.jsonl" data.eval="$W/tiny/test.jsonl" \
    sft.data="$W/tiny/sft.jsonl" train.steps=2 > "$W/stop.log" 2>&1 ) &
pid=$!
until grep -q "sft\|warm" "$W/stop.log" 2>/dev/null; do sleep 1; done
kill -INT $pid; wait $pid && rc=0 || rc=$?
printf '%-28s %6.1f s  rc %s (130 expected)\n' "ctrl-c-in-warm-up" "$(( $(date +%s) - s ))" "$rc"
grep -h "stopping\|stopped" "$W/stop.log" || true
