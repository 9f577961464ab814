"""envtiers benchmarks: `make bench` (or `python -m bench --only lock,env --quick`).

Each benchmark area is a module exposing `MODULE` (its results file, `bench/results/<MODULE>.json`)
and `BENCHMARKS` (selectable name -> function returning result rows). `bench.report` merges every
area's JSON file into `bench/results/README.md`. Each benchmark times envtiers and the tool a user
would reach for without it side by side in the same run, so the ratios hold on a noisy machine.
"""
