"""Packaging for sr3d_ros (ament_python on a ROS 2 install, plain pip elsewhere).

Two import packages are installed side by side:
  * ``sr3d_ros``      – the ROS-free core (sparse engine, geometry, models, inference) plus the
                        thin ROS 2 glue in ``sr3d_ros.ros``;
  * ``sr3d_training`` – the training / evaluation code, which lives in the ``training/`` folder.
"""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "sr3d_ros"

core = find_packages(include=["sr3d_ros", "sr3d_ros.*"])
training = ["sr3d_training"] + ["sr3d_training." + p for p in find_packages(where="training")]

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=core + training,
    package_dir={"sr3d_training": "training"},
    package_data={PACKAGE: ["py.typed", "models/weights/*.pt", "models/weights/*.md"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml")),
        (f"share/{PACKAGE}/rviz", glob("rviz/*.rviz")),
    ],
    python_requires=">=3.10",
    install_requires=["numpy", "torch>=2.1", "pyyaml", "pillow"],
    extras_require={
        "io": ["open3d", "pillow"],
        "bags": ["rosbags"],
        "train": ["tensorboard", "tqdm", "scipy"],
        "test": ["pytest", "shapely", "scipy"],
    },
    zip_safe=True,
    maintainer="sr3d_ros maintainers",
    maintainer_email="sr3d-ros@example.com",
    description="Real-time 3D object detection for ROS 2 (TR3D architecture; TR3D or SR3D "
    "training; default model trained with the TR3D baseline).",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "sr3d-train=sr3d_training.cli.train:main",
            "sr3d-eval=sr3d_training.cli.evaluate:main",
            "sr3d-detect=sr3d_ros.cli.detect:main",
            "sr3d-convert-tr3d=sr3d_ros.cli.convert_tr3d:main",
            "sr3d-bag=sr3d_ros.cli.bag:main",
            "pointcloud_detector=sr3d_ros.ros.pointcloud_node:main",
        ]
    },
)
