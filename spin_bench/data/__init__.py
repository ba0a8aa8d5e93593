"""The data stage (conf/data): the world a study runs in.

`config` (the typed section), `rows` (the row schema and its checks), `arithmetic` and `embedded` (the generated
world), `hub` (hub datasets and local files), `world` (the cached stage: `build_world`).
"""
