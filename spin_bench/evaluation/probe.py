"""Probes that explain a score: what a checkpoint's distribution does on real answers, and how alike the two
answers of a preference pair look to it. Diagnostics (diagnostics.jsonl, W&B, the report), not scores.

- `answer_probe`: on held-out real answers (the world's `valid` split, trained on by no stage), the summed
  log-probability of each answer, the mean entropy of the next-token distribution over its tokens, and the
  entropy and probability of the true token at the final-answer tokens (the number after "#### "). Under a
  preference loss the log-probability of the real answers can fall while the reward accuracy rises (likelihood
  displacement, Razin et al. 2024); these numbers show it directly. `relative_to` turns the log-probabilities
  into their change since the base model, answer by answer, with its standard error over the answers: SFT's
  held-out objective, testable within one trained model (spin_bench.analysis.questions).
- `pair_similarity`: per pair, the CHES score of Razin et al. 2024 (Centered Hidden Embedding Similarity):
  with h+ and h- the sums of the last layer's hidden states that predict the chosen and the rejected answer's
  tokens, CHES = <h+, h-> - ||h+||^2; the length-normalised form uses the means instead of the sums. The higher
  it is, the more a step that pushes the rejected answer down pulls the chosen one down with it.

Written by hand: neither TRL nor lm-eval computes these. Both are cached stages keyed by the checkpoint and rows.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from spin_bench.engine.checkpoint import load_for_inference
from spin_bench.engine.config import Loading
from spin_bench.stages import atomic_write_json, checkpoint_fingerprint, content_hash, read_json, run_stage

BATCH = 32
ANSWER_LINE = "#### "


def answer_probe(checkpoint: str, rows: Sequence[Mapping[str, str]], loading: Loading,
                 cache_dir: Path) -> dict[str, Any]:  # fmt: skip
    """Means over `rows` (`{prompt, response}`) of `logp` (summed over the answer's tokens and its end), `entropy`
    (nats per answer token), and at the final-answer tokens `answer_entropy` and `answer_p` (the probability of
    the true token; NaN without a "#### " line); and `logp_rows`, each row's `logp` in order."""

    def build(work: Path) -> None:
        model, tokenizer = load_for_inference(checkpoint, loading)
        per_row: list[dict[str, float]] = []
        for start in range(0, len(rows), BATCH):
            for item in _forward(model, tokenizer, rows[start : start + BATCH]):
                logp, entropy, answer = item["token_logp"], item["entropy"], item["answer"]
                found = bool(answer.any())
                per_row.append({"logp": float(logp.sum()), "entropy": float(entropy.mean()),
                                "answer_entropy": float(entropy[answer].mean()) if found else math.nan,
                                "answer_p": float(logp[answer].exp().mean()) if found else math.nan})  # fmt: skip
        means = {k: _mean(r[k] for r in per_row) for k in per_row[0]}
        atomic_write_json(work / "probe.json", means | {"logp_rows": [r["logp"] for r in per_row]})

    inputs = {
        "checkpoint": checkpoint_fingerprint(checkpoint),
        "loading": loading.spec(),
        "rows": content_hash(list(rows)),
        "per_row": ["logp"],  # probes cached before each row's logp was kept lack it: recomputed
    }
    probed: dict[str, Any] = read_json(run_stage(cache_dir, "probe", inputs, build) / "probe.json")
    return probed


def probe(checkpoint: str, rows: Sequence[Mapping[str, str]], loading: Loading, cache_dir: Path) -> dict[str, Any]:
    """`answer_probe` as `heldout_real/<key>`, for `relative_to`; none without rows."""
    probed = answer_probe(checkpoint, rows, loading, cache_dir) if rows else {}
    return {f"heldout_real/{k}": v for k, v in probed.items()}


def relative_to(probed: dict[str, Any], base: dict[str, Any]) -> dict[str, float]:
    """A `probe` of a checkpoint as diagnostics, against the base model's `probe` of the same answers: its means,
    and `heldout_real/logp_vs_base`, the change in the held-out real answers' log-probability since the base
    model (nats per answer, the mean over answers; negative: the model now finds them less likely), with
    `heldout_real/logp_vs_base_se`, that mean's standard error over the answers (each answer scored by both
    models: a paired difference), and `heldout_real/answers`, their count. Each row's logp is left out."""
    if not probed:
        return {}
    mine, theirs = probed["heldout_real/logp_rows"], base["heldout_real/logp_rows"]
    change = [a - b for a, b in zip(mine, theirs, strict=True)]
    n = len(change)
    se = statistics.stdev(change) / math.sqrt(n) if n >= 2 else math.nan
    means = {k: v for k, v in probed.items() if k != "heldout_real/logp_rows"}
    return means | {"heldout_real/logp_vs_base": statistics.fmean(change), "heldout_real/logp_vs_base_se": se,
                    "heldout_real/answers": n}  # fmt: skip


def pair_similarity(checkpoint: str, pairs: Sequence[Mapping[str, str]], loading: Loading,
                    cache_dir: Path) -> dict[str, float]:  # fmt: skip
    """Means over `pairs` (`{prompt, chosen, rejected}`) of CHES and its length-normalised form under
    `checkpoint` (the model the iteration starts from)."""

    def build(work: Path) -> None:
        model, tokenizer = load_for_inference(checkpoint, loading)
        ches, normalised = [], []
        for start in range(0, len(pairs), BATCH):
            batch = pairs[start : start + BATCH]
            chosen = _forward(model, tokenizer, [{"prompt": p["prompt"], "response": p["chosen"]} for p in batch])
            rejected = _forward(model, tokenizer, [{"prompt": p["prompt"], "response": p["rejected"]} for p in batch])
            for c, r in zip(chosen, rejected, strict=True):
                h_c, h_r = c["hidden"].sum(0), r["hidden"].sum(0)
                ches.append(float(h_c @ h_r - h_c @ h_c))
                m_c, m_r = h_c / len(c["hidden"]), h_r / len(r["hidden"])
                normalised.append(float(m_c @ m_r - m_c @ m_c))
        atomic_write_json(work / "similarity.json", {"ches": _mean(ches), "ches_normalised": _mean(normalised)})

    inputs = {"checkpoint": checkpoint_fingerprint(checkpoint), "loading": loading.spec(),
              "pairs": content_hash(list(pairs))}  # fmt: skip
    similarity: dict[str, float] = read_json(run_stage(cache_dir, "similarity", inputs, build) / "similarity.json")
    return similarity


@torch.no_grad()
def _forward(model: Any, tokenizer: Any, rows: Sequence[Mapping[str, str]]) -> list[dict[str, torch.Tensor]]:
    """Per row, over the answer's tokens (the response and its end-of-sequence token, as training scores them):
    the log-probability of each token, the entropy of the distribution that predicts it, the last layer's hidden
    state that predicts it, and a mask of the final-answer tokens. Rows are right-padded into one batch."""
    encoded = []
    for row in rows:
        user = [{"role": "user", "content": row["prompt"]}]
        prompt = tokenizer.apply_chat_template(user, add_generation_prompt=True, tokenize=False)
        full = tokenizer.apply_chat_template([*user, {"role": "assistant", "content": row["response"]}], tokenize=False)
        tokens = tokenizer(full, add_special_tokens=False, return_offsets_mapping=True)
        first = len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
        at = full.rfind(ANSWER_LINE)
        answer_chars = (at + len(ANSWER_LINE), len(prompt) + len(row["response"])) if at >= len(prompt) else (0, 0)
        answer = [answer_chars[0] <= s < answer_chars[1] for s, _ in tokens["offset_mapping"]]
        encoded.append((tokens["input_ids"], first, answer))
    width = max(len(ids) for ids, _, _ in encoded)
    pad = tokenizer.pad_token_id
    input_ids = torch.tensor([ids + [pad] * (width - len(ids)) for ids, _, _ in encoded])
    mask = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids, _, _ in encoded])
    device = next(model.parameters()).device
    out = model(input_ids=input_ids.to(device), attention_mask=mask.to(device), output_hidden_states=True)
    logp_all = torch.log_softmax(out.logits.float(), dim=-1).cpu()
    hidden = out.hidden_states[-1].float().cpu()
    results = []
    for i, (ids, first, answer) in enumerate(encoded):
        positions = torch.arange(first - 1, len(ids) - 1)  # the position before each answer token predicts it
        logp = logp_all[i, positions]
        results.append({
            "token_logp": logp.gather(1, torch.tensor(ids[first:]).unsqueeze(1)).squeeze(1),
            "entropy": -(logp.exp() * logp).sum(-1),
            "hidden": hidden[i, positions],
            "answer": torch.tensor(answer[first:], dtype=torch.bool),
        })  # fmt: skip
    return results


def _mean(values: Any) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return sum(finite) / len(finite) if finite else math.nan
