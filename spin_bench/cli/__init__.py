"""The entry points: `spin-bench` (app: the Hydra app; preflight: every job checked before any runs),
`spin-bench-report` (report) and the Hydra callback that writes a study's report when its runs end (callbacks).
Nothing in the package imports them."""
