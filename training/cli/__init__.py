"""Console scripts of sr3d_training: ``sr3d-train`` and ``sr3d-eval``."""
