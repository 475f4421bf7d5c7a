import type { MeasurePlan } from './plan.js';

/** Shell-quotes one word (single quotes, embedded ones closed and escaped). */
const q = (word: string) => `'${word.replace(/'/g, `'\\''`)}'`;

/**
 * The script that runs a plan against a real GPU: per experiment it makes the dummy adapters,
 * starts `vllm serve` with the experiment's flags, waits for /health, scrapes /metrics every
 * second, drives the load with `loraplan measure run`, keeps the server log and flags, and stops
 * the server. Experiments already done (a `done` file) are skipped, so a cut run resumes.
 */
export function runScript(plan: MeasurePlan): string {
  const experiments = plan.experiments
    .map((e) => {
      const adapters = e.adapters.map((a) => `${a.name}=$ADAPTERS/${a.name}`);
      const ranks = e.adapters.map((a) => `${a.name}:${a.rank}`);
      const args = [
        ...e.serverArgs.map(q),
        ...(adapters.length ? ['--lora-modules', ...adapters.map((a) => `"${a}"`)] : []),
      ];
      return `run_experiment ${q(e.id)} ${q(e.load.kind)} ${q(ranks.join(' '))} ${args.join(' ')}`;
    })
    .join('\n');
  return `#!/usr/bin/env bash
# Measurement plan for ${plan.model} on ${plan.gpu} (${plan.experiments.length} experiments, about
# ${plan.plannedMinutes} minutes), written by loraplan measure plan. Checked against vLLM
# ${plan.vllmVersions.join(', ')}. Resumable: an experiment with a "done" file is skipped.
#
# Usage: MODEL=/path/or/hf-id ./run.sh   (env: VLLM=vllm PORT=8000 LORAPLAN=loraplan PYTHON=python3)
set -euo pipefail

HERE="$(cd "$(dirname "\${BASH_SOURCE[0]}")" && pwd)"
: "\${MODEL:?set MODEL to the model path or Hugging Face id}"
VLLM="\${VLLM:-vllm}"
PORT="\${PORT:-8000}"
LORAPLAN="\${LORAPLAN:-loraplan}"
PYTHON="\${PYTHON:-python3}"
RUNS="$HERE/runs"
ADAPTERS="$HERE/adapters"
BASE_URL="http://127.0.0.1:$PORT"
mkdir -p "$RUNS" "$ADAPTERS"

# Dummy adapters of the needed ranks: random weights in PEFT layout. Step costs do not depend on
# what an adapter learned, only on its shapes.
make_adapter() {
  local name="$1" rank="$2"
  [ -f "$ADAPTERS/$name/adapter_config.json" ] && return 0
  "$PYTHON" - "$MODEL" "$ADAPTERS/$name" "$rank" <<'PY'
import json, os, sys
import torch
from safetensors.torch import save_file
from transformers import AutoConfig
model, out, rank = sys.argv[1], sys.argv[2], int(sys.argv[3])
c = AutoConfig.from_pretrained(model)
h, i, L = c.hidden_size, c.intermediate_size, c.num_hidden_layers
hd = getattr(c, "head_dim", None) or h // c.num_attention_heads
q, kv = c.num_attention_heads * hd, c.num_key_value_heads * hd
shapes = {"q_proj": (h, q), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (q, h),
          "gate_proj": (h, i), "up_proj": (h, i), "down_proj": (i, h)}
g = torch.Generator().manual_seed(rank)
tensors = {}
for layer in range(L):
    for m, (fan_in, fan_out) in shapes.items():
        part = "self_attn" if m.endswith(("q_proj", "k_proj", "v_proj", "o_proj")) else "mlp"
        key = f"base_model.model.model.layers.{layer}.{part}.{m}"
        tensors[f"{key}.lora_A.weight"] = (torch.randn(rank, fan_in, generator=g) * 0.01).to(torch.bfloat16)
        tensors[f"{key}.lora_B.weight"] = (torch.randn(fan_out, rank, generator=g) * 0.01).to(torch.bfloat16)
os.makedirs(out, exist_ok=True)
save_file(tensors, os.path.join(out, "adapter_model.safetensors"))
json.dump({"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": rank, "lora_alpha": 2 * rank,
           "lora_dropout": 0.0, "bias": "none", "base_model_name_or_path": model,
           "target_modules": list(shapes)}, open(os.path.join(out, "adapter_config.json"), "w"))
PY
}

stop_server() {
  local pid="$1"
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# run_experiment ID KIND "NAME:RANK ..." VLLM_ARGS...
run_experiment() {
  local id="$1" kind="$2" adapters="$3"
  shift 3
  local dir="$RUNS/$id"
  if [ -f "$dir/done" ]; then echo "skip $id (done)"; return 0; fi
  rm -rf "$dir" && mkdir -p "$dir/metrics"
  local spec
  for spec in $adapters; do make_adapter "\${spec%%:*}" "\${spec##*:}"; done
  printf '%s\\n' "$VLLM serve $MODEL $*" > "$dir/flags.txt"
  echo "start $id"
  "$VLLM" serve "$MODEL" --port "$PORT" "$@" > "$dir/server.log" 2>&1 &
  local server=$!
  local waited=0
  until curl -sf "$BASE_URL/health" > /dev/null; do
    if ! kill -0 "$server" 2>/dev/null; then
      echo "$id: the server exited during start-up (see $dir/server.log)"
      echo "startup-failed" > "$dir/outcome" && touch "$dir/done"
      return 0
    fi
    waited=$((waited + 2))
    if [ "$waited" -gt 1800 ]; then
      echo "startup-timeout" > "$dir/outcome"; stop_server "$server"; touch "$dir/done"; return 0
    fi
    sleep 2
  done
  ( while kill -0 "$server" 2>/dev/null; do
      curl -sf "$BASE_URL/metrics" > "$dir/metrics/$(date +%s.%N).prom" || true
      sleep 1
    done ) &
  local scraper=$!
  if [ "$kind" != startup ]; then
    "$LORAPLAN" measure run --plan "$HERE/plan.json" --experiment "$id" --base-url "$BASE_URL" \\
      --out "$dir/requests.jsonl" || echo "load-failed" > "$dir/outcome"
  fi
  [ -f "$dir/outcome" ] || echo "ok" > "$dir/outcome"
  stop_server "$server"
  wait "$scraper" 2>/dev/null || true
  touch "$dir/done"
}

${experiments}

echo "all experiments done: loraplan calibrate --runs $RUNS --gpu ${plan.gpu} --model ${plan.model}"
`;
}
