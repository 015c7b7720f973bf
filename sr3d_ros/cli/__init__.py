"""Console scripts: ``sr3d-detect`` (:mod:`.detect`), ``sr3d-convert-tr3d`` (:mod:`.convert_tr3d`)
and ``sr3d-bag`` (:mod:`.bag`).

Each module exposes ``main(argv: list[str] | None = None) -> int`` (exit status); the console
scripts are declared in ``setup.py``'s ``entry_points``.
"""
