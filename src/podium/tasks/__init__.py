"""Task plug-ins: what differs between classification, segmentation and the tasks to come.

Each task is one subpackage here; the layers below (data, preprocess, training, ensembling,
submission) import none of them (tests/test_layers.py). docs/architecture.md describes the
interface and how to add a task.
"""
