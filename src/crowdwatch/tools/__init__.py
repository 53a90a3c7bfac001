"""Tools around the pipeline: accuracy evaluation, scoring, ground truth, benchmarks."""
