"""The Stage 2 planner: what Stage 2 will buy, predicted before it is paid for.

Give it the signals measured on a gold set (truth known) and on a sample of the pool
(:class:`GoldSignals`, :class:`PoolSample`) and the run's settings; :func:`make_plan` returns a
:class:`Plan` (``to_dict()`` is plan.json), :func:`format_plan` the table a user reads and
:func:`plot_residual_noise` the plot of residual noise against judge accuracy.

Modules: inputs (what is measured), stats (intervals), cells (the outcome cells decided by the
real ``stage2_decide``), noise (the pool's label-noise rate), predict (fractions from a noise
rate), plan (the whole plan), report (table and plot).
"""

from .cells import CellModelError
from .inputs import GoldSignals, JudgeCost, PlanInputError, PlanOptions, PoolSample
from .noise import NoiseEstimate, SignalNoise
from .plan import Cost, ErrorCorrelation, Plan, SignalAccuracy, make_plan
from .predict import PREDICTED
from .report import format_plan, plot_residual_noise
from .stats import Estimate

__all__ = ["CellModelError", "Cost", "ErrorCorrelation", "Estimate", "GoldSignals", "JudgeCost", "NoiseEstimate", "PREDICTED",
           "Plan", "PlanInputError", "PlanOptions", "PoolSample", "SignalAccuracy", "SignalNoise", "format_plan", "make_plan",
           "plot_residual_noise"]
