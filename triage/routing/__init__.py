"""From a ticket to a label, with no database and no SDK.

The router and its group form, prompts, parsing, few-shot request building, calibration maps and the
provider protocol.
"""
