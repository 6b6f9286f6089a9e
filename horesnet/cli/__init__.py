"""The command lines (``python -m horesnet.fit``, ``info``, ``analyze``, ``compare``) and their plumbing: schema,
Hydra composition, help, the command-line checks before a run (preflight) and the matched-control sweeps. The top
layer: nothing else in horesnet imports it."""
