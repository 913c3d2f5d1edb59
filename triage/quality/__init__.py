"""Quality against operator labels.

Measures, calibration fitting, the threshold recommendation, evaluation on a gold file.
"""
