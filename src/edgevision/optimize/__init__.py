"""`edgevision optimize`: the fastest artifact of a model that is verified on this machine.

candidates.py says what may be tried (runtime x precision x the family's INT8 recipes, from
what is installed and what the CPU supports), search.py builds, verifies, times and picks (with
a per-machine cache, so a rerun resumes), report.py writes OUTDIR, optimizer.py ties them
together in ``optimize()``."""
from .candidates import Candidate
from .optimizer import OptimizeResult, optimize
from .search import CandidateResult, OptimizeError

__all__ = ["optimize", "OptimizeResult", "OptimizeError", "Candidate", "CandidateResult"]
