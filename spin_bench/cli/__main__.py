"""`python -m spin_bench.cli ...` (as torchrun launches it) is `spin-bench ...`."""

from spin_bench.cli.app import main

main()
