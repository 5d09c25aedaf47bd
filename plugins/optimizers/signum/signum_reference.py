"""Float64 reference of Signum for signum_test.cpp, written from the formulas, independent of signum.cpp.

Used like a torch.optim optimizer: Signum(groups, lr=..., beta=..., weight_decay=...), where groups are
dicts {"params": [...], and optional per-group "lr", "beta", "weight_decay"}; step() reads p.grad
(None = skipped). State and arithmetic are float64 (numpy); the float32 parameters are overwritten with
the float64 result rounded to float32 after every step, as the plugin stores them.
"""
import numpy as np
import torch


class Signum:
    def __init__(self, groups, lr=1e-4, beta=0.9, weight_decay=0.0):
        defaults = {"lr": lr, "beta": beta, "weight_decay": weight_decay}
        self.param_groups = [dict(defaults, **group) for group in groups]
        self.state = {}  # id(param) -> momentum (float64)

    def step(self):
        for group in self.param_groups:
            lr, beta, wd = group["lr"], group["beta"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad.detach().numpy().astype(np.float64)
                theta = p.detach().numpy().astype(np.float64)
                m = beta * self.state.get(id(p), np.zeros_like(theta)) + (1.0 - beta) * g
                self.state[id(p)] = m
                theta = theta * (1.0 - lr * wd) - lr * np.sign(m)  # np.sign(0) = 0
                with torch.no_grad():
                    p.copy_(torch.from_numpy(np.asarray(theta, dtype=np.float32)))
