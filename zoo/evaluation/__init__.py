"""Benchmark evaluation of raw tracking results: metrics (:mod:`.metrics`), the pytracking and
MATLAB-toolkit protocols (:mod:`.protocols`), figures over trackers (:mod:`.analyze`), trajectory
agreement between two runs (:mod:`.drift`) and plots (:mod:`.plots`, matplotlib Agg)."""
