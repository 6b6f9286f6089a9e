"""A/B of two checkouts: the training-step time (SGD, fp32 eager, batch 64 at 32x32, 2 threads) of the same
networks, median over N steps after 2 warm-up steps; prints one JSON line {variant: seconds per step}. Alternate
processes of the two checkouts (PYTHONPATH picks the old one) and compare medians; the machine must be otherwise
quiet (pause background jobs):

    git worktree add /tmp/old <commit>
    for i in 1 2 3; do PYTHONPATH=/tmp/old python benchmarks/checkout_ab.py 6 >> ab.jsonl
                       python benchmarks/checkout_ab.py 6 >> ab.jsonl; done
"""
import json
import statistics
import sys
import time

import torch

import horesnet

torch.set_num_threads(2)
torch.manual_seed(0)
out = {"file": horesnet.__file__}
for name, kw in [("euler56", dict(block="euler", depth=56)), ("rk4_56", dict(block="rk4", depth=56)),
                 ("rk8_92", dict(block="rk8", depth=92)), ("momentum56", dict(block="momentum", depth=56))]:
    m = horesnet.build_model(**kw)
    opt = torch.optim.SGD(m.parameters(), lr=0.01)
    x, y = torch.randn(64, 3, 32, 32), torch.randint(0, 10, (64,))
    times = []
    for i in range(int(sys.argv[1]) + 2):
        t = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(m(x), y).backward()
        opt.step()
        if i >= 2:
            times.append(time.perf_counter() - t)
    out[name] = statistics.median(times)
print(json.dumps(out))
