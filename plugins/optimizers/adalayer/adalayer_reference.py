"""Float64 reference for the adalayer plugin, written from the formulas (not from adalayer.cpp).

    python3 adalayer_reference.py TRAJECTORY CONFIG

TRAJECTORY (torch pickle, a list of tensors): the n initial parameters, then n gradients per step, then the
n final parameters the plugin produced. CONFIG (JSON): "params" (per tensor: "name", "group"), "steps",
"factors" (LR factor per step), "options" (the optimizer's options) and "group_options" (per group, the
options with the recipe's overrides applied). Replays the steps in numpy float64 and prints the largest
absolute difference from the plugin's final parameters.

Per tensor, with t its step count, bc_i = 1 - beta_i^t and the blocks of the tensor
(qkv group: 3 equal blocks along dim 0; last-layer group: one block per index of dim 0; else one block):
    m <- beta1 m + (1 - beta1) g
    v_b <- beta2 v_b + (1 - beta2) mean(g_b^2)
    theta_b <- theta_b - lr / bc1 * m_b / (sqrt(v_b / bc2) + eps)
Variants: "frozen": for t <= freeze_after, v_b = mean over steps 1..t of mean(g_b^2), theta unchanged;
afterwards v fixed except in the last-layer and norm groups (EMA with beta2), and bc2 = 1 throughout.
"sgd_adaptive_last": theta <- theta - lr / bc1 * m outside the last-layer and norm groups.
Weight decay before the update: decoupled theta *= 1 - lr wd; independent theta *= 1 - wd.
"""
import json
import sys

import numpy as np
import torch


def blocks_of(shape, kind):
    """Index tuples of the blocks of a tensor of `shape` that share one scalar."""
    if kind == "qkv":
        rows = shape[0] // 3
        return [(slice(j * rows, (j + 1) * rows),) for j in range(3)]
    if kind == "rows":
        if len(shape) == 0:
            return [()]
        return [(r,) for r in range(shape[0])]
    return [()]


def main():
    data = torch.load(sys.argv[1], weights_only=False)
    with open(sys.argv[2]) as f:
        config = json.load(f)
    info = config["params"]
    n = len(info)
    steps = config["steps"]
    factors = config["factors"]
    options = config["options"]
    variant = options["variant"]
    freeze_after = options["freeze_after"]

    theta = [data[i].double().numpy().copy() for i in range(n)]
    final = [data[n * (1 + steps) + i].double().numpy() for i in range(n)]
    state = []
    for i, p in enumerate(info):
        group = p["group"]
        kind = "qkv" if group == options["qkv_group"] else "rows" if group == options["last_layer_group"] else "tensor"
        last_or_norm = group in (options["last_layer_group"], options["norm_group"])
        blocks = blocks_of(theta[i].shape, kind)
        state.append(dict(opts=config["group_options"].get(group, options), blocks=blocks, last_or_norm=last_or_norm,
                          m=np.zeros_like(theta[i]), v=np.zeros(len(blocks)), t=0))

    for step in range(steps):
        for i in range(n):
            s = state[i]
            o = s["opts"]
            g = data[n * (1 + step) + i].double().numpy()
            lr = o["lr"] * factors[step]
            b1, b2, eps, wd = o["beta1"], o["beta2"], o["eps"], o["weight_decay"]
            s["t"] += 1
            t = s["t"]
            s["m"] = b1 * s["m"] + (1 - b1) * g
            mean_sq = np.array([np.mean(np.square(g[b])) for b in s["blocks"]])

            if variant == "frozen" and t <= freeze_after:
                s["v"] = (s["v"] * (t - 1) + mean_sq) / t
                continue

            if wd != 0:
                theta[i] = theta[i] * (1 - (wd if o["weight_decay_mode"] == "independent" else lr * wd))
            bc1 = 1 - b1**t
            if variant == "sgd_adaptive_last" and not s["last_or_norm"]:
                theta[i] = theta[i] - lr / bc1 * s["m"]
                continue
            if variant == "frozen":
                if s["last_or_norm"]:
                    s["v"] = b2 * s["v"] + (1 - b2) * mean_sq
                bc2 = 1.0
            else:
                s["v"] = b2 * s["v"] + (1 - b2) * mean_sq
                bc2 = 1 - b2**t
            update = np.empty_like(theta[i])
            for b, v in zip(s["blocks"], s["v"]):
                update[b] = s["m"][b] / (np.sqrt(v / bc2) + eps)
            theta[i] = theta[i] - lr / bc1 * update

    print(max(float(np.max(np.abs(a - b))) if a.size else 0.0 for a, b in zip(theta, final)))


if __name__ == "__main__":
    main()
