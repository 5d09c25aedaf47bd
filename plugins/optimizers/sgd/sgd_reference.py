"""Float64 reference for the sgd plugin (torch's SGD and SGDW), written from the formulas.

    python3 sgd_reference.py TRAJECTORY CONFIG

TRAJECTORY (torch pickle, a list of tensors): the n initial parameters, then n gradients per step, then the
n final parameters the plugin produced. CONFIG (JSON): "params" (per tensor: "group"), "steps", "factors"
(LR factor per step), "options" and "group_options" (per group, the options with the recipe's overrides).
Replays the steps in numpy float64 and prints the largest absolute difference from the plugin's result.

Per tensor, lr = options.lr * factor:
    decoupled_weight_decay: p <- p (1 - lr wd)        (SGDW, timm.optim.SGDW)
    else:                   g <- g + wd p             (L2, torch.optim.SGD)
    momentum: b <- g at the first step, else b <- momentum b + (1 - dampening) g
              d <- g + momentum b (nesterov) or b;  no momentum: d <- g
    p <- p - lr d
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
    buffers = [None] * n

    for step in range(steps):
        for i in range(n):
            o = opts[i]
            lr = o["lr"] * config["factors"][step]
            wd, mom, damp = o["weight_decay"], o["momentum"], o["dampening"]
            g = data[n * (1 + step) + i].double().numpy()
            if o["decoupled_weight_decay"]:
                theta[i] = theta[i] * (1 - lr * wd)
            else:
                g = g + wd * theta[i]
            if mom != 0:
                buffers[i] = g.copy() if buffers[i] is None else mom * buffers[i] + (1 - damp) * g
                d = g + mom * buffers[i] if o["nesterov"] else buffers[i]
            else:
                d = g
            theta[i] = theta[i] - lr * d

    print(max(float(np.max(np.abs(a - b))) for a, b in zip(theta, final)))


if __name__ == "__main__":
    main()
