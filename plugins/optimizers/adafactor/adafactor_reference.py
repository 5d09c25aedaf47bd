"""Float64 reference of the paper variant of Adafactor (Zhao et al. 2025, "Deconstructing what makes a good
optimizer for language models") for adafactor_test.cpp, written from the formulas, independent of
adafactor.cpp:

    m <- beta1 m + (1 - beta1) g
    tensors with >= 2 dims (factored over the last two dims, one factor pair per leading index):
        r <- beta2 r + (1 - beta2) mean over columns of g^2      (one per row)
        c <- beta2 c + (1 - beta2) mean over rows of g^2         (one per column)
        V = r c^T / mean(r)
    0-D and 1-D tensors: V = v <- beta2 v + (1 - beta2) g^2
    theta <- theta (1 - lr wd) - lr / bc1 * m / (sqrt(V / bc2) + eps),   bc_i = 1 - beta_i^t

t counts the steps in which the parameter had a gradient. Used like a torch.optim optimizer:
Adafactor(groups, lr=..., betas=(b1, b2), eps=..., weight_decay=...), groups being dicts {"params": [...]}
with optional per-group overrides; step() reads p.grad (None = skipped). State and arithmetic are float64
(numpy); the float32 parameters are overwritten with the result rounded to float32 after every step.
"""
import numpy as np
import torch


class Adafactor:
    def __init__(self, groups, lr=1e-3, betas=(0.9, 0.95), eps=1e-15, weight_decay=0.0):
        defaults = {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay}
        self.param_groups = [dict(defaults, **group) for group in groups]
        self.state = {}  # id(param) -> dict

    def step(self):
        for group in self.param_groups:
            lr, (beta1, beta2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad.detach().numpy().astype(np.float64)
                theta = p.detach().numpy().astype(np.float64)
                factored = g.ndim >= 2
                s = self.state.setdefault(id(p), {
                    "t": 0,
                    "m": np.zeros_like(theta),
                    "r": np.zeros(g.shape[:-1]) if factored else None,                    # [..., rows]
                    "c": np.zeros(g.shape[:-2] + g.shape[-1:]) if factored else None,     # [..., cols]
                    "v": None if factored else np.zeros_like(theta),
                })
                s["t"] += 1
                t = s["t"]
                s["m"] = beta1 * s["m"] + (1 - beta1) * g
                if factored:
                    s["r"] = beta2 * s["r"] + (1 - beta2) * (g * g).mean(axis=-1)
                    s["c"] = beta2 * s["c"] + (1 - beta2) * (g * g).mean(axis=-2)
                    r, c = s["r"], s["c"]
                    V = r[..., :, None] * c[..., None, :] / r.mean(axis=-1)[..., None, None]
                else:
                    s["v"] = beta2 * s["v"] + (1 - beta2) * g * g
                    V = s["v"]
                bc1, bc2 = 1 - beta1 ** t, 1 - beta2 ** t
                theta = theta * (1 - lr * wd) - lr / bc1 * s["m"] / (np.sqrt(V / bc2) + eps)
                with torch.no_grad():
                    p.copy_(torch.from_numpy(np.asarray(theta, dtype=np.float32)))
