"""torch.optim.AdamW (Python, same torch as assay) on the parameter set of bench_optimizer_step.

    python3 tools/bench/adamw_python.py [rounds] [steps] [threads]
Prints ms/step (median over rounds) for the foreach (default) and the single-tensor implementation.
"""
import statistics
import sys
import time

import torch

rounds, steps, threads = (int(a) for a in (sys.argv[1:] + ["5", "20", "1"][len(sys.argv) - 1:])[:3])
torch.set_num_threads(threads)
torch.manual_seed(0)
d, vocab = 256, 256
shapes = [(vocab, d)] + [s for _ in range(4) for s in [(3 * d, d), (d, d), (4 * d, d), (d, 4 * d), (d,), (d,)]] + [(d,), (vocab, d)]
for foreach in (True, False):
    times = []
    for _ in range(rounds):
        params = [torch.nn.Parameter(torch.randn(s) * 0.02) for s in shapes]
        for p in params:
            p.grad = torch.randn_like(p)
        opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=0.01, foreach=foreach)
        opt.step()
        start = time.perf_counter()
        for _ in range(steps):
            opt.step()
        times.append((time.perf_counter() - start) / steps * 1e3)
    print(f"| torch.optim.AdamW (Python, foreach={foreach}) | {statistics.median(times):.3f} |")
