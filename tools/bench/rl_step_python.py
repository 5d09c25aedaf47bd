#!/usr/bin/env python3
"""The Python side of bench_rl_step: one GRPO step on solution_tree in plain PyTorch, as a careful user
writes it, on the weights, prompts and expected answers bench_rl_step saved (gpt: pre-LN, GELU, learned
positions, LayerNorm with bias, untied head; heads and the GRPO settings from the file's config.*).

    python3 rl_step_python.py DATA DEVICE THREADS

Rollout: the prompts repeated group_size times, left-padded, generated in one batch with a preallocated KV
cache at the sampling temperature (torch.multinomial), until every sequence has emitted the stop token or
max_new_tokens; log-probs kept for the ratio; exact match against the expected answer; the prompt +
completion rows for the update. Update: group advantages (r - mean) / (std + eps), the clipped surrogate
(token mean), backward, clip_grad_norm_, torch.optim.AdamW (fused on CUDA, the default loop on CPU).

One warm-up step (step 0's prompts), then steps 1..config.steps. Prints one line: rollout tok/s (generated
completion tokens / rollout time, median), rollout ms (median), update ms (median), mean completion
length, RL step s (median of rollout + epochs updates), the share of step 0's greedy completions
identical to assay's (a check of the generation loop), and the update's phases in ms (loss, backward,
clip + step; medians).
"""
import statistics
import sys
import time

import torch
import torch.nn.functional as F


def blocks(p, heads, tokens, positions, mask, caches=None, start=0):
    """Logits [B, n, V] of `tokens` [B, n] at `positions` [B, n]. mask: bool [B, 1, n, K] or None (causal).
    caches: per layer (keys, values) [B, H, total, hd], written at [start, start + n) and read up to there."""
    B, n = tokens.shape
    d = p["token_embedding"].shape[1]
    hd = d // heads
    x = p["token_embedding"][tokens] + p["position_embedding"][positions]
    for l in range(p["layers"]):
        b = f"block{l}."
        h = F.layer_norm(x, (d,), p[b + "norm1.weight"], p[b + "norm1.bias"], 1e-5)
        q, k, v = F.linear(h, p[b + "attention.qkv.weight"], p[b + "attention.qkv.bias"]).view(B, n, 3, heads, hd).permute(2, 0, 3, 1, 4)
        if caches is not None:
            keys, values = caches[l]
            keys[:, :, start:start + n] = k
            values[:, :, start:start + n] = v
            k, v = keys[:, :, :start + n], values[:, :, :start + n]
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=mask is None and n > 1)
        x = x + F.linear(y.transpose(1, 2).reshape(B, n, d), p[b + "attention.out.weight"], p[b + "attention.out.bias"])
        h = F.layer_norm(x, (d,), p[b + "norm2.weight"], p[b + "norm2.bias"], 1e-5)
        h = F.gelu(F.linear(h, p[b + "mlp.up.weight"], p[b + "mlp.up.bias"]))
        x = x + F.linear(h, p[b + "mlp.down.weight"], p[b + "mlp.down.bias"])
    x = F.layer_norm(x, (d,), p["final_norm.weight"], p["final_norm.bias"], 1e-5)
    return F.linear(x, p["head.weight"])


