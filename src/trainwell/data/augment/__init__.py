"""Augmentation: training-time operations and the test-time views (``tta``)."""
