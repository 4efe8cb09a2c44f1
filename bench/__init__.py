"""The harness: run allocators on workloads, measure, store, compare (`python -m bench`)."""
