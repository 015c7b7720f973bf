"""sr3d_training: datasets, label assignment, losses, trainer and evaluation for sr3d_ros.

Folder ``training/``, import name ``sr3d_training``. The mapping is made in two places:

* installed (pip / colcon): ``setup.py`` lists the package as ``sr3d_training`` with
  ``package_dir={"sr3d_training": "training"}``, so ``import sr3d_training`` finds this folder;
* from a source checkout: the repository root holds a symlink ``sr3d_training -> training``, so
  ``PYTHONPATH=<repo root>`` imports the working tree.

The name keeps the training code from shadowing other packages called ``training`` and says
whose training it is; the folder keeps the short name. It imports the ROS-free core
(:mod:`sr3d_ros`), never the ROS node (``sr3d_ros.ros``).

Layout: ``datasets/`` (ScanNet, SUN RGB-D loaders), ``transforms.py`` (augmentation),
``assigners/`` (TR3D; SR3D's SPOTA: cost, transport, decision rules), ``losses/`` (focal, RAS,
QFL, VFL, DIoU), ``criterion.py`` (the detection loss), ``batching.py`` / ``runtime.py`` /
``trainer.py`` (kind-agnostic training loop), ``tasks/`` (what each detector kind trains:
model, loss, data, evaluation), ``evaluation/`` + ``evaluate.py`` (indoor mAP, IoU oracle),
``cli/`` (``sr3d-train``, ``sr3d-eval``).
"""
