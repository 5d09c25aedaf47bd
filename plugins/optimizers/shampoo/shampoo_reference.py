"""Float64 numpy reference of the Shampoo baseline implemented by shampoo.cpp (the update is spelled out in
that file's header comment; shared/papers/optimizers.md gives the paper's description).

Used by shampoo_test.cpp: `Shampoo(groups, lr=..., ...)` behaves like a torch optimizer for the tests'
replay scripts (a `param_groups` list of dicts whose "lr" the script rescales, and `step()` reading
`p.grad`). Each parameter keeps a float64 master copy; after every step the float32 tensor is overwritten
with it, and `max_difference(final)` compares float32 results against the float64 masters.

Formulations differ from shampoo.cpp's: mode-k products (moveaxis + matmul) instead of rotating
tensordots, the unfolding G_(k) G_(k)^T for the factors, and the inverse root as
(A + matrix_eps I)^(-1/root) from numpy's eigh of the bias-corrected factor.
"""
import numpy as np


def mode_product(x, matrix, k):
    """Multiplies dim k of x by `matrix` from the left."""
    moved = np.moveaxis(x, k, 0)
    y = (matrix @ moved.reshape(moved.shape[0], -1)).reshape((matrix.shape[0],) + moved.shape[1:])
    return np.moveaxis(y, 0, k)


def unfolding_gram(x, k):
    """G_(k) G_(k)^T: x contracted with itself over every dim except k."""
    unfolded = np.moveaxis(x, k, 0).reshape(x.shape[k], -1)
    return unfolded @ unfolded.T


def inverse_root(a, root, matrix_eps):
    """(a + matrix_eps I)^(-1/root) of a symmetric PSD matrix; eigenvalues below 0 (rounding) shifted to 0."""
    values, vectors = np.linalg.eigh(a)
    values = values - min(values.min(), 0.0) + matrix_eps
    return (vectors * values ** (-1.0 / root)) @ vectors.T


class Shampoo:
    def __init__(self, params, lr=3e-3, betas=(0.95, 0.95), shampoo_beta=-1.0, eps=1e-8, matrix_eps=1e-12,
                 weight_decay=0.01, precondition_frequency=10, max_precond_dim=10000, root=2, grafting="adam",
                 correct_bias=True):
        defaults = dict(lr=lr, betas=betas, shampoo_beta=shampoo_beta, eps=eps, matrix_eps=matrix_eps,
                        weight_decay=weight_decay, precondition_frequency=precondition_frequency,
                        max_precond_dim=max_precond_dim, root=root, grafting=grafting, correct_bias=correct_bias)
        params = list(params)
        if not isinstance(params[0], dict):
            params = [{"params": params}]
        self.param_groups = [{**defaults, **group} for group in params]
        self.state = {}
        for group in self.param_groups:
            for p in group["params"]:
                self.state[id(p)] = {"param": p.detach().numpy().astype(np.float64), "t": 0}

    def step(self):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    self._step(p, group)

    def _step(self, p, group):
        st = self.state[id(p)]
        g = p.grad.detach().numpy().astype(np.float64)
        b1, b2 = group["betas"]
        sb = group["shampoo_beta"] if group["shampoo_beta"] >= 0 else b2
        dims = [k for k in range(g.ndim) if g.ndim >= 2 and g.shape[k] <= group["max_precond_dim"]]
        if st["t"] == 0:
            st["m"], st["v"] = np.zeros_like(g), np.zeros_like(g)
            st["GG"] = {k: np.zeros((g.shape[k], g.shape[k])) for k in dims}
            st["H"] = None
        st["t"] += 1
        t = st["t"]
        st["m"] = b1 * st["m"] + (1 - b1) * g
        st["v"] = b2 * st["v"] + (1 - b2) * g * g
        for k in dims:
            st["GG"][k] = sb * st["GG"][k] + (1 - sb) * unfolding_gram(g, k)
        correct = group["correct_bias"]
        if dims and t % group["precondition_frequency"] == 0:
            cs = 1 - sb ** t if correct else 1.0
            st["H"] = {k: inverse_root(st["GG"][k] / cs, group["root"], group["matrix_eps"]) for k in dims}

        c1 = 1 - b1 ** t if correct else 1.0
        c2 = 1 - b2 ** t if correct else 1.0
        m_hat = st["m"] / c1
        adam = m_hat / (np.sqrt(st["v"] / c2) + group["eps"])
        if not dims:
            u = adam
        elif st["H"] is None:
            u = adam if group["grafting"] == "adam" else m_hat
        else:
            P = m_hat
            for k in dims:
                P = mode_product(P, st["H"][k], k)
            u = np.linalg.norm(adam) * P / np.linalg.norm(P) if group["grafting"] == "adam" else P

        w = st["param"]
        w = w - group["lr"] * group["weight_decay"] * w
        w = w - group["lr"] * u
        st["param"] = w
        p.detach().numpy()[...] = w

    def max_difference(self, finals):
        """Largest |float64 reference - final| over every parameter (finals in param_groups order)."""
        masters = [self.state[id(p)]["param"] for group in self.param_groups for p in group["params"]]
        return max(float(np.abs(m - f.detach().numpy().astype(np.float64)).max()) for m, f in zip(masters, finals))
