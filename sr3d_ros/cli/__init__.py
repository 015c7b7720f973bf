"""Console scripts: ``sr3d-detect`` (:mod:`.detect`) and ``sr3d-convert-tr3d`` (:mod:`.convert_tr3d`).

Each module exposes ``main(argv: list[str] | None = None) -> int`` (exit status); the console
scripts are declared in ``setup.py``'s ``entry_points``.
"""
