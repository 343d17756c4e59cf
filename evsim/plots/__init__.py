"""Figures and reports of evsim results (matplotlib, no pyplot state; PDF, SVG or PNG by extension).

* :mod:`.style` — paper sizes (one column 3.5 in, two columns 7.2 in), fonts, formats, writing,
  the colour of a configuration.
* :mod:`.raster` — spike raster of one sample; :mod:`.evidence` — its output evidence over time.
* :mod:`.accuracy` — accuracy vs latency / events / speed-up, temporal flexibility.
* :mod:`.classes` — confusion matrix and per-class accuracy / latency.
* :mod:`.report` — one self-contained HTML page of results.
* :mod:`.results` — reading ``evsim eval --json`` documents (defensively).
"""

from .accuracy import PANELS, accuracy_series, plot_accuracy, plot_temporal
from .classes import plot_classes
from .evidence import plot_evidence
from .raster import plot_raster
from .report import report_html, write_report
from .results import load_results
from .style import FORMATS, SIZES, check_figure_path, config_colour, save_figure

__all__ = ["check_figure_path", "save_figure", "plot_raster", "plot_evidence", "plot_accuracy", "plot_temporal",
           "plot_classes", "accuracy_series", "write_report", "report_html", "load_results", "config_colour",
           "FORMATS", "SIZES", "PANELS"]
