"""Tracking benchmarks as data: sequences with ground truth and visibility, the official test
splits, raw result folders, and the frames (:mod:`zoo.datasets.frames`: image folders in each
layout, a plain folder beside one ground-truth file, video files; :mod:`zoo.datasets.synthetic`:
sequences with exact ground truth built from bundled photographs). Used by ``zoo eval`` and
``zoo track``."""
from __future__ import annotations

from zoo.datasets.frames import VideoFrames, list_frames, open_sequence_folder, read_frame, sequence_frames
from zoo.datasets.layouts import load_dataset, select
from zoo.datasets.results import TrackerResults, open_results
from zoo.datasets.sequence import Dataset, DatasetSpec, Sequence
from zoo.datasets.specs import DATASETS, dataset_spec, split_names
from zoo.datasets.textio import read_flags, read_table

__all__ = ["DATASETS", "Dataset", "DatasetSpec", "Sequence", "TrackerResults", "VideoFrames", "dataset_spec", "list_frames",
           "load_dataset", "open_results", "open_sequence_folder", "read_flags", "read_frame", "read_table", "select",
           "sequence_frames", "split_names"]
