"""Batch grading: the engine (`engine`), the verb (`cli`)."""
