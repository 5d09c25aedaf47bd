"""Float64 reference for the adamw plugin's weight-decay modes, written from the formulas.

    python3 adamw_reference.py TRAJECTORY CONFIG

TRAJECTORY (torch pickle, a list of tensors): the n initial parameters, then n gradients per step, then the
n final parameters the plugin produced. CONFIG (JSON): "params" (per tensor: "group"), "steps", "factors"
(LR factor per step), "options" and "group_options" (per group, the options with the recipe's overrides).
Replays the steps in numpy float64 and prints the largest absolute difference from the plugin's result.

Per tensor, lr = options.lr * factor, t = step count, bc_i = 1 - beta_i^t:
    decoupled:   p <- p (1 - lr wd)          independent: p <- p (1 - wd)          l2: g <- g + wd p
    m <- beta1 m + (1 - beta1) g;  v <- beta2 v + (1 - beta2) g^2;  amsgrad: v_max <- max(v_max, v), used for v
    p <- p - lr / bc1 * m / (sqrt(v / bc2) + eps)
"""
import json
import sys

import numpy as np
import torch


def main():
    data = torch.load(sys.argv[1], weights_only=False)
    with open(sys.argv[2]) as f:
        config = json.load(f)
    info = config["params"]
    n = len(info)
    steps = config["steps"]
    theta = [data[i].double().numpy().copy() for i in range(n)]
    final = [data[n * (1 + steps) + i].double().numpy() for i in range(n)]
    opts = [config["group_options"].get(p["group"], config["options"]) for p in info]
    m = [np.zeros_like(x) for x in theta]
    v = [np.zeros_like(x) for x in theta]
    v_max = [np.zeros_like(x) for x in theta]

    for step in range(steps):
        t = step + 1
        for i in range(n):
            o = opts[i]
            lr = o["lr"] * config["factors"][step]
            b1, b2, eps, wd, mode = o["beta1"], o["beta2"], o["eps"], o["weight_decay"], o["weight_decay_mode"]
            g = data[n * (1 + step) + i].double().numpy()
            if mode == "decoupled":
                theta[i] = theta[i] * (1 - lr * wd)
            elif mode == "independent":
                theta[i] = theta[i] * (1 - wd)
            else:
                g = g + wd * theta[i]
            m[i] = b1 * m[i] + (1 - b1) * g
            v[i] = b2 * v[i] + (1 - b2) * g * g
            second = v[i]
            if o["amsgrad"]:
                v_max[i] = np.maximum(v_max[i], v[i])
                second = v_max[i]
            theta[i] = theta[i] - lr / (1 - b1**t) * m[i] / (np.sqrt(second / (1 - b2**t)) + eps)

    print(max(float(np.max(np.abs(a - b))) for a, b in zip(theta, final)))


if __name__ == "__main__":
    main()
