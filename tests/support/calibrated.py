"""A calibration map's value for a stated confidence, as a number: `Calibration.apply` takes and gives
`float | None` (no confidence, no value), and a test that reads a map at a confidence expects one back."""

from triage.routing.calibration import Calibration


def applied(cal: Calibration | None, confidence: float) -> float:
    assert cal is not None, "a calibration map is in force"
    value = cal.apply(confidence)
    assert value is not None
    return value