def generate(p, cfg, prompts, lengths, greedy=False):
    """Completions of right-padded prompts [B, L]: tokens [B, C], log-probs [B, C], lengths [B] (stop token
    included), C = the steps taken (at most max_new_tokens)."""
    B, L = prompts.shape
    heads, max_new, pad, stop = cfg["heads"], cfg["max_new_tokens"], cfg["pad_token"], cfg["stop_token"]
    device = prompts.device
    d = p["token_embedding"].shape[1]
    total = L + max_new
    # Left-align the prompts, so that every sequence's next token goes into the same column.
    columns = torch.arange(L, device=device)[None]
    pad_left = (L - lengths)[:, None]
    real = columns >= pad_left
    left = prompts.gather(1, (columns - pad_left).clamp(min=0)).masked_fill(~real, pad)
    key_real = torch.ones(B, total, dtype=torch.bool, device=device)
    key_real[:, :L] = real
    positions = (torch.arange(total, device=device)[None] - pad_left).clamp(min=0)
    caches = [(torch.zeros(B, heads, total, d // heads, device=device), torch.zeros(B, heads, total, d // heads, device=device))
              for _ in range(p["layers"])]
    # Prefill: causal, padded keys masked; a padded query attends to itself (no empty row).
    causal = torch.ones(L, L, dtype=torch.bool, device=device).tril()
    mask = (causal[None] & key_real[:, None, :L]) | torch.eye(L, dtype=torch.bool, device=device)[None]
    logits = blocks(p, heads, left, positions[:, :L], mask[:, None], caches, 0)[:, -1]
    tokens = torch.full((B, max_new), pad, dtype=torch.long, device=device)
    logprobs = torch.zeros(B, max_new, device=device)
    generated = torch.zeros(B, dtype=torch.long, device=device)
    done = torch.zeros(B, dtype=torch.bool, device=device)
    for i in range(max_new):
        logp = (logits.float() / (1.0 if greedy else cfg["temperature"])).log_softmax(-1)
        token = logp.argmax(-1) if greedy else torch.multinomial(logp.exp(), 1).squeeze(1)
        token = token.masked_fill(done, pad)
        tokens[:, i] = token
        logprobs[:, i] = logp.gather(1, token[:, None]).squeeze(1).masked_fill(done, 0)
        generated += ~done
        done |= token == stop
        if i + 1 == max_new or bool(done.all()):
            break
        end = L + i + 1  # the new token sits at column end - 1
        logits = blocks(p, heads, token[:, None], positions[:, end - 1:end], key_real[:, None, None, :end], caches, end - 1)[:, -1]
    return tokens[:, :i + 1], logprobs[:, :i + 1], generated


def rollout(p, cfg, prompts, prompt_lengths, answers, answer_lengths):
    """Samples group_size completions per prompt, scores them, lays out prompt + completion rows."""
    G = cfg["group_size"]
    tokens, lengths = prompts.repeat_interleave(G, 0), prompt_lengths.repeat_interleave(G, 0)
    with torch.inference_mode():
        completions, old_logp, completion_lengths = generate(p, cfg, tokens, lengths)
    # Exact match against the expected answer (its tokens up to and including the stop token).
    expected = [a[:n] for a, n in zip(answers.tolist(), answer_lengths.tolist())]
    rewards = [float(c[:n] == expected[i // G]) for i, (c, n) in enumerate(zip(completions.tolist(), completion_lengths.tolist()))]
    rewards = torch.tensor(rewards, dtype=torch.float64).view(-1, G)
    # Right-padded prompt + completion rows: completion token j of row i at column length_i + j.
    N, T, C = tokens.shape[0], tokens.shape[1], completions.shape[1]
    sequences = torch.full((N, T + C), cfg["pad_token"], dtype=torch.long, device=tokens.device)
    sequences[:, :T] = tokens
    columns = lengths[:, None] + torch.arange(C, device=tokens.device)[None]
    sequences.scatter_(1, columns, completions)
    mask = (torch.arange(C, device=tokens.device)[None] < completion_lengths[:, None]).float()
    # Clone out of inference mode: the update uses these with autograd.
    return dict(sequences=sequences[:, :T + C - 1], positions=columns - 1, completions=completions.clone(), old_logp=old_logp.clone(),
                mask=mask, rewards=rewards, lengths=completion_lengths.clone())


def update(p, params, optimizer, cfg, r, advantages, sync):
    """One optimizer step on the clipped surrogate (token mean over the rollout's completion tokens).
    Returns the seconds of (loss, backward, clip + step), synchronized between them."""
    sync()
    start = time.perf_counter()
    optimizer.zero_grad(set_to_none=True)
    logits = blocks(p, cfg["heads"], r["sequences"], torch.arange(r["sequences"].shape[1], device=r["sequences"].device)[None], None)
    logits = logits / cfg["temperature"]
    picked = logits.gather(1, r["positions"][..., None].expand(-1, -1, logits.shape[-1])).log_softmax(-1)
    logp = picked.gather(2, r["completions"][..., None]).squeeze(-1)
    ratio = (logp - r["old_logp"]).exp()
    a = advantages[:, None]
    per_token = -torch.min(ratio * a, ratio.clamp(1 - cfg["clip"], 1 + cfg["clip"]) * a)
    loss = (per_token * r["mask"]).sum() / r["mask"].sum().clamp(min=1)
    sync()
    forward_end = time.perf_counter()
    loss.backward()
    sync()
    backward_end = time.perf_counter()
    torch.nn.utils.clip_grad_norm_(params, cfg["grad_clip"])
    optimizer.step()
    sync()
    return forward_end - start, backward_end - forward_end, time.perf_counter() - backward_end


def main():
    data, device, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
    torch.set_num_threads(threads)
    saved = torch.load(data, weights_only=False)
    cfg = {k[len("config."):]: v.item() for k, v in saved.items() if k.startswith("config.")}
    step_data = {k: v.to(device) for k, v in saved.items() if not k.startswith("config.") and "." in k and k.split(".")[0] in
                 ("prompts", "prompt_lengths", "answers", "answer_lengths", "check")}
    p = {k: v.to(device).requires_grad_() for k, v in saved.items() if k not in step_data and not k.startswith("config.")}
    params = list(p.values())
    p["layers"] = sum(1 for k in p if k.endswith(".norm1.weight"))
    optimizer = torch.optim.AdamW(params, lr=cfg["lr"], weight_decay=cfg["weight_decay"], fused=device.startswith("cuda") or None)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)

    with torch.inference_mode():
        greedy, _, greedy_lengths = generate(p, cfg, step_data["prompts.0"], step_data["prompt_lengths.0"], greedy=True)
    want, want_lengths = step_data["check.greedy_tokens"].tolist(), step_data["check.greedy_lengths"].tolist()
    same = sum(g[:n] == w[:m] for g, n, w, m in zip(greedy.tolist(), greedy_lengths.tolist(), want, want_lengths))

    rates, rollout_ms, update_ms, step_s, lengths, phase_ms = [], [], [], [], [], []
    for step in range(cfg["steps"] + 1):  # step 0: warm-up
        s = str(step)
        sync()
        start = time.perf_counter()
        r = rollout(p, cfg, step_data["prompts." + s], step_data["prompt_lengths." + s], step_data["answers." + s],
                    step_data["answer_lengths." + s])
        sync()
        rollout_s = time.perf_counter() - start
        rewards = r["rewards"]
        advantages = ((rewards - rewards.mean(1, keepdim=True)) / (rewards.std(1, keepdim=True) + cfg["advantage_eps"])).view(-1).float().to(device)
        phases = [0.0, 0.0, 0.0]
        for _ in range(cfg["epochs"]):
            phases = [a + b for a, b in zip(phases, update(p, params, optimizer, cfg, r, advantages, sync))]
        update_s = sum(phases)
        if step > 0:
            tokens = r["lengths"].sum().item()
            rates.append(tokens / rollout_s)
            rollout_ms.append(1e3 * rollout_s)
            update_ms.append(1e3 * update_s / cfg["epochs"])
            step_s.append(rollout_s + update_s)
            lengths.append(tokens / r["lengths"].numel())
            phase_ms.append([1e3 * t / cfg["epochs"] for t in phases])
    print(statistics.median(rates), statistics.median(rollout_ms), statistics.median(update_ms), statistics.mean(lengths),
          statistics.median(step_s), f"{same}/{len(want)}", *(statistics.median(column) for column in zip(*phase_ms)))


if __name__ == "__main__":
    main()
