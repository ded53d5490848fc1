"""`rnnkit explain`: experiments that show, on your machine, why recurrent networks behave as the
textbook says, each written up as a report with figures and a reading of the measured numbers.

- `vanishing`: SimpleRNN, LSTM, GRU and IRNN on the adding problem at several lengths; test
  error against T, gradient flow through time, and an HTML page that reads them
  (`run_experiment`, `write_report`; command line: `rnnkit explain vanishing`).
"""

from rnnkit.explain import reading, report_html, vanishing
from rnnkit.explain.report_html import write_report
from rnnkit.explain.vanishing import LAYER_TYPES, VanishingResults, run_experiment

__all__ = [
    "LAYER_TYPES",
    "VanishingResults",
    "reading",
    "report_html",
    "run_experiment",
    "vanishing",
    "write_report",
]
