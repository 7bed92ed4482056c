"""Tracking benchmarks as data: sequences with ground truth and visibility (image-free), the
official test splits, and raw result folders. Used by ``zoo eval`` and reusable by tracking runs."""
from __future__ import annotations

from zoo.datasets.layouts import load_dataset, select
from zoo.datasets.results import TrackerResults, open_results
from zoo.datasets.sequence import Dataset, DatasetSpec, Sequence
from zoo.datasets.specs import DATASETS, dataset_spec, split_names
from zoo.datasets.textio import read_flags, read_table

__all__ = ["DATASETS", "Dataset", "DatasetSpec", "Sequence", "TrackerResults", "dataset_spec", "load_dataset",
           "open_results", "read_flags", "read_table", "select", "split_names"]
