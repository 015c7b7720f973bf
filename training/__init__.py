"""sr3d_training: datasets, label assignment, losses, trainer and evaluation for sr3d_ros.

Installed under the import name ``sr3d_training`` (the folder is ``training/``). It imports the
ROS-free core (:mod:`sr3d_ros`), never the node.
"""
