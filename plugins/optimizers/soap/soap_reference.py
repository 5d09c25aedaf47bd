"""Float64 numpy reference of SOAP, written straight from shared/papers/soap.md (not from soap.cpp).

Used by soap_test.cpp: `Soap(groups, lr=..., ...)` behaves like a torch optimizer for the tests' replay
scripts (a `param_groups` list of dicts whose "lr" the script rescales, and `step()` reading `p.grad`).
Each parameter keeps a float64 master copy; after every step the float32 tensor is overwritten with it,
and `max_difference(final)` compares float32 results against the float64 masters.

Formulations are deliberately different from soap.cpp's: mode-k products (moveaxis + matmul) instead of
rotating tensordots, the unfolding G_(k) G_(k)^T for the factors, numpy's eigh/qr, and momentum projected
back and forth on every step exactly as written in soap.md step 6.
"""
import numpy as np


def merge_shape(shape, max_precond_dim):
    """The reference implementation's dim merger (merge_dims = True), for parameters of >= 2 dims."""
    out, running = [], 1
    for size in shape:
        if running * size > max_precond_dim:
            if running > 1:
                out.append(running)
                running = size
            else:
                out.append(size)
                running = 1
        else:
            running *= size
    if running > 1 or not out:
        out.append(running)
    return out


def mode_product(x, matrix, k):
    """Multiplies dim k of x by `matrix` from the left: y[..., i, ...] = sum_j matrix[i, j] x[..., j, ...]."""
    moved = np.moveaxis(x, k, 0)
    y = (matrix @ moved.reshape(moved.shape[0], -1)).reshape((matrix.shape[0],) + moved.shape[1:])
    return np.moveaxis(y, 0, k)


def unfolding_gram(x, k):
    """G_(k) G_(k)^T: x contracted with itself over every dim except k."""
    unfolded = np.moveaxis(x, k, 0).reshape(x.shape[k], -1)
    return unfolded @ unfolded.T


class Soap:
    def __init__(self, params, lr=3e-3, betas=(0.95, 0.95), shampoo_beta=-1.0, eps=1e-8, weight_decay=0.01,
                 precondition_frequency=10, max_precond_dim=10000, merge_dims=False, precondition_1d=False,
                 normalize_grads=False, correct_bias=True):
        defaults = dict(lr=lr, betas=betas, shampoo_beta=shampoo_beta, eps=eps, weight_decay=weight_decay,
                        precondition_frequency=precondition_frequency, max_precond_dim=max_precond_dim,
                        merge_dims=merge_dims, precondition_1d=precondition_1d, normalize_grads=normalize_grads,
                        correct_bias=correct_bias)
        params = list(params)
        if not isinstance(params[0], dict):
            params = [{"params": params}]
        self.param_groups = [{**defaults, **group} for group in params]
        self.state = {}
        for group in self.param_groups:
            for p in group["params"]:
                self.state[id(p)] = {"param": p.detach().numpy().astype(np.float64)}

    # --- per-parameter layout --------------------------------------------------------------------
    @staticmethod
    def _view_shape(shape, group):
        if group["merge_dims"] and len(shape) > 1:
            return merge_shape(shape, group["max_precond_dim"])
        return list(shape)

    @staticmethod
    def _preconditioned(shape, view, group):
        if len(shape) == 1 and not group["precondition_1d"]:
            return [False] * len(view)
        return [size <= group["max_precond_dim"] for size in view]

    def _project(self, x, st):
        for k, q in enumerate(st["Q"]):
            if q is not None:
                x = mode_product(x, q.T, k)
        return x

    def _project_back(self, x, st):
        for k, q in enumerate(st["Q"]):
            if q is not None:
                x = mode_product(x, q, k)
        return x

    def _update_factors(self, st, g, sb):
        for k, gg in enumerate(st["GG"]):
            if gg is not None:
                st["GG"][k] = sb * gg + (1 - sb) * unfolding_gram(g, k)

    # --- the step --------------------------------------------------------------------------------
    def step(self):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    self._step(p, group)

    def _step(self, p, group):
        st = self.state[id(p)]
        shape = tuple(p.shape)
        view = self._view_shape(shape, group)
        g = p.grad.detach().numpy().astype(np.float64).reshape(view)
        b1, b2 = group["betas"]
        sb = group["shampoo_beta"] if group["shampoo_beta"] >= 0 else b2

        if "GG" not in st:  # first call: factors, eigenbases by descending eigenvalue; no update
            flags = self._preconditioned(shape, view, group)
            st["GG"] = [np.zeros((n, n)) if f else None for n, f in zip(view, flags)]
            self._update_factors(st, g, sb)
            st["Q"] = []
            for gg in st["GG"]:
                if gg is None:
                    st["Q"].append(None)
                    continue
                values, vectors = np.linalg.eigh(gg)
                st["Q"].append(vectors[:, np.argsort(-values, kind="stable")])
            st["t"], st["m"], st["v"] = 0, np.zeros(view), np.zeros(view)
            return

        gp = self._project(g, st)                                        # 1
        st["t"] += 1                                                     # 2
        t = st["t"]
        st["m"] = b1 * st["m"] + (1 - b1) * gp
        st["v"] = b2 * st["v"] + (1 - b2) * gp ** 2
        step = group["lr"]                                               # 3
        if group["correct_bias"]:
            step = group["lr"] * np.sqrt(1 - b2 ** t) / (1 - b1 ** t)
        u = self._project_back(st["m"] / (np.sqrt(st["v"]) + group["eps"]), st)  # 4
        if group["normalize_grads"]:
            u = u / (1e-30 + np.sqrt(np.mean(u ** 2)))
        w = st["param"]                                                  # 5
        w = w - step * u.reshape(shape)
        w = w - group["lr"] * group["weight_decay"] * w
        st["param"] = w

        st["m"] = self._project_back(st["m"], st)                        # 6
        self._update_factors(st, g, sb)
        if t % group["precondition_frequency"] == 0:
            for k, (gg, q) in enumerate(zip(st["GG"], st["Q"])):
                if q is None:
                    continue
                estimates = np.diag(q.T @ gg @ q)
                order = np.argsort(-estimates, kind="stable")
                st["v"] = np.take(st["v"], order, axis=k)
                st["Q"][k] = np.linalg.qr(gg @ q[:, order])[0]
        st["m"] = self._project(st["m"], st)

        p.detach().numpy()[...] = w  # the float32 parameter the next gradients are taken at

    def max_difference(self, finals):
        """Largest |float64 reference - final| over every parameter (finals in param_groups order)."""
        masters = [self.state[id(p)]["param"] for group in self.param_groups for p in group["params"]]
        return max(float(np.abs(m - f.detach().numpy().astype(np.float64)).max()) for m, f in zip(masters, finals))
