"""Float64 reference of Lion for lion_test.cpp, written from the formulas, independent of lion.cpp.

Used like a torch.optim optimizer: Lion(groups, lr=..., betas=(b1, b2), weight_decay=...), where groups
are dicts {"params": [...], and optional per-group "lr", "betas", "weight_decay"}; step() reads p.grad
(None = skipped). State and arithmetic are float64 (numpy); the float32 parameters are overwritten with
the float64 result rounded to float32 after every step, as the plugin stores them.
"""
import numpy as np
import torch


class Lion:
    def __init__(self, groups, lr=1e-4, betas=(0.9, 0.99), weight_decay=0.0):
        defaults = {"lr": lr, "betas": betas, "weight_decay": weight_decay}
        self.param_groups = [dict(defaults, **group) for group in groups]
        self.state = {}  # id(param) -> momentum (float64)

    def step(self):
        for group in self.param_groups:
            lr, (beta1, beta2), wd = group["lr"], group["betas"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad.detach().numpy().astype(np.float64)
                theta = p.detach().numpy().astype(np.float64)
                m = self.state.get(id(p), np.zeros_like(theta))
                theta = theta * (1.0 - lr * wd)
                theta = theta - lr * np.sign(beta1 * m + (1.0 - beta1) * g)  # np.sign(0) = 0
                self.state[id(p)] = beta2 * m + (1.0 - beta2) * g
                with torch.no_grad():
                    p.copy_(torch.from_numpy(np.asarray(theta, dtype=np.float32)))
